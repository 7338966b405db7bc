"""Where a streaming tick spends its time: pose guider, UNet, scheduler update, decode, host.

``session.profiler = TickProfiler(device)`` makes :class:`~turbonext.StreamSession` mark the
boundaries of each section of every tick. On CUDA the marks are CUDA events recorded on the current
stream (no host sync inside the loop; :meth:`TickProfiler.summary` synchronises once at the end), so a
section's time is its span on the GPU timeline: its kernels plus any idle gaps while the GPU waited for
the host to launch them (an eager UNet that is launch-bound shows a span well above its kernel time; a
CUDA-graph replay shows close to pure kernel time). On a CPU the marks are wall-clock times.
``host_ms`` is the tick's wall time beyond the sum of its sections (Python before the first launch and
after the last mark).
"""

from __future__ import annotations

import time

import numpy as np
import torch


SECTIONS = ("pose_guider", "unet", "scheduler", "decode")


class TickProfiler:
    """Collects per-section times of streaming ticks; :meth:`summary` gives mean ms per tick."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self._ticks: list[tuple[float, float, list[tuple[str, object]]]] = []
        self._marks: list[tuple[str, object]] | None = None
        self._wall_start = 0.0

    def _now(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            return event
        return time.perf_counter()

    def start_tick(self) -> None:
        self._wall_start = time.perf_counter()
        self._marks = [("start", self._now())]

    def mark(self, section: str) -> None:
        """The section named ``section`` ends here (it began at the previous mark)."""
        if self._marks is not None:
            self._marks.append((section, self._now()))

    def end_tick(self) -> None:
        if self._marks is not None:
            self._ticks.append((self._wall_start, time.perf_counter(), self._marks))
            self._marks = None

    def _elapsed_ms(self, a, b) -> float:
        return a.elapsed_time(b) if self.cuda else (b - a) * 1000.0

    def summary(self) -> dict:
        """Mean ms per tick of each section, of the whole tick (wall) and of the host's share."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
        per_section: dict[str, list[float]] = {name: [] for name in SECTIONS}
        walls, hosts = [], []
        for wall_start, wall_end, marks in self._ticks:
            device_ms, tick_sections = 0.0, dict.fromkeys(SECTIONS, 0.0)
            for (_, a), (name, b) in zip(marks[:-1], marks[1:]):  # a section may recur in a tick (uniform: K calls)
                ms = self._elapsed_ms(a, b)
                tick_sections[name] = tick_sections.get(name, 0.0) + ms
                device_ms += ms
            for name, ms in tick_sections.items():
                per_section.setdefault(name, []).append(ms)
            wall_ms = (wall_end - wall_start) * 1000.0
            walls.append(wall_ms)
            hosts.append(max(wall_ms - device_ms, 0.0))
        out = {f"{name}_ms": float(np.mean(v)) if v else 0.0 for name, v in per_section.items()}
        out.update(tick_ms=float(np.mean(walls)) if walls else 0.0, host_ms=float(np.mean(hosts)) if hosts else 0.0,
                   ticks=len(self._ticks))
        return out
