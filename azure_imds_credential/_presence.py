"""Which endpoints have answered like IMDS in this process.

Only success is remembered (IMDS.md: remembering a failure for the life of the process is a
bug that shipped and was reverted). Once an endpoint is known to be IMDS, later refusals and
timeouts are IMDS restarting or overloaded, and are retried rather than reported as "not on
Azure".
"""

from __future__ import annotations

_seen: set[str] = set()


def seen(endpoint: str) -> bool:
    return endpoint in _seen


def mark_seen(endpoint: str) -> None:
    _seen.add(endpoint)


def forget(endpoint: str | None = None) -> None:
    """Forget one endpoint (or all): for tests, and after a fork into a new host's container."""
    if endpoint is None:
        _seen.clear()
    else:
        _seen.discard(endpoint)
