"""Value types of the emulator: identities and the request log."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

__all__ = ["Identity", "RateLimit", "RequestRecord"]

# Fixed namespace so that identities are the same in every run (tests can hard-code them).
_NAMESPACE = uuid.UUID("6f1c2a52-6d0c-4b8e-9a57-0d5c1f4e7a10")
_SUBSCRIPTION = uuid.uuid5(_NAMESPACE, "subscription")

# Header values that must never reach a log or a test failure message.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


@dataclass(frozen=True)
class Identity:
    """A managed identity assigned to the emulated VM."""

    client_id: str
    object_id: str
    msi_res_id: str | None = None
    system_assigned: bool = False

    def __post_init__(self) -> None:
        if self.system_assigned and self.msi_res_id is not None:
            raise ValueError("a system-assigned identity has no msi_res_id")

    @classmethod
    def user_assigned(cls, name: str) -> Identity:
        """A user-assigned identity whose ids are derived from ``name`` (uuid5)."""
        return cls(
            client_id=str(uuid.uuid5(_NAMESPACE, f"user-assigned/{name}/client")),
            object_id=str(uuid.uuid5(_NAMESPACE, f"user-assigned/{name}/object")),
            msi_res_id=(
                f"/subscriptions/{_SUBSCRIPTION}/resourcegroups/rg/providers/"
                f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
            ),
        )

    @classmethod
    def system(cls) -> Identity:
        """The VM's system-assigned identity (always the same ids)."""
        return cls(
            client_id=str(uuid.uuid5(_NAMESPACE, "system-assigned/client")),
            object_id=str(uuid.uuid5(_NAMESPACE, "system-assigned/object")),
            system_assigned=True,
        )


@dataclass(frozen=True)
class RateLimit:
    """IMDS's throttling of managed-identity requests: per VM, 20 requests/s and 5 at once.

    Beyond either limit IMDS answers 429 at once. Only token requests carrying the
    ``Metadata`` header count; requests answered 429 do not use up the per-second budget.
    """

    per_second: int = 20
    concurrent: int = 5

    def __post_init__(self) -> None:
        if self.per_second < 1 or self.concurrent < 1:
            raise ValueError("rate limits must be >= 1")


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator received, as seen on the wire."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int | None
    fault: str | None
    started: float
    duration: float


def redact_headers(items: list[tuple[str, str]]) -> dict[str, str]:
    """Lower-case header names; hide credentials a client might (wrongly) send."""
    return {name.lower(): ("***" if name.lower() in _SECRET_HEADERS else value) for name, value in items}


@dataclass
class RecordBuilder:
    """The mutable log entry of a request still being handled.

    The log is readable while requests hang, so entries are frozen into ``RequestRecord``
    at snapshot time, not at the end of the request.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    started: float
    is_token: bool
    status: int | None = None
    fault: str | None = None
    _t0: float = field(default_factory=time.monotonic)
    _duration: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def finish(self) -> None:
        with self._lock:
            self._duration = time.monotonic() - self._t0

    def freeze(self) -> RequestRecord:
        with self._lock:
            duration = self._duration if self._duration is not None else (time.monotonic() - self._t0)
            return RequestRecord(
                method=self.method,
                path=self.path,
                query=dict(self.query),
                headers=dict(self.headers),
                status=self.status,
                fault=self.fault,
                started=self.started,
                duration=duration,
            )
