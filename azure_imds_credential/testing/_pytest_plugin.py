"""pytest plugin (entry point `pytest11`): the `imds_emulator` fixture.

Loaded by every pytest run in an environment where this package is installed, so it imports
nothing heavy at module level: the emulator loads only when a test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from azure_imds_credential.testing import ImdsEmulator


@pytest.fixture
def imds_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImdsEmulator]:
    """A running IMDS emulator on 127.0.0.1, with `AZURE_POD_IDENTITY_AUTHORITY_HOST` pointing
    at it for this test only. Script faults with `.push(...)`; read `.requests` afterwards."""
    from azure_imds_credential.testing import ImdsEmulator

    with ImdsEmulator() as emulator:
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emulator.endpoint)
        yield emulator
