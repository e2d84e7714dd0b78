"""Parsing IMDS's 200 body."""

from __future__ import annotations

import json

import pytest

from azure_imds_credential._core.token import InvalidTokenResponse, parse_token

REQUESTED_AT = 1_700_000_000.0


def body(**fields: object) -> bytes:
    base: dict[str, object] = {
        "access_token": "tok.en.value",
        "refresh_token": "",
        "expires_in": "3599",
        "expires_on": "1700003599",
        "ext_expires_in": "3599",
        "not_before": "1699999700",
        "resource": "https://storage.azure.com",
        "token_type": "Bearer",
        "client_id": "cid",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_parse_token_reads_every_field_as_int_when_imds_sends_strings() -> None:
    token = parse_token(body(), REQUESTED_AT)
    assert (token.expires_in, token.expires_on, token.ext_expires_in, token.not_before) == (
        3599,
        1700003599,
        3599,
        1699999700,
    )
    assert token.resource == "https://storage.azure.com"
    assert token.client_id == "cid"
    assert token.token_type == "Bearer"
    assert token.refresh_token == ""
    assert token.local_expires_on == int(REQUESTED_AT) + 3599


def test_parse_token_accepts_numbers_when_host_sends_json_numbers() -> None:
    token = parse_token(body(expires_in=3599, expires_on=1700003599, not_before=1699999700.0), REQUESTED_AT)
    assert (token.expires_in, token.expires_on, token.not_before) == (3599, 1700003599, 1699999700)


def test_parse_token_uses_local_clock_when_expires_on_is_skewed() -> None:
    # IMDS's clock is an hour ahead: expires_in still gives the right local expiry.
    token = parse_token(body(expires_on=str(int(REQUESTED_AT) + 7199)), REQUESTED_AT)
    assert token.local_expires_on == int(REQUESTED_AT) + 3599


def test_parse_token_falls_back_to_expires_on_when_expires_in_missing() -> None:
    token = parse_token(body(expires_in=None, expires_on=str(int(REQUESTED_AT) + 600)), REQUESTED_AT)
    assert token.expires_in == 600


def test_parse_token_hides_token_from_repr() -> None:
    assert "tok.en.value" not in repr(parse_token(body(), REQUESTED_AT))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"hello", "not JSON"),
        (b"<html>metadata</html>", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"computeMetadata": {}}', "no access_token"),
        (body(access_token=""), "no access_token"),
        (body(access_token=5), "no access_token"),
        (body(access_token="a b"), "cannot carry"),
        (body(expires_in=None, expires_on=None), "neither"),
        (body(expires_in="abc", expires_on=None), "neither"),
        (body(expires_in="-5"), "not usable"),
        (body(expires_in="0"), "not usable"),
        (body(expires_in=str(10**12)), "not usable"),
        (body(expires_in=None, expires_on=str(int(REQUESTED_AT) - 10)), "not usable"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_parse_token_raises_when_body_unusable(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidTokenResponse, match=reason):
        parse_token(raw, REQUESTED_AT)
