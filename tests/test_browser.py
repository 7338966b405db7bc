"""The app in a real browser: Playwright driving Debian's Chromium, a fake camera playing a y4m the test writes.

``python app.py`` runs in a subprocess on a free localhost port (the embedded demo model on the CPU, the app's
default pose detector, no network); Chromium's fake camera plays the synthetic dancer of ``turbonext bench live``
(640x480, 12 fps, looping). Checked:

* the page loads; on the Upload tab one click on an example renders a clip that the page's ``<video>`` plays
  (its frames decoded: the example's frame count, a figure in the result third);
* on the Webcam tab (an example photo, the webcam started, ~20 s streamed): the Result picture updates (several
  distinct frames), its background stays dark (border mean < 12 of 255), the pose detector follows the camera;
* two browser contexts at once (two users) with different example photos: no rendered frame one of them was
  shown equals (pixel for pixel) any frame the other was shown, and each one's "What the model sees" is its own
  photo, not the other's.

Throughout: no console error, no uncaught page error, no HTTP error, no failed request other than the browser
aborting a picture it no longer needs (``net::ERR_ABORTED`` when the next frame replaces it).

Marked ``browser``: deselected unless the -m expression names it (tests/conftest.py), so the README's test command
does not run it; ``.ci/run`` runs ``python -m pytest -q -rfEs -m browser tests/test_browser.py``. When it is
selected, a missing Chromium or Playwright fails it with the install command (never a skip). Screenshots go to
pytest's tmp_path; ``TURBONEXT_BROWSER_SCREENSHOTS=docs/reliability`` also saves the webcam tab streaming as
``browser_webcam.png`` there, with the figures measured in ``browser_test.json``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from browser_support import CHROMIUM, ROOT, AppProcess, chromium_args, missing_browser_parts, write_y4m
from PIL import Image


pytestmark = pytest.mark.browser

STREAM_SECONDS = 20.0  # how long the Webcam tab streams (after its first rendered frame)
MIN_DISTINCT_FRAMES = 3  # "the picture updates": at least this many different rendered frames in that time
DARK_BACKGROUND = 12.0  # mean of the picture's border (0-255) under which the background counts as dark
BORDER = 0.08  # the border checked: this fraction of the side on each edge (the demo figure never reaches it)
STEP_TIMEOUT_MS = 60_000  # any single page interaction
RENDER_TIMEOUT_MS = 300_000  # the Upload example (24 frames, 4 steps on a shared CPU) / the first webcam frame
SCREENSHOTS_ENV = "TURBONEXT_BROWSER_SCREENSHOTS"
FIGURES: dict = {}  # what the tests measured (written next to the screenshots)


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def playwright_api():
    missing = missing_browser_parts()
    if missing:
        pytest.fail("The browser test needs: " + "; ".join(missing), pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as api:
        yield api


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-shots")
    yield folder
    (folder / "browser_test.json").write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")
    target = os.environ.get(SCREENSHOTS_ENV)
    if target:
        target = Path(target) if Path(target).is_absolute() else ROOT / target
        target.mkdir(parents=True, exist_ok=True)
        if (folder / "webcam_streaming.png").is_file():
            shutil.copyfile(folder / "webcam_streaming.png", target / "browser_webcam.png")
        shutil.copyfile(folder / "browser_test.json", target / "browser_test.json")


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    return write_y4m(tmp_path_factory.mktemp("camera") / "dancer.y4m")


@pytest.fixture(scope="module")
def app_server(tmp_path_factory, playwright_api):
    server = AppProcess(tmp_path_factory.mktemp("app") / "app.log", max_live_sessions=2)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(playwright_api, camera):
    browser = playwright_api.chromium.launch(executable_path=CHROMIUM,
                                             args=chromium_args(camera), timeout=120_000)
    yield browser
    browser.close()


class PageProblems:
    """Console errors, uncaught exceptions, HTTP errors and failed requests of one page."""

    def __init__(self, page, name: str):
        self.name, self.items = name, []
        page.on("console", lambda msg: self.items.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda err: self.items.append(f"page error: {err}"))
        page.on("response", lambda r: self.items.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
        page.on("requestfailed", self._failed)

    def _failed(self, request) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" in failure:  # a picture replaced by the next one before it loaded; a reconnecting stream
            return
        self.items.append(f"request failed ({failure}): {request.url}")

    def check(self, app_server) -> None:
        assert not self.items, f"{self.name}: problems in the browser:\n" + "\n".join(self.items) + \
            f"\n--- app output ---\n{app_server.log()}"


def new_page(browser, app_server, name: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    problems = PageProblems(page, name)
    page.goto(app_server.url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Upload").wait_for()
    return context, page, problems


def block(page, label: str):
    """The component whose label is exactly ``label``."""
    title = page.locator('label[data-testid="block-label"]', has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    return title.locator("xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' block ')][1]")


FETCH_JS = """async (src) => {
  const response = await fetch(src, {cache: "force-cache", signal: AbortSignal.timeout(30000)});
  const bytes = new Uint8Array(await response.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return {status: response.status, type: response.headers.get("content-type"), body: btoa(text)};
}"""


def fetch_bytes(page, src: str) -> tuple[bytes, str]:
    """The bytes behind a URL the page shows, fetched by the page itself (its session, its cache): (bytes, type).

    Not Playwright's ``page.request``: it reuses keep-alive connections that the server closes after 5 s idle
    (uvicorn's default) and then fails with ECONNRESET, where a browser retries."""
    got = page.evaluate(FETCH_JS, src)
    assert got["status"] == 200, f"{src}: HTTP {got['status']}"
    return base64.b64decode(got["body"]), got["type"] or ""


def fetch_image(page, src: str) -> np.ndarray:
    """The picture behind an ``<img>``'s src, decoded."""
    return np.asarray(Image.open(io.BytesIO(fetch_bytes(page, src)[0])).convert("RGB"))


def shown_picture(page, element, path: Path) -> np.ndarray:
    """A screenshot of what the page draws inside ``element`` (1 px in from its edges: no anti-aliased border)."""
    element.scroll_into_view_if_needed()
    box = element.bounding_box()
    x0, y0 = math.ceil(box["x"]) + 1, math.ceil(box["y"]) + 1
    x1, y1 = math.floor(box["x"] + box["width"]) - 1, math.floor(box["y"] + box["height"]) - 1
    page.screenshot(path=str(path), clip={"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0})
    return np.asarray(Image.open(path).convert("RGB"))


def status_text(page) -> str:
    """The Webcam tab's status line, without the timer Gradio may draw over it while an event runs."""
    text = page.locator("#live-status").inner_text()
    return "\n".join(line for line in text.splitlines() if not re.fullmatch(r"\s*(processing \|\s*)?[\d.]+s\s*", line)).strip()


def digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def border_mean(image: np.ndarray) -> float:
    h, w = image.shape[:2]
    bh, bw = max(1, round(h * BORDER)), max(1, round(w * BORDER))
    ring = np.ones((h, w), bool)
    ring[bh : h - bh, bw : w - bw] = False
    return float(image[ring].mean())


def fail_with_log(app_server, message: str):
    pytest.fail(f"{message}\n--- app output ---\n{app_server.log()}", pytrace=False)


# ------------------------------------------------------------------------------------------ Webcam helpers
class Streamer:
    """One user on the Webcam tab: an example photo as the reference, the fake camera streaming."""

    def __init__(self, browser, app_server, name: str, example: int):
        self.name, self.app = name, app_server
        self.context, self.page, self.problems = new_page(browser, app_server, name)
        self.frames: dict[str, np.ndarray] = {}  # digest -> rendered frame, in the order first shown
        self.urls: list[str] = []
        self.statuses: list[str] = []
        self.page.get_by_role("tab", name="Webcam").click()
        photos = self.page.locator(".block", has_text="Example photos").last.locator("button")
        photos.nth(example).click()
        status = self.page.locator("#live-status")
        try:
            status.get_by_text("Reference set").wait_for(timeout=RENDER_TIMEOUT_MS)
        except Exception:
            fail_with_log(app_server, f"{name}: the reference was not set; status: {status_text(self.page)!r}")
        view = block(self.page, "What the model sees").locator("img")
        self.model_view = fetch_image(self.page, view.get_attribute("src"))

    def start_camera(self) -> None:
        cam = block(self.page, "Webcam")
        cam.get_by_text("Click to Access Webcam").click()
        video = cam.locator("video")
        self.page.wait_for_function("v => v.readyState >= 2 && v.videoWidth > 0", arg=video.element_handle())
        self.camera_size = video.evaluate("v => [v.videoWidth, v.videoHeight]")
        cam.locator("button.capture-button").click()  # "Record": the stream starts

    def poll(self) -> bool:
        """Fetch the Result picture if its src changed; True when a new picture was seen."""
        img = block(self.page, "Result").locator("img")
        if not img.count():
            return False
        src = img.first.get_attribute("src")
        if not src or (self.urls and self.urls[-1] == src):
            return False
        self.urls.append(src)
        frame = fetch_image(self.page, src)
        self.frames.setdefault(digest(frame), frame)
        self.statuses.append(status_text(self.page))
        return True

    def wait_first_frame(self, timeout_s: float = RENDER_TIMEOUT_MS / 1000) -> float:
        start = time.monotonic()
        while not self.poll():
            if time.monotonic() - start > timeout_s:
                fail_with_log(self.app, f"{self.name}: no rendered frame within {timeout_s:.0f} s; status: "
                                        f"{status_text(self.page)!r}")
            self.page.wait_for_timeout(250)
        return time.monotonic() - start

    def close(self) -> None:
        self.context.close()


def stream_for(users: list[Streamer], seconds: float, min_frames: int, limit_s: float) -> float:
    """Poll every user's Result for ``seconds``, longer (up to ``limit_s``) until each has ``min_frames``."""
    start = time.monotonic()
    while True:
        for user in users:
            user.poll()
        elapsed = time.monotonic() - start
        if elapsed >= seconds and all(len(u.frames) >= min_frames for u in users):
            return elapsed
        if elapsed >= limit_s:
            return elapsed
        users[0].page.wait_for_timeout(250)


# ------------------------------------------------------------------------------------------ tests
def test_page_loads_and_an_upload_example_renders_a_video(browser, app_server, shots):
    context, page, problems = new_page(browser, app_server, "upload")
    try:
        assert page.title() == "turbonext"
        assert "embedded demo model" in page.locator("#model-notice").inner_text()
        page.screenshot(path=str(shots / "page_loaded.png"), full_page=True)
        examples = page.locator(".block", has_text="Examples (offline)").last.locator("tbody tr")
        examples.first.wait_for()
        start = time.monotonic()
        examples.first.click()  # the synthetic figure, "dance", 4 steps, 24 frames
        video = block(page, "reference | pose | result").locator("video")
        try:
            video.wait_for(timeout=RENDER_TIMEOUT_MS)
        except Exception:
            fail_with_log(app_server, f"no video after the example; status: {page.locator('#upload-status').inner_text()!r}")
        seconds = time.monotonic() - start
        # the page's own player: loaded, a picture of the clip's size, playing (autoplay)
        page.wait_for_function("v => v.readyState >= 2 && v.duration > 0 && v.videoWidth > 0",
                               arg=video.element_handle())
        first = video.evaluate("v => v.currentTime")
        page.wait_for_timeout(1000)
        played = video.evaluate("v => ({w: v.videoWidth, h: v.videoHeight, duration: v.duration, time: v.currentTime,"
                                " error: v.error && v.error.code})")
        assert played["error"] is None and played["time"] != first, f"the clip does not play: {played}"
        assert played["w"] == 3 * played["h"], f"expected reference | pose | result side by side: {played}"
        assert "Done: 24 frames" in page.locator("#upload-status").inner_text()
        video.screenshot(path=str(shots / "upload_video.png"))
        # the file the page plays, decoded: every frame there, the result third not empty
        body, kind = fetch_bytes(page, video.get_attribute("src"))
        assert kind.startswith("video/"), kind
        clip = shots / "upload_example.mp4"
        clip.write_bytes(body)
        from turbonext.data.video_io import iter_frames

        _, frames = iter_frames(clip)
        frames = [frame for _, _, frame in frames]
        assert len(frames) == 24 and frames[0].shape[1] == played["w"]
        third = played["w"] // 3
        result_means = [float(frame[:, 2 * third :].mean()) for frame in frames]
        assert min(result_means) > 3, f"the result third is black: {result_means}"
        assert len({digest(frame[:, 2 * third :]) for frame in frames}) > 1, "the result does not move"
        FIGURES["upload"] = {"seconds_to_video": round(seconds, 1), "frames": len(frames),
                             "size": [played["w"], played["h"]], "duration_s": round(played["duration"], 2),
                             "bytes": len(body)}
        problems.check(app_server)
    finally:
        context.close()


def test_webcam_streams_clean_pictures_that_update(browser, app_server, shots):
    user = Streamer(browser, app_server, "webcam", example=0)  # the synthetic figure: on black
    try:
        user.start_camera()
        assert user.camera_size == [640, 480], user.camera_size
        first_frame_s = user.wait_first_frame()
        start = time.monotonic()
        snapshots = []
        while time.monotonic() - start < STREAM_SECONDS or len(user.frames) < MIN_DISTINCT_FRAMES:
            if time.monotonic() - start > 4 * STREAM_SECONDS:
                break
            user.poll()
            if len(snapshots) < (time.monotonic() - start) // 5 + 1:  # what the page draws, every 5 s
                path = shots / f"webcam_result_{len(snapshots)}.png"
                snapshots.append(shown_picture(user.page, block(user.page, "Result").locator("img"), path))
            user.page.wait_for_timeout(250)
        streamed = time.monotonic() - start
        user.page.screenshot(path=str(shots / "webcam_streaming.png"), full_page=True)
        status = status_text(user.page)
        frames = list(user.frames.values())
        borders = [border_mean(frame) for frame in frames]
        shown_borders = [border_mean(shot) for shot in snapshots]
        FIGURES["webcam"] = {
            "first_frame_s": round(first_frame_s, 1), "streamed_s": round(streamed, 1),
            "pictures_shown": len(user.urls), "distinct_frames": len(frames),
            "border_mean_max": round(max(borders), 2), "border_mean_mean": round(float(np.mean(borders)), 2),
            "screenshots": len(snapshots), "screenshot_border_mean_max": round(max(shown_borders), 2),
            "figure_mean_min": round(min(float(frame.mean()) for frame in frames), 1), "status": status,
        }
        assert len(frames) >= MIN_DISTINCT_FRAMES, f"the picture did not update: {FIGURES['webcam']}"
        assert max(borders) < DARK_BACKGROUND, f"the background is not dark: {borders}"
        assert max(shown_borders) < DARK_BACKGROUND, f"the displayed picture's background is not dark: {shown_borders}"
        assert min(float(frame.mean()) for frame in frames) > 3, "a rendered frame is all black"
        assert status.startswith("shown:"), status
        assert not any("no person in view" in s for s in user.statuses[1:] + [status]), user.statuses
        user.problems.check(app_server)
    finally:
        user.close()


def test_two_browser_contexts_never_exchange_frames_or_references(browser, app_server, shots):
    users = [Streamer(browser, app_server, "user A", example=0), Streamer(browser, app_server, "user B", example=1)]
    try:
        a, b = users
        assert digest(a.model_view) != digest(b.model_view)
        for user in users:
            user.start_camera()
        for user in users:
            user.wait_first_frame()
        streamed = stream_for(users, STREAM_SECONDS, MIN_DISTINCT_FRAMES, limit_s=6 * STREAM_SECONDS)
        for user in users:
            user.page.screenshot(path=str(shots / f"isolation_{user.name.replace(' ', '_')}.png"), full_page=True)
        shared = set(a.frames) & set(b.frames)
        FIGURES["isolation"] = {
            "streamed_s": round(streamed, 1), "frames_A": len(a.frames), "frames_B": len(b.frames),
            "frames_in_common": len(shared),
            "status_A": status_text(a.page), "status_B": status_text(b.page),
        }
        for user in users:
            assert len(user.frames) >= MIN_DISTINCT_FRAMES, f"{user.name} saw too few frames: {FIGURES['isolation']}"
        assert not shared, f"{len(shared)} rendered frame(s) shown to both users"
        # each user's reference is their own: their "What the model sees" picture, checked again now, is the one
        # they set, and its colours are those of their photo, not of the other user's
        for user in users:
            view = block(user.page, "What the model sees").locator("img")
            assert digest(fetch_image(user.page, view.get_attribute("src"))) == digest(user.model_view)
        from turbonext.jobs.examples import example_files

        photos = [np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).mean(0) for path in example_files().values()]
        for index, user in enumerate(users):
            colour = user.model_view.reshape(-1, 3).mean(0)
            distances = [float(np.abs(colour - photo).mean()) for photo in photos[:2]]
            assert int(np.argmin(distances)) == index, f"{user.name} sees the other photo: {distances}"
        # every frame file a user was shown lives in that user's own stream folder
        folders = [{url.rsplit("/", 2)[-2] for url in user.urls} for user in users]
        assert len(folders[0]) == len(folders[1]) == 1 and not folders[0] & folders[1], folders
        for user in users:
            user.problems.check(app_server)
    finally:
        for user in users:
            user.close()
