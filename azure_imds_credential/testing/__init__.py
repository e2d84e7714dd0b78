"""An Azure IMDS emulator for tests: a real loopback HTTP server with scriptable faults.

Standard library only, so it can run in any test environment::

    with ImdsEmulator() as imds:
        imds.push(Fault.status(503), Fault.reset())
        ...  # point the credential at imds.endpoint
"""

from ._emulator import ImdsEmulator
from ._faults import Fault
from ._jwt import decode_jwt_claims, make_jwt
from ._models import Identity, RequestRecord

__all__ = [
    "Fault",
    "Identity",
    "ImdsEmulator",
    "RequestRecord",
    "decode_jwt_claims",
    "make_jwt",
]
