"""The one retry schedule (IMDS.md, "Status codes" and the documented retry strategy)."""

from __future__ import annotations

from dataclasses import dataclass

from .steps import Verdict


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try again. Delays grow by `growth` from `first_delay`, jittered downward.

    Jitter only shortens a delay (never below `first_delay` for 5xx: IMDS asks for >= 1 s),
    so the worst case is the documented schedule and a herd of processes still spreads out.
    """

    max_retries: int = 5  # IMDS's documented strategy: 5 retries
    first_delay: float = 1.0  # 5xx: "retry after >= 1 s"
    growth: float = 1.5
    max_delay: float = 8.0
    # 410/404: IMDS is updating and is back within 70 s: keep trying at least that long,
    # but never sleep more than 4 s so the recovered IMDS is seen within 5 s (no 40 s gaps).
    updating_window: float = 70.0
    updating_max_delay: float = 4.0
    jitter: float = 0.15

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.first_delay < 0 or self.max_delay < self.first_delay or self.growth < 1:
            raise ValueError("delays must satisfy 0 <= first_delay <= max_delay and growth >= 1")


def retry_delay(
    policy: RetryPolicy,
    verdict: Verdict,
    retry: int,
    elapsed: float,
    retry_after: float | None,
    random: float,
    *,
    streak: int | None = None,
) -> float | None:
    """Seconds to wait before retry number `retry` (1-based), or None to give up.

    `elapsed` is the time since the first attempt; `random` a number in [0, 1). `streak`
    (default `retry`) counts the retries for this kind of failure only: the delay grows with
    it, so a 429 after three 500s waits like a first 429, not like a fourth 5xx (a different
    cause starts its own backoff; `max_retries` still counts every retry).
    """
    if verdict is Verdict.UPDATING:
        if retry > policy.max_retries and elapsed >= policy.updating_window:
            return None
        cap = policy.updating_max_delay
    elif verdict in (Verdict.THROTTLED, Verdict.TRANSIENT):
        if retry > policy.max_retries:
            return None
        cap = policy.max_delay
    else:
        return None
    if retry_after is not None:
        # The server said how long: waiting less only earns another refusal. `first_delay` stays
        # the floor, or "Retry-After: 0" on a 410 (retried for 70 s) is a busy loop.
        return max(retry_after, policy.first_delay)
    base = min(policy.first_delay * policy.growth ** ((retry if streak is None else streak) - 1), cap)
    return max(base * (1.0 - policy.jitter * random), min(policy.first_delay, base))
