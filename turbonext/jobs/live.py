"""Live pose transfer from a webcam: the logic behind the app's Webcam tab, free of any UI.

Per webcam frame, on the runner's preparation thread (it overlaps with the UNet running on the worker):
detect people -> follow the main person (or everyone, ``people="all"``) -> One-Euro smooth their keypoints ->
map them into a square crop that follows them slowly (the training framing: a square around the person,
black outside the frame) -> render the pose map (:class:`~turbonext.streaming.live_poses.LivePoseMaps`) ->
hand it to a :class:`LatestFrameRunner`.
The worker runs the :class:`~turbonext.streaming.StreamSession`; :meth:`LiveSession.process`
only submits and picks up the newest rendered frame, so it never waits for the model and no
backlog builds up however fast frames arrive.

One pipeline may serve several live sessions (several app users): every session's stream keeps its own
reference (a stream renders the reference it was created with), and a per-pipeline lock keeps their
model calls apart.
"""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from turbonext.jobs.driving_inputs import reset_tracking
from turbonext.jobs.reference import (
    PreparedReference,
    native_size,
    pose_style_of,
    prepare_reference,
    reference_pose_for,
)
from turbonext.jobs.sharing import pipeline_lock, sharing_notice
from turbonext.models.reference_attention import NoReferenceError
from turbonext.streaming.live_poses import LivePoseMaps
from turbonext.streaming.runner import LatestFrameRunner
from turbonext.utils.images import load_rgb


# --------------------------------------------------------------------------------- display
class FrameFiles:
    """Every streamed picture in a file of its own, complete before its name exists, never written again.

    Why (the app's "Too little/Too much data for declared Content-Length" errors from h11 and the browser's
    ERR_CONTENT_LENGTH_MISMATCH on streamed images): a stream handler that returns numpy arrays has Gradio
    (6.31, ``processing_utils.save_pil_to_cache``) encode each one and write it to
    ``<cache>/<hash of the bytes>/image.webp`` with ``write_bytes``, which truncates and rewrites the file
    *in place* even when it already exists. The webcam tab returned the same picture many times (the last
    rendered frame and the pose map are shown again on every webcam tick until a new one is ready; every
    frame without a person has the same black pose map), so the same path was truncated and rewritten while
    the browser was still downloading it: the server had declared the old length and found fewer bytes
    (truncated) or more (the stat raced a partial write). Here each new picture gets a new name and is
    written under a temporary name first, then renamed into place (atomic), and an unchanged picture is not
    sent again at all (:meth:`LiveSession.display_files`); only the newest ``keep`` files stay on disk
    (the browser fetches each within a second of receiving its name).
    """

    def __init__(self, folder: str | Path | None = None, keep: int = 64, quality: int = 90) -> None:
        if keep < 2:
            raise ValueError(f"keep must be at least 2 files; got {keep}.")
        self.folder = Path(tempfile.mkdtemp(prefix="turbonext-live-", dir=folder))
        self.keep, self.quality = keep, quality
        self.written = 0
        self._files: collections.deque = collections.deque()
        self._lock = threading.Lock()

    def write(self, frame: np.ndarray, kind: str = "frame") -> str:
        """Write ``frame`` (uint8 RGB) to a new JPEG file; returns its path."""
        with self._lock:
            if self.folder is None:
                raise ValueError("these frame files were removed (FrameFiles.close); make a new FrameFiles.")
            self.written += 1
            path = self.folder / f"{kind}-{self.written:07d}.jpg"
            staging = self.folder / f".{path.name}.part"
            Image.fromarray(np.ascontiguousarray(frame)).save(staging, format="JPEG", quality=self.quality)
            os.replace(staging, path)  # the name appears with the whole file behind it
            self._files.append(path)
            while len(self._files) > self.keep:
                self._files.popleft().unlink(missing_ok=True)
            return str(path)

    def close(self) -> None:
        """Remove the folder and every file in it."""
        with self._lock:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder = None
                self._files.clear()


class ShownRate:
    """Frames shown per second, honest from the start: nothing until ``min_seconds`` have passed since the
    first frame was shown (a first burst of frames, shown one per webcam tick, would otherwise read as the
    webcam's rate), then the frames shown over the last ``window`` seconds divided by that span."""

    def __init__(self, window: float = 5.0, min_seconds: float = 3.0) -> None:
        self.window, self.min_seconds = window, min_seconds
        self.first: float | None = None
        self.times: collections.deque = collections.deque()

    def add(self, t: float) -> None:
        if self.first is None:
            self.first = t
        self.times.append(t)

    def rate(self, now: float) -> float | None:
        if self.first is None or now - self.first < self.min_seconds:
            return None
        while self.times and self.times[0] < now - self.window:
            self.times.popleft()
        return len(self.times) / min(self.window, now - self.first)


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


# --------------------------------------------------------------------------------- session
class _PoseStepper:
    """What the runner's worker calls: one stream step, under the pipeline's lock (one model, several users;
    each stream keeps its own reference, so the lock only keeps their GPU work apart).

    Each pose comes with its webcam frame's arrival time (``time.perf_counter``); a stream emits frames
    in the order their poses entered, so the oldest pending arrival belongs to the next frame out:
    ``latencies`` are webcam frame in -> rendered frame out (detection, waiting and the model), seconds.
    """

    def __init__(self, session, lock: threading.RLock) -> None:
        self.session, self.lock = session, lock
        self.arrivals: collections.deque = collections.deque()
        self.latencies: collections.deque = collections.deque(maxlen=2048)

    def step(self, item: tuple[np.ndarray, float]) -> list:
        pose_map, arrival = item
        with self.lock:
            frames = self.session.step(pose_map)
        self.arrivals.append(arrival)
        now = time.perf_counter()
        for _ in frames:
            if self.arrivals:
                self.latencies.append(now - self.arrivals.popleft())
        return frames


class LiveSession:
    """Webcam frames in, rendered frames out, never waiting for the model.

    Args:
        pipe: a :class:`~turbonext.TurboNextPipeline` (shared between sessions is fine).
        detector: a :class:`~turbonext.pose.detectors.PoseDetector` (one per session: some keep
            tracking state), e.g. ``get_detector("auto")``.
        size: output size (default: the model's native size).
        num_inference_steps / window / frames_per_level / compile / schedule: see
            :meth:`TurboNextPipeline.stream` (``schedule=None``: the model's own ``config.stream_schedule``).
        margin: space around the person in the crop, as a fraction of their size.
        follow: how fast the crop follows the person
            (see :class:`~turbonext.streaming.live_poses.FollowingSquare`).
        min_cutoff / beta: One-Euro smoothing of the keypoints (lower ``min_cutoff``: steadier).
        people: "largest" (follow one person: the largest at the start, then whoever overlaps them) or "all"
            (everyone in view, up to ``max_people``, all drawn into one pose map; the model renders each of them
            with the reference's look). :meth:`set_people` changes it while streaming.
        max_people: with ``people="all"``, how many people are followed at once.
        frame_dir: where :meth:`display_files` writes the pictures to show (default: the system's temporary
            folder); each session gets a folder of its own, removed by :meth:`discard`.

    A webcam frame without a person holds the last pose (the figure stands still instead of vanishing);
    :meth:`status_line` says so while it lasts.
    """

    def __init__(self, pipe, detector, size: int | None = None, num_inference_steps: int = 4, window: int = 16,
                 frames_per_level: int | None = None, compile: str | None = None, margin: float = 0.2,
                 follow: float = 0.05, min_cutoff: float = 1.0, beta: float = 0.05, generator=None,
                 schedule: str | None = None, frame_dir: str | Path | None = None, people: str = "largest",
                 max_people: int = 4) -> None:
        self.pipe, self.detector = pipe, detector
        self.pose_style = pose_style_of(pipe)  # the maps this model was trained on (a clear error if none we draw)
        self.size = int(size or native_size(pipe))
        if self.size % 8:
            raise ValueError(f"size must be divisible by 8 (e.g. 512); got {self.size}.")
        self.stream_kwargs = dict(num_inference_steps=num_inference_steps, window=window,
                                  frames_per_level=frames_per_level, compile=compile, generator=generator,
                                  schedule=schedule)
        self.lock = pipeline_lock(pipe)
        self._detector_lock = threading.Lock()
        self.margin = margin
        self._pose_settings = dict(max_people=max_people, margin=margin, follow=follow, min_cutoff=min_cutoff,
                                   beta=beta)
        self.poses = LivePoseMaps(self.size, self.pose_style, people=people, **self._pose_settings)
        self.reference: PreparedReference | None = None
        self.runner: LatestFrameRunner | None = None
        self.pose_map: np.ndarray | None = None  # the newest pose map (for the UI's preview)
        self.last_output: np.ndarray | None = None
        self.frames_seen = 0
        self.detect_ms: collections.deque = collections.deque(maxlen=30)
        self.detections = 0  # webcam frames detected (the rest were replaced before the model was ready)
        self._in_times: collections.deque = collections.deque(maxlen=30)
        self._out_times: collections.deque = collections.deque(maxlen=30)
        self.shown = ShownRate()
        self.person_in_view = True
        self.frames_without_person = 0  # detected webcam frames with nobody (they held the last pose)
        self.output_version = 0  # +1 per new rendered frame (what display_files compares)
        self.pose_version = 0  # +1 per new pose map
        self.problem: str | None = None  # why there is no reference (a bad upload), for the status line
        self.frame_dir = frame_dir
        self._frame_files: FrameFiles | None = None
        self._sent = (0, 0)  # the versions display_files last wrote

    # ------------------------------------------------------------------ reference
    def set_reference(self, image, require_person: bool = True) -> PreparedReference:
        """Use the person in ``image`` (path, PIL or uint8 RGB array); restarts the stream.

        Returns the prepared reference (square crop around the person, on black) with a notice when
        a centre crop had to be used (only with ``require_person=False``; else a ``ValueError``).
        """
        with self._detector_lock:  # the running stream's detection thread shares the detector
            reset_tracking(self.detector)  # the webcam's person must not be carried into the photo
            prepared = prepare_reference(image, self.detector, self.size, self.margin, require_person,
                                         pose_style=self.pose_style)
            reset_tracking(self.detector)  # nor the photo's person into the webcam
        reference_pose = reference_pose_for(self.pipe, prepared)  # raises before the running stream is touched
        self.close()
        with self.lock:
            session = self.pipe.stream(reference_image=prepared.image, reference_pose=reference_pose, output_type="np",
                                       height=self.size, width=self.size, **self.stream_kwargs)
        self.reference, self.problem = prepared, None
        self.poses.reset()  # before the new runner's detection thread starts
        self.last_output = None
        self.pose_map = None
        self.shown = ShownRate()
        self.person_in_view, self.frames_without_person = True, 0
        self.runner = LatestFrameRunner(_PoseStepper(session, self.lock), max_outputs=8, prepare=self._prepare)
        return prepared

    @property
    def people(self) -> str:
        """Who drives the stream: "largest" (one person) or "all" (everyone, up to ``max_people``)."""
        return self.poses.people

    def set_people(self, people: str) -> None:
        """Follow the largest person ("largest") or everyone ("all") from the next webcam frame on; the stream
        keeps running (the figure holds its last pose until the new choice finds someone). Same choice: nothing
        changes."""
        if people == self.poses.people:
            return
        self.poses = LivePoseMaps(self.size, self.pose_style, people=people, **self._pose_settings)  # raises first

    # ------------------------------------------------------------------ per frame
    def make_pose_map(self, frame: np.ndarray, timestamp: float | None = None) -> np.ndarray:
        """Detect, follow, smooth, frame and render: webcam frame -> pose map (size x size uint8 RGB).
        Also kept as :attr:`pose_map` (the UI's preview)."""
        return self._pose_map_from_rgb(load_rgb(frame, "webcam frame"), timestamp)

    def _pose_map_from_rgb(self, rgb: np.ndarray, timestamp: float | None) -> np.ndarray:
        start = time.perf_counter()
        with self._detector_lock:
            detections = self.detector.detect(rgb)
        self.detect_ms.append((time.perf_counter() - start) * 1000)
        self.detections += 1
        poses = self.poses  # one object for the whole frame, even if set_people swaps it meanwhile
        pose_map = poses(detections, timestamp)
        self.person_in_view = poses.people_in_view > 0
        if pose_map is None:  # nobody followed: hold the last pose (black before anyone was seen)
            self.frames_without_person += 1
            if self.pose_map is not None:
                return self.pose_map
            pose_map = np.zeros((self.size, self.size, 3), np.uint8)
        self.pose_map = pose_map
        self.pose_version += 1
        return pose_map

    def _prepare(self, item: tuple[np.ndarray, float, float]) -> tuple[np.ndarray, float]:
        rgb, timestamp, arrival = item
        return self._pose_map_from_rgb(rgb, timestamp), arrival  # rgb was checked by process()

    def process(self, frame: np.ndarray, timestamp: float | None = None) -> np.ndarray | None:
        """Submit one webcam frame; return the next rendered frame in order (the last one shown again
        while none is ready; None until the first is ready).

        Never waits for the model or the pose detector: the frame is detected on the runner's
        preparation thread, and only when the model is ready for a new pose (a frame replaced by a newer
        one before that is never detected, and is counted as dropped). Raises ``ValueError`` without a
        reference or for a frame that is not uint8 RGB (H, W, 3), and ``RuntimeError`` if the worker or
        the detection failed (its error attached).
        """
        if self.runner is None:
            raise NoReferenceError("call set_reference(image) with a photo of one person first.")
        rgb = load_rgb(frame, "webcam frame")  # a bad frame is refused here, not on the worker
        now = time.perf_counter()
        self.frames_seen += 1
        self._in_times.append(now)
        self.runner.submit((rgb, now if timestamp is None else timestamp, now))
        out = self.runner.next_output()  # every rendered frame in turn, one per webcam frame
        if out is not None:
            self.last_output = out
            self.output_version += 1
            shown_at = time.perf_counter()
            self._out_times.append(shown_at)
            self.shown.add(shown_at)
        return self.last_output

    def display_files(self) -> tuple[str | None, str | None]:
        """The pictures to show that changed since the last call, each in a new file: (rendered frame, pose map);
        None for a picture that has not changed (the display keeps what it has). See :class:`FrameFiles` for why
        a picture is never sent twice nor written twice to one file."""
        if self._frame_files is None:
            self._frame_files = FrameFiles(self.frame_dir)
        out_version, pose_version = self.output_version, self.pose_version  # read before the pictures
        output, pose_map = self.last_output, self.pose_map
        result = pose = None
        if output is not None and out_version != self._sent[0]:
            result = self._frame_files.write(output, "result")
        if pose_map is not None and pose_version != self._sent[1]:
            pose = self._frame_files.write(pose_map, "pose")
        self._sent = (out_version, pose_version)
        return result, pose

    # ------------------------------------------------------------------ stats
    @staticmethod
    def _rate(times: collections.deque) -> float | None:
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    def stats(self) -> dict:
        """Input/output FPS (last 30 frames), latency (``p50_latency_ms``: webcam frame in -> rendered frame
        out; ``p50_model_latency_ms``: the pose entering the model -> out), dropped frames, detection time."""
        out = {"frames_in": self.frames_seen, "input_fps": self._rate(self._in_times),
               "output_fps": self._rate(self._out_times), "shown_fps": self.shown.rate(time.perf_counter()),
               "detect_ms": float(np.mean(self.detect_ms)) if self.detect_ms else None}
        if self.runner is not None:
            summary = self.runner.session.session.stats.summary()
            webcam = list(self.runner.session.latencies)
            out.update(dropped=self.runner.dropped, processed=self.runner.processed, frames_out=summary["frames_out"],
                       p50_latency_ms=float(np.percentile(webcam, 50) * 1000) if webcam else None,
                       p50_model_latency_ms=summary["p50_latency_ms"], mean_step_ms=summary["mean_step_ms"])
        return out

    def recent_delay(self, frames: int = 30) -> float | None:
        """Median delay (s) from a webcam frame to its rendered frame over the last ``frames`` rendered frames;
        None before 3 frames were rendered."""
        if self.runner is None:
            return None
        latencies = list(self.runner.session.latencies)[-frames:]
        return float(np.median(latencies)) if len(latencies) >= 3 else None

    def status_line(self, streaming: int = 1) -> str:
        """One line for the user, in words: frames per second shown, the delay, the webcam frames skipped
        because the model was busy, whether a person is in view, and how many people share the machine
        (``streaming``, this session included). No rate before :class:`ShownRate` has enough frames."""
        if self.runner is None:
            return self.problem or "Upload a reference photo of one person (left), then start the webcam."
        parts = []
        if self.output_version == 0:
            parts.append("starting: the first picture takes a few seconds")
        else:
            rate = self.shown.rate(time.perf_counter())
            parts.append("shown: measuring..." if rate is None else f"shown: {rate:.1f} frames/s")
            delay = self.recent_delay()
            if delay is not None:
                parts.append(f"delay {_seconds(delay)}")
        if self.runner.dropped:
            parts.append(f"skipped {self.runner.dropped} camera frames (the model was busy)")
        if not self.person_in_view:
            parts.append("no person in view: holding the last pose")
        line = " · ".join(parts)
        notice = sharing_notice(streaming)
        return f"{line}\n\n{notice}" if notice else line

    def stats_markdown(self) -> str:
        """The stats for the UI, in words (see :meth:`status_line`)."""
        return self.status_line()

    def close(self) -> None:
        """Stop the worker (the session can be given a new reference afterwards)."""
        if self.runner is not None:
            self.runner.close()
            self.runner = None

    def discard(self) -> None:
        """End the session for good: stop the worker and remove the files :meth:`display_files` wrote."""
        self.close()
        if self._frame_files is not None:
            self._frame_files.close()
            self._frame_files = None
