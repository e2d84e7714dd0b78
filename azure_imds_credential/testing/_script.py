"""Fault scripts: which fault a token request gets, from a queue, timed tracks and a default.

Pure bookkeeping on times the caller reads from the emulator's clock, so that a test with a
fake clock moves through "410 for 16 s" without sleeping.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from ._faults import Fault, Step

__all__ = ["FaultPlan"]


@dataclass
class _Track:
    """A sequence of steps played one after the other, starting at ``step_start``."""

    steps: tuple[Step, ...]
    step_start: float
    index: int = 0
    used: int = 0

    def take(self, now: float) -> tuple[bool, Fault | None]:
        """(whether this track decides the request, the fault) for a request at ``now``."""
        if now < self.step_start and self.index == 0 and self.used == 0:
            return False, None  # not started yet (``during(..., after=...)``)
        while self.index < len(self.steps):
            step = self.steps[self.index]
            if step.seconds is not None and now >= self.step_start + step.seconds:
                # Time-based end: the next step starts when this one ended, not at ``now``,
                # so "410 for 16 s, then 500 for 10 s" means 0-16 s and 16-26 s.
                self._advance(self.step_start + step.seconds)
                continue
            self.used += 1
            if step.times is not None and self.used >= step.times:
                self._advance(now)
            return True, step.fault
        return False, None

    def _advance(self, start: float) -> None:
        self.index += 1
        self.used = 0
        self.step_start = start

    @property
    def finished(self) -> bool:
        return self.index >= len(self.steps)


class FaultPlan:
    """Decides the fault of each token request. Not thread-safe: the emulator locks.

    Precedence: the ``push`` queue (one fault per request), then scripts and windows in the
    order they were added (the first one in force decides, an ``ok`` step included), then
    the ``always`` fault.
    """

    def __init__(self) -> None:
        self.queue: collections.deque[Fault] = collections.deque()
        self.tracks: list[_Track] = []
        self.always: Fault | None = None

    def add_script(self, steps: tuple[Step, ...], start: float) -> None:
        if steps:
            self.tracks.append(_Track(steps, start))

    def clear(self) -> None:
        self.queue.clear()
        self.tracks.clear()
        self.always = None

    def take(self, now: float) -> Fault | None:
        if self.queue:
            return self.queue.popleft()
        decided: tuple[bool, Fault | None] = (False, None)
        for track in self.tracks:
            decided = track.take(now)
            if decided[0]:
                break
        # Finished tracks never decide again: drop them so long runs don't accumulate.
        self.tracks = [track for track in self.tracks if not track.finished]
        return decided[1] if decided[0] else self.always

    def pending(self) -> bool:
        """Whether anything is scheduled beyond ``always``."""
        return bool(self.queue or self.tracks)
