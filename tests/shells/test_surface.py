"""The public surface: sync and async twins match, azure-core protocols hold, bad configuration
fails early with ValueError, importing is cheap and reads no environment."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
from typing import Any

import pytest
from azure.core.credentials import SupportsTokenInfo, TokenCredential
from azure.core.credentials_async import AsyncSupportsTokenInfo, AsyncTokenCredential

from azure_imds_credential import ENDPOINT_ENV
from azure_imds_credential import ImdsClient as SyncClient
from azure_imds_credential import ImdsManagedIdentityCredential as SyncCredential
from azure_imds_credential.aio import ImdsClient as AsyncClient
from azure_imds_credential.aio import ImdsManagedIdentityCredential as AsyncCredential
from azure_imds_credential.testing import ImdsEmulator
from tests.conftest import FakeClock, Shell

SCOPE = "https://storage.azure.com/.default"
UNUSED_ENDPOINT = "http://127.0.0.1:9"  # never contacted: these tests make no requests
PAIRS = [
    pytest.param(SyncCredential, AsyncCredential, id="credential"),
    pytest.param(SyncClient, AsyncClient, id="client"),
]
CLASSES = [
    pytest.param(SyncCredential, id="sync-credential"),
    pytest.param(AsyncCredential, id="async-credential"),
    pytest.param(SyncClient, id="sync-client"),
    pytest.param(AsyncClient, id="async-client"),
]
# The async twins of the sync context-manager methods.
_ASYNC_NAMES = {"__aenter__": "__enter__", "__aexit__": "__exit__"}


def _members(cls: type) -> list[str]:
    """Public methods and properties, plus the dunders a user calls, in definition order."""
    names = []
    for name, value in vars(cls).items():
        if not (inspect.isfunction(value) or isinstance(value, property)):
            continue
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
            continue
        names.append(_ASYNC_NAMES.get(name, name))
    return names


def _public(cls: type) -> list[str]:
    return [name for name in _members(cls) if not name.startswith("_")]


def _member(cls: type, name: str) -> Any:
    reverse = {sync: aio for aio, sync in _ASYNC_NAMES.items()}
    return vars(cls).get(name, vars(cls).get(reverse.get(name, ""), None))


def _normalize(annotation: Any) -> Any:
    # The transport parameter is HttpTransport in one shell and AsyncHttpTransport in the other.
    return (
        annotation.replace("AsyncHttpTransport", "HttpTransport")
        if isinstance(annotation, str)
        else annotation
    )


def _signature(function: Any) -> list[tuple[str, Any, Any, Any]]:
    signature = inspect.signature(function)
    params = [(p.name, p.kind, p.default, _normalize(p.annotation)) for p in signature.parameters.values()]
    return [*params, ("return", None, None, _normalize(signature.return_annotation))]


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS)
def test_surface_public_names_match_in_order_when_comparing_sync_and_async(
    sync_cls: type, async_cls: type
) -> None:
    assert _public(sync_cls) == _public(async_cls)
    assert _members(sync_cls) == _members(async_cls)
    assert "get_token" in _public(sync_cls) and "close" in _public(sync_cls)


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS)
def test_surface_signatures_and_docstrings_match_when_comparing_sync_and_async(
    sync_cls: type, async_cls: type
) -> None:
    for name in _members(sync_cls):
        sync_member, async_member = _member(sync_cls, name), _member(async_cls, name)
        assert sync_member is not None and async_member is not None, name
        assert inspect.getdoc(sync_member) == inspect.getdoc(async_member), name
        if isinstance(sync_member, property):
            assert isinstance(async_member, property), name
            continue
        assert _signature(sync_member) == _signature(async_member), name
    # The class summaries match too (the details name the sync or async transport).
    sync_doc, async_doc = inspect.getdoc(sync_cls), inspect.getdoc(async_cls)
    assert sync_doc and async_doc
    assert sync_doc.splitlines()[0] == async_doc.splitlines()[0]


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS)
def test_surface_async_methods_are_coroutines_when_sync_methods_are_plain(
    sync_cls: type, async_cls: type
) -> None:
    checked = 0
    for name in _members(sync_cls):
        sync_member, async_member = _member(sync_cls, name), _member(async_cls, name)
        if isinstance(sync_member, property) or name in ("__init__", "__repr__"):
            continue
        assert not inspect.iscoroutinefunction(sync_member), name
        assert inspect.iscoroutinefunction(async_member), name
        checked += 1
    assert checked >= 4  # get_token, close, __enter__/__aenter__, __exit__/__aexit__ at least


def test_credential_satisfies_azure_core_protocols_when_constructed() -> None:
    for protocol in (TokenCredential, SupportsTokenInfo, AsyncTokenCredential, AsyncSupportsTokenInfo):
        # runtime_checkable in azure-core >= 1.31; otherwise isinstance would raise TypeError.
        assert getattr(protocol, "_is_runtime_protocol", False), protocol
    sync = SyncCredential(endpoint=UNUSED_ENDPOINT)
    assert isinstance(sync, TokenCredential)
    assert isinstance(sync, SupportsTokenInfo)
    aio = AsyncCredential(endpoint=UNUSED_ENDPOINT)
    assert isinstance(aio, AsyncTokenCredential)
    assert isinstance(aio, AsyncSupportsTokenInfo)
    # Member presence is all isinstance checks: the async ones must really be coroutines.
    assert inspect.iscoroutinefunction(aio.get_token) and inspect.iscoroutinefunction(aio.get_token_info)
    assert not inspect.iscoroutinefunction(sync.get_token)


@pytest.mark.parametrize("cls", [CLASSES[0], CLASSES[1]])
@pytest.mark.parametrize(
    "selectors",
    [
        {"client_id": "c", "object_id": "o"},
        {"client_id": "c", "msi_res_id": "/subscriptions/s"},
        {"object_id": "o", "msi_res_id": "/subscriptions/s"},
        {"client_id": "c", "object_id": "o", "msi_res_id": "/subscriptions/s"},
    ],
)
def test_credential_raises_value_error_when_given_two_identity_selectors(
    cls: type, selectors: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="at most one"):
        cls(endpoint=UNUSED_ENDPOINT, **selectors)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("endpoint", ["ftp://x", "http://", "http://h?x=1", "http://h#f", "x"])
def test_constructor_raises_value_error_when_endpoint_is_not_usable(cls: type, endpoint: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        cls(endpoint=endpoint)


@pytest.mark.parametrize("cls", CLASSES)
def test_constructor_raises_value_error_when_environment_endpoint_is_not_usable(
    cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENDPOINT_ENV, "ftp://x")
    with pytest.raises(ValueError, match=ENDPOINT_ENV):
        cls()


@pytest.mark.parametrize("method", ["get_token", "get_token_info"])
@pytest.mark.parametrize("scopes", [(), (SCOPE, "https://vault.azure.net/.default")], ids=["zero", "two"])
def test_credential_raises_value_error_when_not_exactly_one_scope(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock, method: str, scopes: tuple[str, ...]
) -> None:
    cred = shell.credential(endpoint=emulator.endpoint, clock=clock)
    with pytest.raises(ValueError, match="exactly one"):
        shell.call(getattr(cred, method), *scopes)
    assert emulator.requests == []


def test_client_raises_value_error_when_given_two_identity_selectors(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock
) -> None:
    client = shell.client(endpoint=emulator.endpoint, clock=clock)
    with pytest.raises(ValueError, match="at most one"):
        shell.call(client.get_token, "https://storage.azure.com", client_id="c", object_id="o")
    assert emulator.requests == []


def test_credential_uses_environment_endpoint_read_at_construction_when_env_set(
    shell: Shell, emulator: ImdsEmulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENDPOINT_ENV, emulator.endpoint + "/")  # a trailing / is stripped
    cred = shell.credential(clock=clock)
    client = shell.client(clock=clock)
    assert client.endpoint == emulator.endpoint
    with ImdsEmulator() as other:
        # Changing the environment afterwards changes nothing for existing objects.
        monkeypatch.setenv(ENDPOINT_ENV, other.endpoint)
        token = shell.call(cred.get_token, SCOPE)
        imds_token = shell.call(client.get_token, "https://vault.azure.net")
        assert client.endpoint == emulator.endpoint
        assert other.requests == []
    issued = emulator.issued_tokens()
    assert token.token in issued and imds_token.access_token in issued
    assert len(emulator.token_requests) == 2


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **env}
    return subprocess.run(  # noqa: S603 - our own interpreter, a fixed script
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=60, check=False
    )


def test_import_loads_no_http_stack_when_package_imported() -> None:
    done = _python(
        "import azure_imds_credential, azure_imds_credential.aio, sys\n"
        "heavy = ('aiohttp', 'requests', 'azure.core.pipeline.transport._requests_basic')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_import_does_not_read_environment_when_endpoint_variable_is_garbage() -> None:
    done = _python(
        "import azure_imds_credential, azure_imds_credential.aio\n"
        "print('imported')\n"
        "try:\n"
        "    azure_imds_credential.ImdsManagedIdentityCredential()\n"
        "except ValueError:\n"
        "    print('rejected at construction')\n",
        **{ENDPOINT_ENV: "garbage://not a url"},
    )
    assert done.returncode == 0, done.stderr
    # Import succeeded; the garbage is only seen (and rejected) when a credential is built.
    assert done.stdout.split("\n")[:2] == ["imported", "rejected at construction"]


@pytest.mark.parametrize("cls", CLASSES)
def test_context_exit_closes_when_called_without_arguments(cls: type) -> None:
    made = cls(endpoint=UNUSED_ENDPOINT)
    if cls in (AsyncCredential, AsyncClient):
        asyncio.run(made.__aexit__())
    else:
        made.__exit__()
