"""What the acquisition flow asks the shells to do, and what they report back."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Send:
    """Send one GET and report a `Received`. Timeouts are already cut to the deadline."""

    url: str
    headers: Mapping[str, str]
    connect_timeout: float
    read_timeout: float
    # A presence probe: no Metadata header, so real IMDS answers 400 at once.
    probe: bool = False


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before the next attempt; `reason` says what IMDS answered (for logs and progress).

    Public as `RetryNotice`: `seconds` until the next attempt, `reason`, `attempt` (the
    attempt that just failed, 1-based) and `elapsed` seconds since the call started.
    """

    seconds: float
    reason: str
    attempt: int
    elapsed: float


Step = Send | Sleep


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An HTTP answer. Header names are lower-case; `body` is capped by the shell."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    truncated: bool = False


class FailureKind(enum.Enum):
    """How a request failed without an HTTP answer."""

    UNREACHABLE = "connection refused or no route"  # nothing listens: not on Azure
    CONNECT_TIMEOUT = "connect timed out"  # packets dropped: not on Azure (or firewalled)
    READ_TIMEOUT = "no answer in time"
    RESET = "connection reset"  # IMDS updating or overloaded


@dataclass(frozen=True, slots=True)
class TransportFailure:
    kind: FailureKind
    detail: str = ""
    # The transport's exception, so errors can be chained with `from`.
    exception: BaseException | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Received:
    """The shell's report after a Send (or a Sleep, with `result` None).

    `now` is the monotonic clock after the step; `sent_at` the wall clock when it was sent.
    """

    result: HttpAnswer | TransportFailure | None
    now: float
    sent_at: float = 0.0
