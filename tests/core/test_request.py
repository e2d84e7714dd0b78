"""Request building: scopes, identities, query parameters."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from azure_imds_credential import ManagedIdentity, TokenQuery
from azure_imds_credential._core.request import scopes_to_resource, token_url


@pytest.mark.parametrize(
    ("scope", "resource"),
    [
        ("https://storage.azure.com/.default", "https://storage.azure.com"),
        ("https://vault.azure.net/.default", "https://vault.azure.net"),
        ("https://management.azure.com/", "https://management.azure.com/"),
        ("api://my-app", "api://my-app"),
    ],
)
def test_scopes_to_resource_strips_default_suffix_when_present(scope: str, resource: str) -> None:
    assert scopes_to_resource((scope,)) == resource


@pytest.mark.parametrize("scopes", [(), ("https://a/.default", "https://b/.default")])
def test_scopes_to_resource_raises_value_error_when_not_exactly_one(scopes: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        scopes_to_resource(scopes)


@pytest.mark.parametrize("scopes", [("/.default",), ("",)])
def test_scopes_to_resource_raises_when_scope_names_no_resource(scopes: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="names no resource"):
        scopes_to_resource(scopes)


def test_scopes_to_resource_raises_type_error_when_scope_not_str() -> None:
    with pytest.raises(TypeError):
        scopes_to_resource((b"https://x",))  # type: ignore[arg-type]


def test_managed_identity_raises_when_two_selectors_given() -> None:
    with pytest.raises(ValueError, match="at most one of client_id, object_id, msi_res_id"):
        ManagedIdentity(client_id="a", object_id="b")


def test_managed_identity_raises_when_selector_empty() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        ManagedIdentity(client_id=" ")


def test_token_url_carries_every_parameter_when_all_given() -> None:
    query = TokenQuery(
        resource="https://vault.azure.net",
        identity=ManagedIdentity(msi_res_id="/subscriptions/s/rg/id"),
        authority="https://login.microsoftonline.com/t",
        bypass_cache=True,
        api_version="2018-10-01",
    )
    url = urlsplit(token_url("http://127.0.0.1:9", query))
    assert url.path == "/metadata/identity/oauth2/token"
    assert dict(parse_qsl(url.query)) == {
        "api-version": "2018-10-01",
        "resource": "https://vault.azure.net",
        "msi_res_id": "/subscriptions/s/rg/id",
        "authority": "https://login.microsoftonline.com/t",
        "bypass_cache": "true",
    }


def test_token_url_has_only_version_and_resource_when_system_assigned() -> None:
    url = urlsplit(token_url("http://127.0.0.1:9", TokenQuery("https://x")))
    assert dict(parse_qsl(url.query)) == {"api-version": "2018-02-01", "resource": "https://x"}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"resource": ""}, ValueError),
        ({"resource": "https://x y"}, ValueError),
        ({"resource": 5}, TypeError),
        ({"resource": "https://x", "api_version": "2099-01-01"}, ValueError),
        ({"resource": "https://x", "bypass_cache": "yes"}, TypeError),
    ],
)
def test_token_query_raises_when_parameters_invalid(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        TokenQuery(**kwargs)  # type: ignore[arg-type]
