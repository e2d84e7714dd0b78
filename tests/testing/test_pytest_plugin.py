"""The pytest plugin: fixtures, the `imds` marker, and its cost for projects that don't use it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from azure_imds_credential.testing import Fault, Identity, ImdsEmulator
from tests.testing.helpers import fetch, token_url

ENDPOINT_ENV = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
APP = Identity.user_assigned("app")


def test_imds_emulator_fixture_points_env_at_itself_when_requested(imds_emulator: ImdsEmulator) -> None:
    assert os.environ[ENDPOINT_ENV] == imds_emulator.endpoint
    assert imds_emulator.endpoint.startswith("http://127.0.0.1:")
    assert fetch(imds_emulator.port).status == 200
    assert len(imds_emulator.requests) == 1


@pytest.mark.imds(identities=[APP], lifetime=60, script=["503:times=1", Fault.status(410).times(1)])
def test_imds_marker_configures_emulator_when_test_is_marked(imds_emulator: ImdsEmulator) -> None:
    assert imds_emulator.identities == (APP,)
    assert [fetch(imds_emulator.port).status for _ in range(3)] == [503, 410, 200]
    body = fetch(imds_emulator.port, token_url(bypass_cache="true")).json()
    assert (body["client_id"], body["expires_in"]) == (APP.client_id, "60")


@pytest.mark.imds(rate_limit=True)
class TestMarkerOnClass:
    @pytest.mark.imds(lifetime=120)
    def test_imds_marker_merges_class_and_test_when_both_marked(self, imds_emulator: ImdsEmulator) -> None:
        assert imds_emulator.rate_limit is not None
        assert imds_emulator.lifetime == 120


def test_imds_emulator_factory_starts_independent_emulators_when_called(
    imds_emulator_factory: Callable[..., ImdsEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    first = imds_emulator_factory()
    second = imds_emulator_factory(identities=[APP])
    assert first.port != second.port
    assert fetch(second.port).json()["client_id"] == APP.client_id
    assert ENDPOINT_ENV not in os.environ  # the factory leaves the environment alone


def test_plugin_import_stays_light_when_fixtures_unused() -> None:
    # A project that never asks for the fixtures must not pay for the emulator or http.server.
    code = (
        "import sys\n"
        "import azure_imds_credential.testing._pytest_plugin\n"
        "heavy = ('http.server', 'socketserver', 'azure_imds_credential.testing._emulator',\n"
        "         'azure_imds_credential.testing._handler', 'azure_imds_credential.testing._faults',\n"
        "         'azure.core', 'azure_imds_credential._credential')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "print(loaded)\n"
    )
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_plugin_restores_env_and_accepts_marker_when_run_by_pytest(tmp_path: Path) -> None:
    # A separate pytest run, with --strict-markers, shows what a user's project sees: the
    # marker is registered, and the variable is set for the fixture's test only.
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            f"""
            import os
            import pytest

            def test_a_uses_fixture(imds_emulator):
                assert os.environ["{ENDPOINT_ENV}"] == imds_emulator.endpoint

            @pytest.mark.imds(script=["hang"])
            def test_b_marked(imds_emulator):
                assert imds_emulator.endpoint

            def test_c_after(imds_emulator_factory):
                assert "{ENDPOINT_ENV}" not in os.environ
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != ENDPOINT_ENV}
    result = subprocess.run(  # noqa: S603 - fixed argv
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:asyncio",
            "--strict-markers",
            "-W",
            "error",
            "-o",
            "addopts=",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
