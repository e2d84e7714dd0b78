"""pytest plugin (entry point ``pytest11``): ``imds_emulator``, ``imds_emulator_factory``, ``imds``.

Loaded by every pytest run in an environment where this package is installed, so it imports
nothing heavy at module level: the emulator (and ``http.server``) load only when a test asks
for a fixture.

- ``imds_emulator``: a running emulator for one test, with ``AZURE_POD_IDENTITY_AUTHORITY_HOST``
  pointing at it for that test only. Configure it with the ``imds`` marker::

      @pytest.mark.imds(identities=[Identity.user_assigned("app")], lifetime=60,
                        rate_limit=True, script=["410:for=16s", "429:times=2"])
      def test_x(imds_emulator): ...

  Every keyword but ``script`` goes to ``ImdsEmulator``; ``script`` takes ``Step`` objects
  or fault strings in the ``--fault`` syntax and plays them with ``ImdsEmulator.script``.
- ``imds_emulator_factory``: ``factory(**ImdsEmulator kwargs)`` starts more emulators (the
  environment is left alone); all are stopped when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from azure_imds_credential.testing import ImdsEmulator

# Spelled out rather than imported: this module loads for every pytest run, and even the
# light `_settings` would add ~10 ms (dataclasses) to projects that never use the fixture.
ENDPOINT_ENV = "AZURE_POD_IDENTITY_AUTHORITY_HOST"

_MARKER_HELP = (
    "imds(**options): configure the imds_emulator fixture: ImdsEmulator keywords "
    "(identities, lifetime, latency, rate_limit, token_source, tenant_id, clock, ...) and "
    "script=[Step or fault string like '410:for=16s', ...]"
)


def pytest_configure(config: pytest.Config) -> None:
    # Registered so that --strict-markers accepts @pytest.mark.imds.
    config.addinivalue_line("markers", _MARKER_HELP)


@pytest.fixture
def imds_emulator_factory() -> Iterator[Callable[..., ImdsEmulator]]:
    """Start emulators with any ``ImdsEmulator`` keywords; each is stopped after the test."""
    from azure_imds_credential.testing import ImdsEmulator

    started: list[ImdsEmulator] = []

    def factory(**options: Any) -> ImdsEmulator:
        emulator = ImdsEmulator(**options).start()
        started.append(emulator)
        return emulator

    try:
        yield factory
    finally:
        for emulator in reversed(started):
            emulator.stop()


@pytest.fixture
def imds_emulator(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    imds_emulator_factory: Callable[..., ImdsEmulator],
) -> ImdsEmulator:
    """A running IMDS emulator on 127.0.0.1, with ``AZURE_POD_IDENTITY_AUTHORITY_HOST``
    pointing at it for this test only (see the ``imds`` marker). Script faults with
    ``.push``, ``.during``, ``.script``; read ``.requests`` / ``.token_requests`` afterwards."""
    from azure_imds_credential.testing import Step, parse_fault

    options: dict[str, Any] = {}
    # Closest last: a marker on the test overrides one on its class or module.
    for marker in reversed(list(request.node.iter_markers("imds"))):
        if marker.args:
            raise pytest.UsageError("@pytest.mark.imds takes keyword arguments only")
        options.update(marker.kwargs)
    script = options.pop("script", ())
    steps = [parse_fault(item) if isinstance(item, str) else item for item in script]
    if not all(isinstance(step, Step) for step in steps):
        raise pytest.UsageError("imds(script=...) takes Step objects or fault strings")
    emulator = imds_emulator_factory(**options)
    if steps:
        emulator.script(*steps)
    # monkeypatch restores the previous value (or its absence) when the test ends.
    monkeypatch.setenv(ENDPOINT_ENV, emulator.endpoint)
    return emulator
