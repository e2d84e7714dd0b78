"""The typed IMDS token response and its parser."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

# A token lifetime beyond this is not something Entra issues; treat it as garbage.
_MAX_LIFETIME = 366 * 24 * 3600


class InvalidTokenResponse(ValueError):
    """The body is not a usable IMDS token response (message is safe to show: no token)."""


@dataclass(frozen=True, slots=True)
class ImdsToken:
    """Every field of an IMDS token response, numbers parsed to int.

    `local_expires_on` is the expiry by the local clock (request time + `expires_in`), which
    is what callers should use: it is immune to clock skew between this host and Entra.
    """

    access_token: str = field(repr=False)
    expires_in: int
    expires_on: int
    local_expires_on: int
    resource: str | None
    token_type: str = "Bearer"
    client_id: str | None = None
    ext_expires_in: int | None = None
    not_before: int | None = None
    refresh_token: str | None = field(default=None, repr=False)
    requested_at: float = 0.0


def _as_int(value: object) -> int | None:
    """IMDS sends numbers as strings ("3599"); some hosts send JSON numbers. Accept both."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) < 20:
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if math.isfinite(number) and abs(number) < 1e18 else None
    return None


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_token(body: bytes, requested_at: float) -> ImdsToken:
    """Parse a 200 body; `requested_at` is the local wall-clock time the request was sent."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidTokenResponse("the 200 answer is not JSON") from exc
    if not isinstance(data, Mapping):
        raise InvalidTokenResponse("the 200 answer is JSON but not an object")
    token = data.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise InvalidTokenResponse("the 200 answer has no access_token")
    # Every whitespace character is non-printable except the ASCII space, so this is "no
    # whitespace, nothing unprintable" in two C-speed scans (a per-character loop costs ~50 us).
    if " " in token or not token.isprintable():
        raise InvalidTokenResponse("the access_token has characters a bearer token cannot carry")
    expires_in = _as_int(data.get("expires_in"))
    expires_on = _as_int(data.get("expires_on"))
    if expires_in is None and expires_on is not None:
        # Fallback only: expires_on is Entra's clock, expires_in is immune to skew.
        expires_in = int(expires_on - requested_at)
    if expires_in is None:
        raise InvalidTokenResponse("the 200 answer has neither a valid expires_in nor expires_on")
    if not 0 < expires_in <= _MAX_LIFETIME:
        raise InvalidTokenResponse(f"the token's lifetime ({expires_in} s) is not usable")
    local_expires_on = int(requested_at + expires_in)  # floor once: conservative, not a second early
    return ImdsToken(
        access_token=token,
        expires_in=expires_in,
        expires_on=expires_on if expires_on is not None else local_expires_on,
        local_expires_on=local_expires_on,
        resource=_as_str(data.get("resource")),
        token_type=_as_str(data.get("token_type")) or "Bearer",
        client_id=_as_str(data.get("client_id")),
        ext_expires_in=_as_int(data.get("ext_expires_in")),
        not_before=_as_int(data.get("not_before")),
        refresh_token=_as_str(data.get("refresh_token")),
        requested_at=requested_at,
    )
