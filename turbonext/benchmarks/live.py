"""The app's webcam path, timed end to end: ``turbonext bench live`` (``python -m turbonext bench live``).

``turbonext bench stream`` times a :class:`~turbonext.StreamSession` fed as fast as it can take frames.
A user's webcam is different: frames come at the camera's rate, each one goes through pose detection,
tracking, smoothing and cropping on the caller's thread while the model runs on its worker, and a
frame the worker has not taken yet is replaced by the newer one (:class:`~turbonext.jobs.live.LiveSession`,
exactly what ``app.py`` runs). This replays a "webcam" at a fixed rate (default 12.5 fps, the app's
``STREAM_EVERY``): a synthetic person moving (from :func:`~turbonext.jobs.driving_inputs.synthetic_demo_inputs`,
which the real detectors find), placed in a 640x480 frame. It reports what a user sees: rendered FPS,
latency from a webcam frame arriving to its rendered frame being ready (detection, waiting for the
model and the model; camera and display not included) and the model's part of it, frames dropped, how many frames were pose-detected, and the detection time.
"""

from __future__ import annotations

import time

import numpy as np

from turbonext.jobs.driving_inputs import synthetic_demo_inputs
from turbonext.jobs.live import LiveSession
from turbonext.jobs.reference import native_size


WEBCAM_SIZE = (480, 640)  # height, width


def webcam_frames(size: int, num_frames: int = 32, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """(reference photo, looping webcam frames): a synthetic person moving, centred in 640x480 frames."""
    demo = synthetic_demo_inputs(size=size, num_frames=num_frames, seed=seed)
    h, w = WEBCAM_SIZE
    frames = []
    for truth in demo.truth:
        person = np.asarray(truth.convert("RGB").resize((h, h)))
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, (w - h) // 2 : (w - h) // 2 + h] = person
        frames.append(frame)
    frames += frames[-2:0:-1]  # play forwards then backwards: a loop without a jump
    return np.asarray(demo.reference.convert("RGB")), frames


def run_live_benchmark(pipe, detector, seconds: float = 30.0, input_fps: float = 12.5, warmup_s: float = 5.0,
                       **live_kwargs) -> dict:
    """Feed a replayed webcam to a :class:`LiveSession` at ``input_fps`` for ``warmup_s`` (after the first
    rendered frame) + ``seconds``; figures cover the ``seconds`` part only. ``live_kwargs`` go to
    ``LiveSession`` (window, frames_per_level, num_inference_steps, compile, schedule)."""
    reference, frames = webcam_frames(native_size(pipe))
    live = LiveSession(pipe, detector, **live_kwargs)
    live.set_reference(reference)
    stepper = live.runner.session
    session = stepper.session
    period = 1.0 / input_fps
    start = time.perf_counter()
    measure_from = None
    out0 = dropped0 = in0 = detected0 = 0
    i = 0
    try:
        while True:
            now = time.perf_counter()
            if measure_from is None and session.stats.frames_out and now - start >= warmup_s:
                measure_from = now
                out0, dropped0, in0, detected0 = (session.stats.frames_out, live.runner.dropped, live.frames_seen,
                                                  live.detections)
                session.stats.latencies.clear()
                stepper.latencies.clear()
            if measure_from is not None and now - measure_from >= seconds:
                break
            if now - start > warmup_s + seconds + 600:
                raise RuntimeError("no frame came out of the model within 10 minutes")
            live.process(frames[i % len(frames)])
            i += 1
            time.sleep(max(0.0, start + i * period - time.perf_counter()))  # the camera's clock
        elapsed = time.perf_counter() - measure_from
        rendered = session.stats.frames_out - out0
        model = np.array(session.stats.latencies) * 1000
        webcam = np.array(stepper.latencies) * 1000
        return {
            "name": f"live {session.schedule_name} window={session.window} frames_per_level={session.per_level} "
                    f"steps={session.levels} compile={live_kwargs.get('compile')}",
            "input_fps": (live.frames_seen - in0) / elapsed, "rendered_fps": rendered / elapsed,
            "p50_latency_ms": float(np.percentile(webcam, 50)) if len(webcam) else None,
            "p95_latency_ms": float(np.percentile(webcam, 95)) if len(webcam) else None,
            "p50_model_latency_ms": float(np.percentile(model, 50)) if len(model) else None,
            "detect_ms": float(np.mean(live.detect_ms)) if live.detect_ms else None,  # the last 30 detections
            "detections": live.detections - detected0,
            "dropped": live.runner.dropped - dropped0, "frames_in": live.frames_seen - in0, "frames_out": rendered,
            "first_frame_s": session.stats.first_frame_time, "seconds": elapsed, "detector": detector.name,
        }
    finally:
        live.close()


def markdown_rows(rows: list[dict]) -> list[str]:
    lines = ["| setting | detector | webcam fps | rendered FPS | p50 latency ms | p95 latency ms | p50 model part ms | "
             "detection ms | detected / dropped / in |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = lambda v, spec=".1f": "-" if v is None else format(v, spec)  # noqa: E731
        lines.append(f"| {r['name']} | {r['detector']} | {fmt(r['input_fps'])} | {fmt(r['rendered_fps'])} | "
                     f"{fmt(r['p50_latency_ms'], '.0f')} | {fmt(r['p95_latency_ms'], '.0f')} | "
                     f"{fmt(r['p50_model_latency_ms'], '.0f')} | "
                     f"{fmt(r['detect_ms'])} | {r['detections']} / {r['dropped']} / {r['frames_in']} |")
    return lines
