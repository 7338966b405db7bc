"""Live pose transfer from a webcam: the logic behind the app's Webcam tab, free of any UI.

Per webcam frame, on the caller's thread (it overlaps with the UNet running on the worker):
detect people -> follow the main person -> One-Euro smooth their keypoints -> map them into a
square crop that follows the person slowly (the training framing: a square around the person,
black outside the frame) -> render the pose map -> hand it to a :class:`LatestFrameRunner`.
The worker runs the :class:`~turbonext.streaming.StreamSession`; :meth:`LiveSession.process`
only submits and picks up the newest rendered frame, so it never waits for the model and no
backlog builds up however fast frames arrive.

One pipeline may serve several live sessions (several app users): every session's stream keeps its own
reference (a stream renders the reference it was created with), and a per-pipeline lock keeps their
model calls apart.
"""

from __future__ import annotations

import collections
import threading
import time

import numpy as np

from turbonext.data.crop import CropBox, square_crop_box
from turbonext.jobs.reference import (
    PreparedReference,
    native_size,
    pose_map_in_crop,
    pose_style_of,
    prepare_reference,
    reference_pose_for,
)
from turbonext.jobs.sharing import pipeline_lock
from turbonext.models.reference_attention import NoReferenceError
from turbonext.pose.keypoints import Person
from turbonext.pose.smoothing import OneEuroFilter
from turbonext.pose.tracking import MainPersonTracker
from turbonext.streaming.runner import LatestFrameRunner
from turbonext.utils.images import load_rgb


# --------------------------------------------------------------------------------- framing
class FollowingCrop:
    """A square crop around the person that follows them slowly (the camera stays calm).

    The first sighting sets the crop; afterwards it moves a fraction ``follow`` of the way towards
    the person's current square per frame (0 = fixed forever, 1 = follow every frame).
    """

    def __init__(self, margin: float = 0.2, follow: float = 0.05) -> None:
        if not 0.0 <= follow <= 1.0:
            raise ValueError(f"follow must be in [0, 1] (fraction of the way per frame); got {follow}.")
        self.margin, self.follow = margin, follow
        self.crop: CropBox | None = None

    def reset(self) -> None:
        self.crop = None

    def update(self, person: Person | None) -> CropBox | None:
        """Move towards ``person``'s square; keeps the last crop when nobody is seen."""
        box = None if person is None else person.box()
        if box is None:
            return self.crop
        target = np.asarray(square_crop_box(box, margin=self.margin))
        if self.crop is None:
            self.crop = tuple(float(v) for v in target)
        else:
            current = np.asarray(self.crop)
            self.crop = tuple(float(v) for v in current + self.follow * (target - current))
        return self.crop


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
        follow: how fast the crop follows the person (see :class:`FollowingCrop`).
        min_cutoff / beta: One-Euro smoothing of the keypoints (lower ``min_cutoff``: steadier).
    """

    def __init__(self, pipe, detector, size: int | None = None, num_inference_steps: int = 4, window: int = 16,
                 frames_per_level: int | None = None, compile: str | None = None, margin: float = 0.2,
                 follow: float = 0.05, min_cutoff: float = 1.0, beta: float = 0.05, generator=None,
                 schedule: str | None = None) -> None:
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
        self.tracker = MainPersonTracker()
        self.smoother = OneEuroFilter(min_cutoff=min_cutoff, beta=beta)
        self.framer = FollowingCrop(margin=margin, follow=follow)
        self.reference: PreparedReference | None = None
        self.runner: LatestFrameRunner | None = None
        self.pose_map: np.ndarray | None = None  # the newest pose map (for the UI's preview)
        self.last_output: np.ndarray | None = None
        self.frames_seen = 0
        self.detect_ms: collections.deque = collections.deque(maxlen=30)
        self.detections = 0  # webcam frames detected (the rest were replaced before the model was ready)
        self._in_times: collections.deque = collections.deque(maxlen=30)
        self._out_times: collections.deque = collections.deque(maxlen=30)

    # ------------------------------------------------------------------ reference
    def set_reference(self, image, require_person: bool = True) -> PreparedReference:
        """Use the person in ``image`` (path, PIL or uint8 RGB array); restarts the stream.

        Returns the prepared reference (square crop around the person, on black) with a notice when
        a centre crop had to be used (only with ``require_person=False``; else a ``ValueError``).
        """
        with self._detector_lock:  # the running stream's detection thread shares the detector
            prepared = prepare_reference(image, self.detector, self.size, self.margin, require_person,
                                         pose_style=self.pose_style)
        reference_pose = reference_pose_for(self.pipe, prepared)  # raises before the running stream is touched
        self.close()
        with self.lock:
            session = self.pipe.stream(reference_image=prepared.image, reference_pose=reference_pose, output_type="np",
                                       height=self.size, width=self.size, **self.stream_kwargs)
        self.reference = prepared
        self.tracker.reset()  # before the new runner's detection thread starts
        self.smoother.reset()
        self.framer.reset()
        self.last_output = None
        self.runner = LatestFrameRunner(_PoseStepper(session, self.lock), max_outputs=8, prepare=self._prepare)
        return prepared

    # ------------------------------------------------------------------ per frame
    def make_pose_map(self, frame: np.ndarray, timestamp: float | None = None) -> np.ndarray:
        """Detect, follow, smooth, frame and render: webcam frame -> pose map (size x size uint8 RGB).
        Also kept as :attr:`pose_map` (the UI's preview)."""
        return self._pose_map_from_rgb(load_rgb(frame, "webcam frame"), timestamp)

    def _pose_map_from_rgb(self, rgb: np.ndarray, timestamp: float | None) -> np.ndarray:
        start = time.perf_counter()
        with self._detector_lock:
            person = self.tracker(self.detector.detect(rgb))
        self.detect_ms.append((time.perf_counter() - start) * 1000)
        self.detections += 1
        if person is None:
            pose_map = np.zeros((self.size, self.size, 3), np.uint8)
        else:
            kp = person.keypoints.copy()
            valid = np.repeat(person.visible()[:, None], 2, axis=1)
            kp[:, :2] = self.smoother(person.xy, timestamp, valid).astype(np.float32)
            person = Person(kp, person.score, person.bbox)
            pose_map = pose_map_in_crop(person, self.framer.update(person), self.size, self.pose_style)
        self.pose_map = pose_map
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
            self._out_times.append(time.perf_counter())
        return self.last_output

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
               "output_fps": self._rate(self._out_times),
               "detect_ms": float(np.mean(self.detect_ms)) if self.detect_ms else None}
        if self.runner is not None:
            summary = self.runner.session.session.stats.summary()
            webcam = list(self.runner.session.latencies)
            out.update(dropped=self.runner.dropped, processed=self.runner.processed, frames_out=summary["frames_out"],
                       p50_latency_ms=float(np.percentile(webcam, 50) * 1000) if webcam else None,
                       p50_model_latency_ms=summary["p50_latency_ms"], mean_step_ms=summary["mean_step_ms"])
        return out

    def stats_markdown(self) -> str:
        """The stats as one line of Markdown for the UI."""
        s = self.stats()

        def fmt(value, unit: str = "", digits: int = 1) -> str:
            return "–" if value is None else f"{value:.{digits}f}{unit}"

        return (f"**in** {fmt(s['input_fps'])} fps · **out** {fmt(s['output_fps'])} fps · "
                f"**latency** {fmt(s.get('p50_latency_ms'), ' ms', 0)} · **UNet step** {fmt(s.get('mean_step_ms'), ' ms', 0)} · "
                f"**pose** {fmt(s['detect_ms'], ' ms', 0)} · **dropped** {s.get('dropped', 0)} of {s['frames_in']}")

    def close(self) -> None:
        """Stop the worker (the session can be given a new reference afterwards)."""
        if self.runner is not None:
            self.runner.close()
            self.runner = None
