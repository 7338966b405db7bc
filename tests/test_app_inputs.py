"""What a first-time user feeds the app, without the app: unreadable photos, driving videos with nobody in them,
videos that cannot be decoded or are too long, the live-session cap, the examples, and ultralytics kept from
installing packages or hijacking PIL (issue 15). Every check is on the message the user reads."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from test_live import standing_keypoints

from turbonext.data.video_io import write_video
from turbonext.jobs.driving_inputs import BUILTIN_MOTIONS, builtin_motion_poses, poses_from_video
from turbonext.jobs.sharing import LiveSeats, MachineBusy, sharing_notice
from turbonext.jobs.uploads import check_video_upload, read_image_upload
from turbonext.pose import detectors as det_mod
from turbonext.pose.backends import PoseDetector
from turbonext.pose.keypoints import Person


ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------- photos
@pytest.fixture
def bad_images(tmp_path):
    good = tmp_path / "photo.jpg"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)).save(good, quality=90)
    files = {"text.png": b"hello, I am not an image\n", "empty.png": b"", "truncated.jpg": good.read_bytes()[:300]}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


@pytest.mark.parametrize("name, says", [("text.png", "could not be read as an image"), ("empty.png", "is empty (0 bytes)"),
                                        ("truncated.jpg", "could not be read as an image")])
def test_unreadable_photos_get_a_sentence_naming_the_file_and_what_is_accepted(bad_images, name, says):
    with pytest.raises(ValueError) as info:
        read_image_upload(str(bad_images / name))
    message = str(info.value)
    assert says in message and repr(name) in message and "PNG, JPEG, WebP or BMP" in message
    assert str(bad_images) not in message  # the user's file name, not the server's temporary path
    assert "\n" not in message


def test_a_huge_photo_is_scaled_down_with_a_notice(tmp_path):
    path = tmp_path / "big.png"
    PIL.Image.new("RGB", (3000, 1000), (90, 90, 90)).save(path)
    rgb, notices = read_image_upload(str(path), max_side=600)
    assert rgb.shape == (200, 600, 3) and "3000x1000" in notices[0] and "scaled down to 600x200" in notices[0]
    rgb, notices = read_image_upload(str(path), max_side=3000)
    assert rgb.shape == (1000, 3000, 3) and notices == []


def test_gradio_image_decodes_uploads_before_the_handler_and_the_app_component_does_not(bad_images):
    """The cause of the bare "Error": gr.Image opens every upload with PIL in its preprocessing (even as a file
    path), so an unreadable file fails before any handler. The app's component hands over the path undecoded."""
    gr = pytest.importorskip("gradio")
    from gradio.data_classes import ImageData

    sys.path.insert(0, str(ROOT))
    import app

    payload = ImageData(path=str(bad_images / "text.png"), orig_name="text.png")
    with pytest.raises(Exception):  # UnidentifiedImageError (or, after ultralytics' patch, ModuleNotFoundError)
        gr.Image(type="filepath").preprocess(payload)
    assert app.UploadedImage().preprocess(payload) == str(bad_images / "text.png")
    assert app.UploadedImage().get_block_name() == "image"  # drawn by the browser as the ordinary Image
    assert not (ROOT / "app.pyi").exists()  # Gradio's stub writer for component subclasses was kept out


# ----------------------------------------------------------------------------------- videos
class BrightnessDetector(PoseDetector):
    """A person whose position follows the frame's brightness; nobody in dark frames. ``tracking=True`` acts
    like mediapipe's video mode: it keeps returning the last person it saw until :meth:`reset`."""

    name = "brightness"

    def __init__(self, tracking=False):
        self.tracking, self.last, self.resets = tracking, None, 0

    def detect(self, image):
        arr = np.asarray(image)
        if arr.mean() < 20:
            return [self.last] if self.tracking and self.last is not None else []
        h, w = arr.shape[:2]
        self.last = Person(standing_keypoints(w * (0.2 + 0.6 * arr.mean() / 255), 0.1 * h, 0.8 * h))
        return [self.last]

    def reset(self):
        self.last, self.resets = None, self.resets + 1


def clip_of(tmp_path, levels, name="clip.mp4"):
    path = tmp_path / name
    write_video(path, [np.full((48, 64, 3), level, np.uint8) for level in levels], fps=12)
    return path


def test_frames_without_a_person_hold_the_last_pose(tmp_path):
    notices = []
    poses = poses_from_video(clip_of(tmp_path, [0, 80, 200, 0, 0]), 64, detector=BrightnessDetector(), fps=12,
                             progress=False, notices=notices)
    arrays = [np.asarray(p) for p in poses]
    assert len(arrays) == 5 and all(a.max() > 0 for a in arrays)  # no black frame
    assert (arrays[0] == arrays[1]).all()  # before the person appears: their first pose
    assert not (arrays[1] == arrays[2]).all()  # the pose follows the video ...
    assert (arrays[3] == arrays[2]).all() and (arrays[4] == arrays[2]).all()  # ... and holds when they are gone
    assert notices == ["A person was found in 2 of 5 frames of 'clip.mp4'; the other frames hold the last pose found."]


def test_a_video_with_nobody_is_refused_even_after_a_tracking_detector_saw_a_person(tmp_path):
    """mediapipe's video mode carried the reference photo's person into a video of a coffee cup (an invented
    skeleton); the detector is reset before each video."""
    detector = BrightnessDetector(tracking=True)
    detector.detect(np.full((48, 64, 3), 150, np.uint8))  # the reference photo, seen first
    with pytest.raises(ValueError, match=r"No person was found in the driving video 'cup.mp4' \(4 frames checked\)"):
        poses_from_video(clip_of(tmp_path, [0, 0, 0, 0], "cup.mp4"), 64, detector=detector, fps=12, progress=False)
    assert detector.resets == 1


def test_mediapipe_no_longer_invents_the_reference_person_in_a_coffee_cup_video(tmp_path):
    """The real case: mediapipe's video mode, having seen the astronaut photo, found "her" in every frame of a
    coffee-cup video (measured: 24 of 24 frames without the reset, 0 with it)."""
    skimage_data = pytest.importorskip("skimage.data")
    from turbonext.jobs.reference import prepare_reference
    from turbonext.pose.detectors import MediaPipePoseDetector

    try:
        detector = MediaPipePoseDetector(video_mode=True)
    except ImportError as err:
        pytest.skip(str(err))
    prepare_reference(skimage_data.astronaut(), detector, 64, require_person=False)
    cup = skimage_data.coffee()
    clip = tmp_path / "cup.mp4"
    write_video(clip, [np.ascontiguousarray(cup[:, 8 * i:8 * i + 400]) for i in range(4)], fps=12)
    with pytest.raises(ValueError, match="No person was found in the driving video 'cup.mp4'"):
        poses_from_video(clip, 64, detector=detector, fps=12, progress=False)
    detector.close()


def test_an_undecodable_video_and_a_too_long_one(tmp_path):
    broken = tmp_path / "holiday.mp4"
    broken.write_bytes(b"not a video" * 50)
    with pytest.raises(ValueError) as info:
        poses_from_video(broken, 64, detector=BrightnessDetector(), progress=False)
    assert "'holiday.mp4' could not be decoded" in str(info.value) and "MP4, MOV" in str(info.value)
    notices = []
    poses = poses_from_video(clip_of(tmp_path, [120] * 10), 64, detector=BrightnessDetector(), max_frames=4,
                             progress=False, notices=notices)
    assert len(poses) == 4 and any("only its first 4 frames" in n and "'Max frames'" in n for n in notices)
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(ValueError, match="'notes.txt' is not a video"):
        check_video_upload(str(notes))
    with pytest.raises(ValueError, match="built-in motion"):
        check_video_upload(None)


def test_builtin_motions_drive_without_a_video():
    poses = builtin_motion_poses("dance", 64, num_frames=6)
    assert len(poses) == 6 and poses[0].size == (64, 64) and np.asarray(poses[3]).max() > 0
    assert "dance" in BUILTIN_MOTIONS and "wave" in BUILTIN_MOTIONS
    with pytest.raises(ValueError, match="unknown built-in motion"):
        builtin_motion_poses("moonwalk", 64)


def test_example_files_are_offline_small_and_licensed(tmp_path):
    from turbonext.jobs.examples import EXAMPLES_DIR, example_files

    files = example_files(tmp_path)
    assert len(files) == 2 and all(PIL.Image.open(p).size[0] >= 256 for p in files.values())
    shipped = [p for p in EXAMPLES_DIR.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in shipped) < 500_000
    licence = (EXAMPLES_DIR / "LICENSE.md").read_text()
    assert all(p.name in licence for p in shipped if p.name != "LICENSE.md") and "public domain" in licence.lower()
    assert example_files(tmp_path) == files  # drawn once, then reused


# ----------------------------------------------------------------------------------- sharing
def test_live_seats_cap_streams_free_idle_ones_and_tell_users():
    now = [0.0]
    seats = LiveSeats(2, idle_timeout=10, clock=lambda: now[0])
    assert seats.claim("a") == 1 and seats.claim("b") == 2 and seats.claim("a") == 2
    with pytest.raises(MachineBusy, match="The machine is busy: 2 people are streaming.*Try again in a minute"):
        seats.claim("c")
    seats.release("b")
    assert seats.claim("c") == 2
    now[0] = 5.0
    assert seats.claim("a") == 2  # a keeps streaming; c went quiet at t=0
    now[0] = 12.0
    assert seats.claim("d") == 2 and seats.streaming() == 2  # c's seat expired after 10 s without frames
    assert sharing_notice(1) is None
    assert sharing_notice(2) == "2 people are streaming: each gets about half the speed."
    assert "a third" in sharing_notice(3) and "1/5" in sharing_notice(5)
    with pytest.raises(ValueError, match=">= 1"):
        LiveSeats(0)


# ----------------------------------------------------------------------------------- dependencies
def test_autoinstall_is_off_before_ultralytics_is_imported(tmp_path, monkeypatch):
    """A stand-in ultralytics records YOLO_AUTOINSTALL as it is imported (ultralytics reads it once, then)."""
    fake = tmp_path / "ultralytics"
    fake.mkdir()
    (fake / "__init__.py").write_text("import os\nAUTOINSTALL_AT_IMPORT = os.environ.get('YOLO_AUTOINSTALL')\n")
    monkeypatch.setenv("YOLO_AUTOINSTALL", "true")  # even a user's setting is overridden
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "ultralytics" or k.startswith("ultralytics.")}
    try:
        module = det_mod.import_ultralytics()
        assert module.__file__.startswith(str(fake)) and module.AUTOINSTALL_AT_IMPORT == "false"
    finally:
        for key in [k for k in sys.modules if k == "ultralytics" or k.startswith("ultralytics.")]:
            del sys.modules[key]
        sys.modules.update(saved)


def test_ultralytics_neither_installs_packages_nor_hijacks_pil(tmp_path, monkeypatch):
    """Importing ultralytics patched PIL.Image.open for the whole process: an unreadable upload then tried to
    pip-install pi-heif and failed with "No module named 'pi_heif'" (in Gradio and in our loader alike)."""
    pytest.importorskip("ultralytics")
    det_mod.import_ultralytics()
    import ultralytics.utils
    import ultralytics.utils.checks as checks
    from ultralytics.utils import patches

    assert ultralytics.utils.AUTOINSTALL is False and checks.AUTOINSTALL is False
    assert PIL.Image.open is not patches.image_open
    bad = tmp_path / "text.png"
    bad.write_text("not an image")
    with pytest.raises(PIL.UnidentifiedImageError):
        PIL.Image.open(bad)
    with pytest.raises(ValueError, match="could not be read as an image"):
        read_image_upload(str(bad))

    def no_install(*args, **kwargs):
        raise AssertionError(f"ultralytics tried to run {args}")

    monkeypatch.setattr(subprocess, "check_output", no_install)
    assert checks.check_requirements("surely-not-installed-package-xyz") is False


def test_a_missing_pose_extra_is_one_line_naming_it(monkeypatch):
    def missing(*args, **kwargs):
        raise ImportError("The backend needs ultralytics (No module named 'ultralytics'). Install it with: pip install x")

    monkeypatch.setattr(det_mod, "import_ultralytics", missing)
    monkeypatch.setattr(det_mod, "import_mediapipe_solutions", missing)
    with pytest.raises(ImportError) as info:
        det_mod.get_detector("auto")
    message = str(info.value)
    assert "\n" not in message and "pip install 'turbonext[pose]'" in message and message.count("Install") == 1


def test_app_help_without_gradio_is_one_line_naming_the_extra():
    code = ("import runpy, sys; sys.modules['gradio'] = None; sys.argv = ['app.py', '--help']; "
            "runpy.run_path('app.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "pip install 'turbonext[app,pose]'" in done.stderr
