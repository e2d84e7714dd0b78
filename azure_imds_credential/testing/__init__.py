"""An Azure IMDS emulator for tests: a real loopback HTTP server with scriptable faults.

Standard library only, so it can run in any test environment::

    with ImdsEmulator() as imds:
        imds.push(Fault.status(503), Fault.reset())
        imds.during(16, Fault.status(410))          # by the emulator's clock
        ...  # point the credential at imds.endpoint

Names load on first use (PEP 562): the pytest plugin and the CLI import this package on
every run, and must not pay for ``http.server`` unless an emulator is really wanted.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._emulator import ImdsEmulator, SupportsGetToken, TokenSource
    from ._faults import Fault, Step
    from ._jwt import decode_jwt_claims, make_jwt
    from ._models import Identity, RateLimit, RequestRecord
    from ._network import SilentServer, dropped_syn_endpoint, refusing_endpoint
    from ._spec import parse_duration, parse_fault, parse_identity

_WHERE = {
    "ImdsEmulator": "._emulator",
    "SupportsGetToken": "._emulator",
    "TokenSource": "._emulator",
    "Fault": "._faults",
    "Step": "._faults",
    "decode_jwt_claims": "._jwt",
    "make_jwt": "._jwt",
    "Identity": "._models",
    "RateLimit": "._models",
    "RequestRecord": "._models",
    "SilentServer": "._network",
    "dropped_syn_endpoint": "._network",
    "refusing_endpoint": "._network",
    "parse_duration": "._spec",
    "parse_fault": "._spec",
    "parse_identity": "._spec",
}

__all__ = [
    "Fault",
    "Identity",
    "ImdsEmulator",
    "RateLimit",
    "RequestRecord",
    "SilentServer",
    "Step",
    "SupportsGetToken",
    "TokenSource",
    "decode_jwt_claims",
    "dropped_syn_endpoint",
    "make_jwt",
    "parse_duration",
    "parse_fault",
    "parse_identity",
    "refusing_endpoint",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
