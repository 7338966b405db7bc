"""turbonext Gradio app: Upload (reference + driving video or built-in motion -> MP4) and Webcam (live) tabs.

UI only: the logic lives in :mod:`turbonext.jobs` (``clip``, ``live``, ``uploads``, ``sharing``, ``examples``).
The model is loaded once at start (``--model`` / ``TURBONEXT_MODEL``, default the embedded demo); if it
cannot be loaded the app still starts and says why. Run: ``python app.py [--model M] [--port 7860]``.
Needs the ``[app]`` and ``[pose]`` extras: ``pip install 'turbonext[app,pose]'``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import weakref
from pathlib import Path


if os.environ.get("SPACE_ID"):  # on Hugging Face Spaces only; must come before torch initialises CUDA
    try:
        import spaces
    except ImportError:  # a Space without the `spaces` package (e.g. a custom Docker image)
        spaces = None
else:
    spaces = None

APP_EXTRA_HINT = "pip install 'turbonext[app,pose]'"
try:
    import gradio as gr
except ImportError as _err:  # before any heavy import, so `python app.py --help` answers at once
    if __name__ == "__main__":
        sys.exit(f"The turbonext app needs Gradio ({_err}); install what both tabs need with: {APP_EXTRA_HINT}")
    raise

from turbonext.jobs.clip import DEFAULT_FPS, render_clip  # noqa: E402
from turbonext.jobs.driving_inputs import BUILTIN_MOTIONS, builtin_motion_poses  # noqa: E402
from turbonext.jobs.examples import example_files  # noqa: E402
from turbonext.jobs.live import LiveSession  # noqa: E402
from turbonext.jobs.options import (  # noqa: E402
    MAX_STYLE_WEIGHT,
    MIN_STYLE_WEIGHT,
    check_style_lora,
    default_steps,
    describe_style_loras,
    mode_costs,
    mode_problems,
    model_default_mode,
    read_style_lora_upload,
)
from turbonext.jobs.reference import native_size, pose_style_of  # noqa: E402
from turbonext.jobs.sharing import LiveSeats, MachineBusy  # noqa: E402
from turbonext.jobs.uploads import ACCEPTED_IMAGES, check_video_upload, read_image_upload  # noqa: E402
from turbonext.loaders.hub import DEMO_MODEL_NAME  # noqa: E402
from turbonext.pipelines.inference import load_for_inference  # noqa: E402
from turbonext.pipelines.pipeline_turbonext import MAX_STYLE_LORAS  # noqa: E402
from turbonext.streaming.session import COMPILE_MODES  # noqa: E402


STREAM_EVERY = 0.08  # s between webcam frames sent by the browser (~12 fps)
STREAM_TIME_LIMIT = 180  # s per webcam stream, so one user cannot hold the GPU forever
CPU_STREAM_WINDOW = 8  # on a CPU: the demo's uniform stream, 4 new frames against 4 finished ones (BENCHMARKS.md)
LIVE_SESSIONS = {"cpu": 1, "accelerator": 2}  # default cap on concurrent webcam streams (--max-live-sessions)
LIVE_IDLE_TIMEOUT = 15.0  # s without a webcam frame after which a stream's seat is free again
MAX_FILE_SIZE = "200mb"  # per upload (Gradio refuses larger files before they reach a handler)
VIDEO_SOURCE = "video"  # the driving-source value for "your video"; the others are built-in motion names
EXAMPLE_FRAMES = 24
MODEL_OWN_MODE = "model"  # the Mode radio's value for a model with no LCM: its own sampler, as loaded
LIVE_MAX_PEOPLE = 4  # Webcam tab, "everyone": how many people are followed at once
LIVE_PEOPLE = [("the largest person", "largest"), (f"everyone (up to {LIVE_MAX_PEOPLE})", "all")]  # the People radio
STYLE_CHECK_WAIT = 2.0  # s a style LoRA upload waits for the model to try the file on it (else: tried at Generate)
INTRO = ("# turbonext: real-time pose transfer\nUpload one photo of a person, then drive it with a video or a "
         "built-in motion (**Upload**) or with your own moves in front of the camera (**Webcam**).")
UPLOAD_HELP = (
    f"**Reference**: {ACCEPTED_IMAGES} of one person, ideally head to toe. **Driving**: a video of one person "
    "moving, or a built-in motion (no video needed). Frames of the video where nobody is found **hold the last "
    "pose** found (the figure stands still); a video with nobody in it is refused. Only the first *Max frames* "
    "frames are used (*FPS* per second of video: 48 frames are 2 s at 24 FPS). **People**: with several people in "
    "the video, the largest one drives the clip, or everyone (each rendered as the reference person). No photo? "
    "**Describe a person** and the model makes one from the text first (shown beside the result). The clip comes "
    "as an MP4 (H.264) and a GIF.")
STYLE_HELP = (
    "A style LoRA (`.safetensors`, made for Stable Diffusion 1.5) changes the look of your clips only: it is put on "
    "the model for your render and taken off after it, so other users never see it. Up to {limit} stack, each at its "
    "weight (0 = off, 1 = as trained).")
WEBCAM_HELP = (
    "Upload a photo, then start the webcam. When you step out of view the figure **holds your last pose**. "
    f"**People**: the largest person in view drives the figure, or everyone (up to {LIVE_MAX_PEOPLE}, each drawn "
    "with the photo's look); a change applies at once. "
    "The stats line says how many frames per second are shown, the delay, and how many camera frames were "
    "skipped because the model was still busy with an earlier one (nothing queues up). A few people can stream "
    "at once; they share the machine's speed, and beyond the limit the app asks you to try again in a minute.")


def load_model(name: str, device: str | None = None):
    """Load the pipeline once; returns ``(pipe or None, notice or None)``. A model that cannot be
    loaded falls back to the embedded demo, and if that is missing too the app runs without one."""
    notices = []
    for candidate in dict.fromkeys([name, DEMO_MODEL_NAME]):
        try:
            pipe = load_for_inference(candidate, device)
        except (OSError, ValueError) as err:  # missing weights, Hub unreachable, not a pipeline folder
            notices.append(f"Could not load model `{candidate}`: {err}")
            continue
        pipe.set_progress_bar_config(disable=True)
        if candidate == DEMO_MODEL_NAME:
            notices.append(f"Using the embedded demo model `{DEMO_MODEL_NAME}`: trained on synthetic figures only.")
        return pipe, "\n\n".join(notices)
    notices.append("**No model is loaded**: generation is disabled. Start the app with `--model <folder or Hub id>`.")
    return None, "\n\n".join(notices)


def default_detector_factory():
    """A fresh pose detector per user (mediapipe keeps tracking state); None when none is installed."""
    from turbonext.pose.detectors import get_detector

    try:
        return get_detector("auto", video_mode=True)
    except ImportError as err:
        gr.Warning(f"No pose detector: {err}")
        return None


def missing_pose_notice() -> str | None:
    """A notice for the top of the page when no pose detector package is installed (the ``[pose]`` extra)."""
    import importlib.util

    if any(importlib.util.find_spec(name) is not None for name in ("ultralytics", "mediapipe")):
        return None
    return ("**No pose detector is installed**: the Upload tab can use built-in motions only and the Webcam tab "
            f"cannot follow you. Install one with: {APP_EXTRA_HINT}")


def _component_class(define):
    """Define a Gradio component subclass without the ``.pyi`` file Gradio's ``ComponentMeta`` writes next to the
    defining module (``create_or_modify_pyi``, meant for custom-component packages): an ``app.pyi`` in the working
    tree, or in site-packages on a Space."""
    import gradio.component_meta as meta

    write_pyi, meta.create_or_modify_pyi = meta.create_or_modify_pyi, lambda *args, **kwargs: None
    try:
        return define()
    finally:
        meta.create_or_modify_pyi = write_pyi


def _define_uploaded_image():
    class UploadedImage(gr.Image):
        """A ``gr.Image`` upload whose handler gets the file's path, not yet decoded.

        Gradio's own preprocessing opens every uploaded image with PIL, even with ``type="filepath"``; a file PIL
        cannot read (a text file renamed .png, a 0-byte file) then fails there, before any handler runs, and the
        user sees a bare "Error". Here the handler decodes the file itself
        (:func:`turbonext.jobs.uploads.read_image_upload`) and can say what was wrong and what is accepted.
        ``is_template`` makes the browser draw it as the ordinary Image component.
        """

        is_template = True  # no __init__ of its own: Gradio sends the browser the props named in gr.Image.__init__

        def preprocess(self, payload):
            if payload is None:
                return None
            if payload.url and payload.url.startswith("data:"):  # an image pasted as data: Gradio decodes it
                try:
                    return super().preprocess(payload)
                except Exception as err:  # any decoding failure becomes a sentence
                    raise gr.Error(f"The pasted image could not be read ({err}). Upload {ACCEPTED_IMAGES} "
                                   "instead.") from err
            return str(payload.path) if payload.path else None

    return UploadedImage


UploadedImage = _component_class(_define_uploaded_image)


def _session_key(request, live) -> object:
    return getattr(request, "session_hash", None) or id(live)


class Handlers:
    """The app's event handlers, plain methods so tests can call them without a browser.

    ``max_live_sessions`` caps the webcam streams running at once (:class:`~turbonext.jobs.sharing.LiveSeats`);
    ``frames_root`` is where streamed pictures are written, one new file each (see
    :class:`~turbonext.jobs.live.FrameFiles` for why: the content-length races of Gradio's image cache).
    """

    def __init__(self, pipe, detector_factory=default_detector_factory, live_kwargs: dict | None = None,
                 max_live_sessions: int = 1, frames_root: str | Path | None = None,
                 idle_timeout: float = LIVE_IDLE_TIMEOUT):
        self.pipe, self.detector_factory, self.live_kwargs = pipe, detector_factory, live_kwargs or {}
        self.seats = LiveSeats(max_live_sessions, idle_timeout=idle_timeout)
        if frames_root is None:
            frames_root = Path(gr.utils.get_upload_folder()) / "turbonext-live"  # Gradio serves it without a copy
        self.frames_root = Path(frames_root)
        self.frames_root.mkdir(parents=True, exist_ok=True)
        self._sessions: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # session -> LiveSession
        self._told_busy: set = set()
        self._lock = threading.Lock()
        # what the model can sample in, read once before any render (a render in HQ swaps the scheduler meanwhile)
        self.mode_problems = mode_problems(pipe) if pipe is not None else {}

    def _need_model(self) -> None:
        if self.pipe is None:
            raise gr.Error("No model is loaded (see the notice at the top); nothing can be generated.")

    # ------------------------------------------------------------------ Upload tab
    @staticmethod
    def check_reference(image) -> str:
        """Upload tab, on upload: read the photo at once, so a bad file is reported before Generate."""
        if image is None:
            return ""
        try:
            _, notices = read_image_upload(image)
        except ValueError as err:
            gr.Warning(str(err))
            return str(err)
        for notice in notices:
            gr.Warning(notice)
        return " ".join(notices) or "Reference photo read."

    def generate(self, reference, video, steps, max_frames, source=VIDEO_SOURCE, mode=None, description="",
                 styles=None, people="main", fps=DEFAULT_FPS, start_from_made_pose=False, progress=gr.Progress()):
        """Upload tab: -> (MP4 path, pose preview, status, person made from the description or None, [MP4, GIF]).
        Inputs stay in place on error. ``mode`` and ``styles`` (this user's style LoRAs) apply to this render only.
        ``start_from_made_pose``: a person made from the description starts the motion from their own pose."""
        self._need_model()
        styles = list(styles or [])
        mode = None if mode in (None, "", MODEL_OWN_MODE) else mode
        try:
            if mode and self.mode_problems.get(mode):
                raise ValueError(self.mode_problems[mode])
            described = " ".join(str(description or "").split())
            if reference is None or (isinstance(reference, str) and not reference.strip()):  # (arrays: no `in`)
                if not described:
                    raise ValueError(f"No reference photo yet: upload {ACCEPTED_IMAGES} of one person, or describe a "
                                     "person in words.")
                rgb, notices = None, []
            else:
                rgb, notices = read_image_upload(reference)
            if source in (None, "", VIDEO_SOURCE):
                driving = check_video_upload(video)
            else:
                driving = builtin_motion_poses(source, native_size(self.pipe), int(max_frames),
                                               style=pose_style_of(self.pipe))
            detector = self.detector_factory()
            try:
                result = render_clip(self.pipe, rgb, driving, detector=detector, num_inference_steps=int(steps),
                                     max_frames=int(max_frames), fps=float(fps), progress=progress,
                                     description=described, mode=mode or None, style_loras=styles,
                                     people=people or "main", gif=True,
                                     start_from_made_pose=bool(start_from_made_pose))
            finally:
                if detector is not None:
                    detector.close()
        except ValueError as err:
            raise gr.Error(str(err)) from err
        except RuntimeError as err:  # torch.OutOfMemoryError is one; the next request is served as usual
            if "out of memory" in str(err).lower():
                raise gr.Error("The machine ran out of memory for this clip: lower Max frames (or Steps) and try "
                               "again.") from err
            raise gr.Error(f"The clip could not be rendered ({' '.join(str(err).split())[:300]}).") from err
        notices += result.notices
        for notice in notices:
            gr.Warning(notice)
        how = [f"{result.fps:g} frames/s"]
        if mode:
            how.insert(0, f"{mode.upper() if mode == 'hq' else mode.capitalize()} mode")
        if styles:
            how.append(describe_style_loras(styles).rstrip("."))
        status = f"Done: {result.num_frames} frames in {result.seconds:.1f} s ({'; '.join(how)})."
        if result.made_reference is not None:
            status += " The person was made from your description (shown beside the clip)."
        files = [str(result.video)] + ([str(result.gif)] if result.gif is not None else [])
        return (str(result.video), result.pose_preview, "\n\n".join([status, *notices]), result.made_reference,
                files)

    def run_example(self, reference, source, steps, max_frames, progress=gr.Progress()):
        """An example row: a reference photo and a built-in motion."""
        return self.generate(reference, None, steps, max_frames, source, progress=progress)

    def choose_mode(self, mode):
        """Upload tab, the Mode radio: -> (the Steps slider set to the mode's steps, a sentence on the mode)."""
        if not mode or mode == MODEL_OWN_MODE:
            return gr.skip(), "**The model's own sampler**: its default steps and guidance, as it was loaded."
        problem = self.mode_problems.get(mode)
        if problem:
            gr.Warning(problem)
            return gr.skip(), problem
        return gr.update(value=default_steps(mode)), f"**{mode.upper() if mode == 'hq' else 'Fast'}**: {mode_costs()[mode]}."

    def add_style_lora(self, file, weight, styles):
        """Upload tab: a style LoRA file (+ its weight) -> (this user's style LoRAs, their status line, the emptied
        file box). A bad file or one more than the model stacks gets a sentence; the chosen ones stay."""
        self._need_model()
        styles = list(styles or [])
        try:
            lora = read_style_lora_upload(file, weight)
            checked = check_style_lora(self.pipe, lora, styles, timeout=STYLE_CHECK_WAIT)
        except ValueError as err:
            gr.Warning(str(err))
            return styles, f"{err} {describe_style_loras(styles)}", None
        styles.append(lora)
        later = "" if checked else " (the model is busy: whether it fits is checked when you generate)"
        return styles, f"Added {lora.name} at {lora.weight:g}{later}. {describe_style_loras(styles)}", None

    @staticmethod
    def remove_style_loras(styles):
        """Upload tab: forget this user's style LoRAs -> (no style LoRAs, status line)."""
        return [], describe_style_loras([])

    # ------------------------------------------------------------------ Webcam tab
    def set_reference(self, image, live: LiveSession | None, request: gr.Request = None, people: str = "largest"):
        """Webcam tab: a new reference photo -> (live session, what the model sees, status). ``people``: the People
        radio ("largest" or "all"), this user's choice of who drives their stream."""
        self._need_model()
        people = people or "largest"
        if image is None:
            if live is not None:
                live.close()
            self.seats.release(_session_key(request, live))
            return live, None, "Upload a reference photo of one person."
        if live is None:  # made even for a bad photo: its status line then keeps saying what was wrong
            detector = self.detector_factory()
            if detector is None:
                return self._reference_problem("No pose detector is installed, so the webcam cannot be followed: "
                                               "pip install 'turbonext[pose]'.", None)
            live = LiveSession(self.pipe, detector, frame_dir=self.frames_root,
                               **{"max_people": LIVE_MAX_PEOPLE, **self.live_kwargs, "people": people})
        try:
            live.set_people(people)  # (a session made earlier: the choice made since)
            rgb, notices = read_image_upload(image)
            prepared = live.set_reference(rgb, require_person=False)
        except ValueError as err:
            return self._reference_problem(str(err), live)
        with self._lock:
            self._sessions[_session_key(request, live)] = live
        for notice in [*notices, *([prepared.notice] if prepared.notice else [])]:
            gr.Warning(notice)
        status = "Reference set. Start the webcam and move!"
        if self.live_kwargs.get("compile"):
            status += " (The first stream waits while torch.compile builds the model, a few minutes, once.)"
        return live, prepared.image, status

    def _reference_problem(self, message: str, live: LiveSession | None):
        """A photo that cannot be used: say why (warning + status line); a running stream keeps its photo."""
        gr.Warning(message)
        if live is not None and live.runner is not None:
            return live, gr.skip(), f"{message} The previous photo is still in use."
        if live is not None:
            live.problem = message  # the stream's status line repeats it instead of "upload a photo"
        return live, None, message

    @staticmethod
    def choose_people(people, live: LiveSession | None) -> None:
        """Webcam tab, the People radio: a running stream follows the new choice from its next webcam frame (a
        stream not started yet gets it with its photo, :meth:`set_reference`)."""
        if live is not None and people:
            live.set_people(people)

    def stream(self, frame, live: LiveSession | None, request: gr.Request = None):
        """Webcam tab, per frame: -> (newest rendered frame, pose map, status). Never waits for the model.

        Pictures are returned as new files (:meth:`LiveSession.display_files`), and not at all when unchanged."""
        if live is None or live.runner is None:
            status = live.status_line() if live is not None else "Upload a reference photo of one person (left) first."
            return gr.skip(), gr.skip(), status
        key = _session_key(request, live)
        try:
            streaming = self.seats.claim(key)
        except MachineBusy as err:
            if key not in self._told_busy:
                self._told_busy.add(key)
                gr.Warning(str(err))
            return gr.skip(), gr.skip(), str(err)
        self._told_busy.discard(key)
        if frame is not None:
            try:
                live.process(frame)
            except RuntimeError as err:  # the model or detection worker failed: stop, say so once, keep the page
                live.close()
                live.problem = f"The live stream stopped ({err}). Upload the photo again to restart it."
                gr.Warning(live.problem)
                self.seats.release(key)
                return gr.skip(), gr.skip(), live.problem
            except ValueError as err:  # a frame that is not an image
                raise gr.Error(f"A webcam frame could not be used: {err}") from err
        result, pose = live.display_files()
        return (gr.skip() if result is None else result), (gr.skip() if pose is None else pose), live.status_line(streaming)

    def leave(self, request: gr.Request = None) -> None:
        """The user closed or reloaded the page: free their seat and end their stream at once."""
        key = getattr(request, "session_hash", None)
        if key is None:
            return
        self.seats.release(key)
        self._told_busy.discard(key)
        with self._lock:
            live = self._sessions.pop(key, None)
        if live is not None:
            live.discard()


def mode_help(problems: dict) -> str:
    """What each mode costs, and what this model cannot do (the Mode radio's note)."""
    costs = mode_costs()
    lines = [f"**Fast**: {costs['fast']}. **HQ**: {costs['hq']}. Steps follow the mode."]
    lines += [problem for problem in problems.values() if problem]
    return " ".join(lines)


def style_limit(pipe) -> int:
    """How many style LoRAs a user may stack on ``pipe`` (the pipeline's limit, less the ones it came with)."""
    return MAX_STYLE_LORAS - (len(pipe.style_loras) if pipe is not None else 0)


def close_live(live: LiveSession | None) -> None:
    """The session's state is deleted (Gradio: an hour after the page closed, if ``leave`` did not run)."""
    if live is not None:
        live.discard()


def build_demo(pipe, notice: str | None = None, detector_factory=default_detector_factory,
               live_kwargs: dict | None = None, max_live_sessions: int = 1) -> gr.Blocks:
    """The Blocks (not launched). ``pipe`` may be None: the app then shows ``notice`` and generates nothing."""
    h = Handlers(pipe, detector_factory, live_kwargs, max_live_sessions=max_live_sessions)
    generate, run_example, add_style_lora = h.generate, h.run_example, h.add_style_lora
    if spaces is not None:  # (trying a style LoRA on the model touches its weights too)
        generate, run_example = spaces.GPU(duration=120)(generate), spaces.GPU(duration=120)(run_example)
        add_style_lora = spaces.GPU(duration=30)(add_style_lora)
    examples = example_files()
    default_mode = model_default_mode(pipe) if pipe is not None else None
    motions = [("your video (upload below)", VIDEO_SOURCE)] + [(f"built-in motion: {m}", m) for m in BUILTIN_MOTIONS]
    with gr.Blocks(title="turbonext") as demo:
        gr.Markdown(INTRO)
        gr.Markdown(notice or "", visible=bool(notice), elem_id="model-notice")
        with gr.Tab("Upload"):
            with gr.Row():
                with gr.Column():
                    ref = UploadedImage(label="Reference photo (one person)", sources=["upload", "clipboard"], type="filepath")
                    description = gr.Textbox("", label="Describe a person (used when no photo is given)", lines=1,
                                             placeholder="e.g. a dancer in a red dress")
                    start_pose = gr.Checkbox(False, label="Start the motion from the made person's pose",
                                             info="with a description: the made person's own pose becomes the first "
                                                  "frame, then the driving motion follows")
                    source = gr.Dropdown(motions, value=VIDEO_SOURCE, label="Driving source")
                    video = gr.Video(label="Driving video (a person moving)", sources=["upload"])
                    people = gr.Radio([("the largest person", "main"), ("everyone", "all")], value="main",
                                      label="People in the video who drive the clip")
                    mode = gr.Radio([("Fast", "fast"), ("HQ", "hq")] + ([] if default_mode else [
                        ("the model's own", MODEL_OWN_MODE)]), value=default_mode or MODEL_OWN_MODE, label="Mode")
                    mode_info = gr.Markdown(mode_help(h.mode_problems), elem_id="mode-info")
                    with gr.Row():
                        steps = gr.Slider(1, 50, value=default_steps(default_mode), step=1, label="Steps")
                        max_frames = gr.Slider(8, 240, value=48, step=8, label="Max frames")
                        fps = gr.Slider(6, 30, value=DEFAULT_FPS, step=1, label="FPS")
                    with gr.Accordion("Style LoRAs", open=False):
                        gr.Markdown(STYLE_HELP.format(limit=style_limit(pipe)))
                        style_file = gr.File(label="Style LoRA (.safetensors)", file_types=[".safetensors"],
                                             type="filepath")
                        style_weight = gr.Slider(MIN_STYLE_WEIGHT, MAX_STYLE_WEIGHT, value=0.8, step=0.05,
                                                 label="Style weight")
                        with gr.Row():
                            add_style = gr.Button("Add style LoRA", interactive=pipe is not None)
                            clear_styles = gr.Button("Remove style LoRAs")
                        style_status = gr.Markdown(describe_style_loras([]), elem_id="style-status")
                    go = gr.Button("Generate", variant="primary", interactive=pipe is not None)
                    gr.Markdown(UPLOAD_HELP)
                with gr.Column():
                    out_video = gr.Video(label="reference | pose | result", autoplay=True)
                    made_reference = gr.Image(label="Person made from your description", interactive=False, height=200)
                    downloads = gr.File(label="Download: MP4 (H.264) and GIF", file_count="multiple", interactive=False)
                    pose_preview = gr.Image(label="Poses found in the video", interactive=False)
                    upload_status = gr.Markdown("", elem_id="upload-status")
            styles = gr.State([])  # this user's style LoRAs (StyleLora), put on the model for their renders only
            ref.upload(h.check_reference, [ref], [upload_status], api_visibility="private", show_progress="hidden")
            mode.change(h.choose_mode, [mode], [steps, mode_info], api_visibility="private", show_progress="hidden")
            add_style.click(add_style_lora, [style_file, style_weight, styles], [styles, style_status, style_file],
                            api_visibility="private", concurrency_limit=1)
            clear_styles.click(h.remove_style_loras, [styles], [styles, style_status], api_visibility="private")
            clip_outputs = [out_video, pose_preview, upload_status, made_reference, downloads]
            go.click(generate, [ref, video, steps, max_frames, source, mode, description, styles, people, fps,
                                start_pose],
                     clip_outputs, api_name="generate", concurrency_limit=1)
            gr.Examples([[str(path), motion, 4, EXAMPLE_FRAMES] for path, motion in zip(examples.values(), ("dance", "wave"))],
                        [ref, source, steps, max_frames], clip_outputs, fn=run_example,
                        run_on_click=True, cache_examples=False, api_visibility="private",
                        label="Examples (offline): a photo driven by a built-in motion, one click")
        with gr.Tab("Webcam"):
            live = gr.State(None, delete_callback=close_live)
            with gr.Row():
                with gr.Column(scale=1):
                    live_ref = UploadedImage(label="Reference photo (one person)", sources=["upload", "clipboard"], type="filepath")
                    gr.Examples([[str(path)] for path in examples.values()], [live_ref], label="Example photos")
                    model_view = gr.Image(label="What the model sees", interactive=False, height=160)
                with gr.Column(scale=1):
                    cam = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy")
                    live_people = gr.Radio(LIVE_PEOPLE, value="largest", label="People")
                    pose_view = gr.Image(label="Pose", interactive=False, height=160)
                with gr.Column(scale=1):
                    result = gr.Image(label="Result", interactive=False)
                    stats = gr.Markdown("Upload a reference photo, then start the webcam.", elem_id="live-status")
            gr.Markdown(WEBCAM_HELP)
            live_ref.change(h.set_reference, [live_ref, live, live_people], [live, model_view, stats],
                            api_name="set_reference")
            live_people.change(h.choose_people, [live_people, live], None, api_visibility="private",
                               show_progress="hidden")
            cam.stream(h.stream, [cam, live], [result, pose_view, stats], stream_every=STREAM_EVERY,
                       time_limit=STREAM_TIME_LIMIT, concurrency_limit=max(4, max_live_sessions + 2),
                       api_visibility="private",
                       show_progress="hidden")
        demo.unload(h.leave)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"turbonext Gradio app (needs: {APP_EXTRA_HINT})")
    p.add_argument("--model", default=os.environ.get("TURBONEXT_MODEL", DEMO_MODEL_NAME),
                   help="a pipeline folder, a Hub repo id, or the embedded demo (env TURBONEXT_MODEL)")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--compile", default=os.environ.get("TURBONEXT_COMPILE", "none"),
                   choices=["none"] + [mode for mode in COMPILE_MODES if mode],
                   help="torch.compile the webcam stream's UNet (GPU; reduce-overhead = CUDA graphs). The first "
                        "webcam stream then waits for the compile, minutes; later ones and new photos reuse it "
                        "(env TURBONEXT_COMPILE)")
    p.add_argument("--window", type=int, default=os.environ.get("TURBONEXT_WINDOW"),  # argparse converts a string default
                   help=f"webcam stream: latent window in frames (default 16 on a GPU, {CPU_STREAM_WINDOW} on a CPU: "
                        "about 1.2 s median delay there with the demo model; env TURBONEXT_WINDOW)")
    p.add_argument("--frames-per-level", type=int, default=None,
                   help="webcam stream: frames that enter and leave the window together (default: half the window "
                        "in the uniform layout, window/steps in the staggered one; 1 = lowest latency)")
    p.add_argument("--schedule", default=os.environ.get("TURBONEXT_SCHEDULE"), choices=[None, "uniform", "staggered"],
                   help="webcam stream: window layout (default: the model's config.stream_schedule; staggered only "
                        "for models trained on it; env TURBONEXT_SCHEDULE)")
    p.add_argument("--max-live-sessions", type=int, default=os.environ.get("TURBONEXT_MAX_LIVE_SESSIONS"),
                   help=f"webcam streams served at once; more users are asked to try again in a minute (default "
                        f"{LIVE_SESSIONS['accelerator']} on a GPU, {LIVE_SESSIONS['cpu']} on a CPU; env "
                        "TURBONEXT_MAX_LIVE_SESSIONS)")
    args = p.parse_args(argv)
    if args.max_live_sessions is not None and args.max_live_sessions < 1:
        p.error(f"--max-live-sessions must be at least 1; got {args.max_live_sessions}.")
    return args


def live_settings(args: argparse.Namespace, device: str | None = None) -> dict:
    """The webcam stream's settings (``LiveSession`` keyword arguments) from the command line and the
    type of device the model runs on (``"cpu"`` gets :data:`CPU_STREAM_WINDOW`)."""
    settings = {"compile": None if args.compile == "none" else args.compile}
    window = args.window or (CPU_STREAM_WINDOW if device == "cpu" else None)
    if window is not None:
        settings["window"] = window
    if args.frames_per_level is not None:
        settings["frames_per_level"] = args.frames_per_level
    if args.schedule:
        settings["schedule"] = args.schedule
    return settings


def max_live_sessions(args: argparse.Namespace, device: str | None = None) -> int:
    """The cap on concurrent webcam streams: ``--max-live-sessions`` / ``TURBONEXT_MAX_LIVE_SESSIONS``, else
    :data:`LIVE_SESSIONS` for the device type (one stream on a CPU, two on an accelerator)."""
    if args.max_live_sessions is not None:
        return int(args.max_live_sessions)
    return LIVE_SESSIONS["cpu" if device in (None, "cpu") else "accelerator"]


if __name__ == "__main__":
    args = parse_args()
    pipe, notice = load_model(args.model, args.device)
    notice = "\n\n".join(part for part in (notice, missing_pose_notice()) if part)
    device = pipe.device.type if pipe is not None else "cpu"
    demo = build_demo(pipe, notice, live_kwargs=live_settings(args, device),
                      max_live_sessions=max_live_sessions(args, device))
    demo.queue(max_size=32).launch(server_name=args.host, server_port=args.port, max_file_size=MAX_FILE_SIZE)
