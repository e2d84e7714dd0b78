"""Unsigned JWTs that look like Entra ID access tokens.

The emulator never signs anything: nobody can verify its tokens, and the consumers that
matter here (the credential under test, Azurite) only decode the claims. The signature
part is random bytes so that the token has the usual three-part shape and two tokens with
identical claims still differ.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from typing import Any

__all__ = ["decode_jwt_claims", "make_jwt"]

_HEADER: dict[str, str] = {"typ": "JWT", "alg": "RS256", "kid": "emulator"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    # JWTs drop the base64 padding; the decoder insists on it.
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _segment(value: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(dict(value), separators=(",", ":")).encode("utf-8"))


def make_jwt(claims: Mapping[str, Any]) -> str:
    """Return ``header.payload.signature`` with ``claims`` as payload and a random signature."""
    return f"{_segment(_HEADER)}.{_segment(claims)}.{_b64url(secrets.token_bytes(32))}"


def decode_jwt_claims(token: str) -> dict[str, Any]:
    """Return the payload of ``token`` without verifying anything.

    Raises ``ValueError`` for anything that is not a three-part JWT with a JSON object
    payload. The message never repeats the token: it may be a real credential.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT: expected three dot-separated parts")
    try:
        claims = json.loads(_b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not a JWT: payload is not base64url JSON") from exc
    if not isinstance(claims, dict):
        raise ValueError("not a JWT: payload is not a JSON object")
    return claims
