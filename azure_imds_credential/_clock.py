"""Time, sleep and randomness as one injectable object, so tests never patch `time`."""

from __future__ import annotations

import time
from typing import Any


class Clock:
    """The system clock. Tests pass a subclass whose sleeps advance a fake time."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (token expiry is in these)."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds for deadlines and delays."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)

    def random(self) -> float:
        """A number in [0, 1) for retry jitter."""
        value: float = _rng().random()
        return value


_RANDOM: Any = None


def _rng() -> Any:
    # `random` is imported on first retry, not at import time (it pulls in hashlib).
    global _RANDOM
    if _RANDOM is None:
        import random

        _RANDOM = random.Random()  # noqa: S311 - jitter, not cryptography
    return _RANDOM


SYSTEM_CLOCK = Clock()
