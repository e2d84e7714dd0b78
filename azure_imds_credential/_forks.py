"""Fork safety (gunicorn --preload, multiprocessing's fork start method).

A forked child inherits locks that may be held by parent threads that do not exist in the
child, requests "in flight" whose leaders will never finish, and pooled connections whose
sockets the parent still uses. After a fork, every live client and credential resets those;
cached tokens stay (they are still valid, and IMDS is the same host's).
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_live: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def track(obj: ForkAware) -> None:
    """Reset `obj` in every child forked from now on (held weakly)."""
    _live.add(obj)


def _reset_in_child() -> None:
    for obj in list(_live):
        obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_reset_in_child)
