"""Fixtures of the end-to-end tests: one Azurite for the whole directory (HTTPS, bearer tokens checked),
the TLS material it and the loopback fakes use, and the CA path that clients trust.

Azurite missing: the tests fail in CI (`CI` set) and skip elsewhere, saying what to do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.azurite import Azurite, AzuriteUnavailable, Tls, find_azurite_blob, in_ci


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A throwaway CA and a server certificate for 127.0.0.1 (trustme), as PEM files."""
    return Tls.create(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def ca_file(tls: Tls) -> str:
    """The CA bundle clients pass as `connection_verify=`."""
    return str(tls.ca_pem)


@pytest.fixture(scope="package")
def azurite(tmp_path_factory: pytest.TempPathFactory, tls: Tls) -> Iterator[Azurite]:
    """A running Azurite blob service (`--oauth basic` over HTTPS): one for all of tests/e2e,
    stopped when pytest leaves this directory."""
    try:
        entry = find_azurite_blob()
    except AzuriteUnavailable as exc:
        message = f"Azurite is needed for tests/e2e: {exc}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    began = time.monotonic()
    with Azurite(tmp_path_factory.mktemp("azurite"), tls, entry) as running:
        yield running
    _report_timing(time.monotonic() - began, running.startup_seconds)


def _report_timing(total: float, startup: float) -> None:
    # Shown with `-rA`/`-s`; never asserted (no timing assertions in tests).
    print(f"\nAzurite: ready in {startup:.2f} s, up {total:.2f} s in all")


@pytest.fixture
def azurite_url(azurite: Azurite) -> str:
    return azurite.account_url
