"""The one redaction function every piece of server-supplied text passes through."""

from __future__ import annotations

import re

# JWTs (access tokens) start with a base64url JSON header: "eyJ".
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]{4,}(?:\.[A-Za-z0-9_\-]*){1,2}")
# Values of token-bearing JSON keys, whatever they look like.
_TOKEN_FIELD = re.compile(
    r"""(["']?(?:access_token|refresh_token|id_token|token)["']?\s*[:=]\s*)(["']?)[^"',}\s]+\2""",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
REDACTED = "***"


def redact(text: str, limit: int = 300) -> str:
    """Remove tokens and control characters from `text` and cut it to `limit` characters."""
    text = _TOKEN_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(2)}", text)
    text = _JWT.sub(REDACTED, text)
    text = _CONTROL.sub(" ", text)
    if len(text) > limit:
        text = text[:limit] + "..."
    return text
