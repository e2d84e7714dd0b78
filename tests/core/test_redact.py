from __future__ import annotations

import pytest

from azure_imds_credential._core.redact import redact

JWT = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL3gifQ.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    "text",
    [
        f"token {JWT} rejected",
        f'{{"access_token": "{JWT}"}}',
        '{"access_token": "opaque-not-a-jwt"}',
        "refresh_token=opaque-value&x=1",
    ],
)
def test_redact_removes_token_when_text_carries_one(text: str) -> None:
    out = redact(text)
    assert JWT not in out and "opaque" not in out
    assert "***" in out


def test_redact_cuts_long_text_and_control_characters() -> None:
    out = redact("a\x1b[31m" + "b" * 1000, limit=50)
    assert "\x1b" not in out and len(out) <= 53
