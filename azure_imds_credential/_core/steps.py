"""What the acquisition flow asks the shells to do, and what they report back; the small
value types the core shares.

Internal value types derive from `Record` instead of being dataclasses: `@dataclass`
generates and compiles its methods when the module is imported (0.3-0.5 ms a class), and
these share compiled methods, which keeps `import azure_imds_credential` close to the cost of
azure-core alone. Public value types stay dataclasses (users may `dataclasses.replace` them).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


class Record:
    """Immutable slotted record: equality, hash and repr over `_fields`; fields named in
    `_hidden` never appear in `repr` (tokens)."""

    __slots__ = ()
    # The fields compared and shown: the slots, unless a class names fewer.
    _fields: ClassVar[tuple[str, ...]] = ()
    _hidden: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_fields" not in cls.__dict__:
            cls._fields = tuple(cls.__dict__.get("__slots__", ()))

    def _init(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            assert isinstance(other, Record)
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self._fields if name not in self._hidden
        )
        return f"{type(self).__qualname__}({shown})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is immutable")


class Verdict(enum.Enum):
    TOKEN = "token"
    UPDATING = "updating"  # 404/410: IMDS is updating; available again within 70 s
    THROTTLED = "throttled"  # 429
    TRANSIENT = "transient"  # 5xx, resets, timeouts on an IMDS we know is there
    LATE = "late"  # no first answer yet from an endpoint not known to be IMDS: probe it
    UNAVAILABLE = "unavailable"  # not IMDS / no identity: a chain moves on
    FAILED = "failed"  # IMDS said no in a way retrying will not fix


RETRYABLE = frozenset({Verdict.UPDATING, Verdict.THROTTLED, Verdict.TRANSIENT})


class Timeouts(Record):
    """Seconds. `deadline` bounds the whole call, retries included."""

    __slots__ = ("attempt", "connect", "deadline", "first_answer", "probe")
    connect: float  # IMDS is link-local: a connect that takes longer means dropped SYNs
    first_answer: float  # before IMDS has answered in this process: then probe
    probe: float  # IMDS answers a header-less request at once (400)
    attempt: float  # a known IMDS that is slowly fetching a token from Entra
    deadline: float  # > 70 s so a 410 (IMDS updating) is outlasted

    def __init__(
        self,
        connect: float = 1.0,
        first_answer: float = 2.0,
        probe: float = 1.0,
        attempt: float = 30.0,
        deadline: float = 80.0,
    ) -> None:
        self._init(
            connect=connect, first_answer=first_answer, probe=probe, attempt=attempt, deadline=deadline
        )
        for name in self._fields:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} timeout must be a number of seconds")
            if not 0 < value < float("inf"):
                raise ValueError(f"{name} timeout must be a positive finite number of seconds, got {value!r}")


class Send(Record):
    """Send one GET and report a `Received`. Timeouts are already cut to the deadline."""

    __slots__ = ("connect_timeout", "headers", "probe", "read_timeout", "url")
    url: str
    headers: Mapping[str, str]
    connect_timeout: float
    read_timeout: float
    # A presence probe: no Metadata header, so real IMDS answers 400 at once.
    probe: bool

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        connect_timeout: float,
        read_timeout: float,
        probe: bool = False,
    ) -> None:
        self._init(
            url=url, headers=headers, connect_timeout=connect_timeout, read_timeout=read_timeout, probe=probe
        )


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


class HttpAnswer(Record):
    """An HTTP answer. Header names are lower-case; `body` is capped by the shell."""

    __slots__ = ("body", "headers", "status", "truncated")
    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool

    def __init__(
        self, status: int, headers: Mapping[str, str], body: bytes = b"", truncated: bool = False
    ) -> None:
        self._init(status=status, headers=headers, body=body, truncated=truncated)


class FailureKind(enum.Enum):
    """How a request failed without an HTTP answer."""

    UNREACHABLE = "connection refused or no route"  # nothing listens: not on Azure
    CONNECT_TIMEOUT = "connect timed out"  # packets dropped: not on Azure (or firewalled)
    READ_TIMEOUT = "no answer in time"
    RESET = "connection reset"  # IMDS updating or overloaded


class TransportFailure(Record):
    __slots__ = ("detail", "exception", "kind")
    _fields = ("kind", "detail")  # the exception is neither compared nor shown
    kind: FailureKind
    detail: str
    # The transport's exception, so errors can be chained with `from`.
    exception: BaseException | None

    def __init__(self, kind: FailureKind, detail: str = "", exception: BaseException | None = None) -> None:
        self._init(kind=kind, detail=detail, exception=exception)


class Received(Record):
    """The shell's report after a Send (or a Sleep, with `result` None).

    `now` is the monotonic clock after the step; `sent_at` the wall clock when it was sent.
    """

    __slots__ = ("now", "result", "sent_at")
    result: HttpAnswer | TransportFailure | None
    now: float
    sent_at: float

    def __init__(
        self, result: HttpAnswer | TransportFailure | None, now: float, sent_at: float = 0.0
    ) -> None:
        self._init(result=result, now=now, sent_at=sent_at)
