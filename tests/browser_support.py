"""Helpers of tests/test_browser.py: the fake camera's y4m file, the app in a subprocess, Chromium's flags.

Kept free of pytest fixtures so that it can be used by hand too, e.g. to look at the page::

    python -c "import sys; sys.path.insert(0, 'tests'); import browser_support as b; b.write_y4m('/tmp/cam.y4m')"
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("TURBONEXT_CHROMIUM", "/usr/bin/chromium")
# Chromium on a machine without a network (or a GPU): no sandbox (root), no GPU process, and none of its own
# background traffic (component updates, QUIC probes, sync), which would otherwise flood the closed network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
CAMERA_FPS = 12  # the y4m's frame rate; Gradio grabs a picture from the video element every STREAM_EVERY (0.08 s)


def rgb_to_i420(frame: np.ndarray) -> bytes:
    """An RGB uint8 frame (even sides) as planar YUV 4:2:0, full range BT.601 (y4m ``C420jpeg``)."""
    rgb = frame.astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = -0.168736 * r - 0.331264 * g + 0.5 * b + 128.0
    v = 0.5 * r - 0.418688 * g - 0.081312 * b + 128.0
    h, w = y.shape

    def sub(plane):  # 2x2 mean: the chroma planes are a quarter of the picture
        return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = [y, sub(u), sub(v)]
    return b"".join(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes() for p in planes)


def write_y4m(path: str | Path, frames: list[np.ndarray] | None = None, fps: int = CAMERA_FPS) -> Path:
    """Write ``frames`` (default: the synthetic dancer of ``turbonext bench live``, 640x480, looping forwards and
    backwards) as a YUV4MPEG2 file, the format of Chromium's ``--use-file-for-fake-video-capture``."""
    if frames is None:
        from turbonext.benchmarks.live import webcam_frames

        _, frames = webcam_frames(256)
    h, w = frames[0].shape[:2]
    path = Path(path)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(rgb_to_i420(frame))
    return path


def read_y4m(path: str | Path) -> list[np.ndarray]:
    """The luma planes of a y4m written by :func:`write_y4m` (to check it)."""
    data = Path(path).read_bytes()
    header, _, body = data.partition(b"\n")
    fields = {item[:1]: item[1:] for item in header.split()[1:]}
    w, h = int(fields[b"W"]), int(fields[b"H"])
    size = w * h * 3 // 2
    frames = []
    while body:
        assert body.startswith(b"FRAME\n"), "a y4m frame must start with FRAME"
        frames.append(np.frombuffer(body[6 : 6 + w * h], np.uint8).reshape(h, w))
        body = body[6 + size :]
    return frames


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppProcess:
    """``python app.py`` on a free localhost port, the embedded demo model on the CPU, no network.

    ``log`` collects its output (read it when a test fails). ``stop()`` ends it (terminate, then kill)."""

    def __init__(self, log_path: str | Path, max_live_sessions: int = 2, extra_args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = Path(log_path)
        env = dict(os.environ, HF_HUB_OFFLINE="1", YOLO_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
                   TOKENIZERS_PARALLELISM="false", OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
        env.pop("SPACE_ID", None)
        env.pop("GRADIO_SERVER_NAME", None)
        env.pop("GRADIO_SERVER_PORT", None)
        self._log = open(self.log_path, "wb")
        cmd = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(self.port),
               "--device", "cpu", "--max-live-sessions", str(max_live_sessions), *extra_args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self, tail: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 240.0) -> None:
        """Wait until the page answers; raise (with the app's output) if the process ends or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with code {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1.0)
        raise TimeoutError(f"the app did not answer on {self.url} within {timeout:.0f} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def missing_browser_parts() -> list[str]:
    """What the browser test needs and this machine lacks, as install hints (empty: all there)."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        missing.append(f"Playwright for Python ({err}): pip install -e '.[browser]'")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)) and shutil.which(CHROMIUM) is None:
        missing.append(f"Chromium at {CHROMIUM}: apt-get install -y --no-install-recommends chromium "
                       "(or set TURBONEXT_CHROMIUM to its path)")
    return missing


def chromium_args(y4m: str | Path) -> list[str]:
    """Chromium's flags: the quiet offline ones, and a fake camera that plays ``y4m`` (no permission prompt)."""
    return [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}"]
