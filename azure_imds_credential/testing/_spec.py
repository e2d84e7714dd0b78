"""The emulator's mini-languages: fault steps (``410:for=16s``) and identities (``user:NAME``).

Used by ``azure-imds-token emulate --fault/--identity`` and by the pytest marker
(``@pytest.mark.imds(script=["429:times=2"])``). Light: no server code is imported.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from ._faults import Fault, Step
from ._models import Identity

__all__ = ["FAULT_SYNTAX", "IDENTITY_SYNTAX", "parse_duration", "parse_fault", "parse_identity"]

FAULT_SYNTAX = """\
fault steps (--fault, repeatable; played in order, each starting when the one before ends):
  KIND[:OPTION]...        OPTION: times=N | for=DURATION | retry-after=SECONDS
  A step without times= or for= lasts forever. DURATION: 16s, 500ms, 2m, 1h or seconds.
  KIND                    what the token request gets
  400..599 (any status)   that status with an IMDS-style JSON error (retry-after= adds the header)
  docker403               Docker Desktop's 403 text, no IMDS Server header
  hang                    accepted, never answered
  reset                   connection reset (TCP RST)
  partial                 a token answer cut off halfway
  slow[=SECONDS]          a token answer trickled in 4 chunks, SECONDS apart (default 1s)
  delay=SECONDS           a token answer after SECONDS (a slow mint)
  non-json                200 text/plain "hello"
  html                    200 HTML page (a captive portal / another cloud)
  foreign-json            200 JSON that is not a token (another cloud's metadata)
  huge[=BYTES]            200 with a BYTES-long body (default 1 MiB)
  ok                      a normal answer (e.g. ok:times=2 before a fault)
  examples: 410:for=16s   429:retry-after=2:times=3   500:times=2   hang   reset   docker403"""

IDENTITY_SYNTAX = """\
identities (--identity, repeatable; default: system):
  system                                   the system-assigned identity
  user:NAME                                a user-assigned identity, ids derived from NAME
  user:NAME:client_id=ID:object_id=ID:msi_res_id=ID   ... with the ids given (any subset)
  A request without client_id/object_id/msi_res_id gets the system-assigned identity, or
  the only identity there is; otherwise 400 "Identity not found"."""

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")

_SIMPLE: dict[str, Callable[[], Fault]] = {
    "docker403": Fault.docker_403,
    "hang": Fault.hang,
    "reset": Fault.reset,
    "partial": Fault.partial_body,
    "non-json": Fault.non_json_200,
    "html": Fault.html_200,
    "foreign-json": Fault.foreign_json_200,
}
_SLOW_CHUNKS = 4
_HUGE_DEFAULT = 1024 * 1024


def parse_duration(text: str) -> float:
    """``16s``, ``500ms``, ``2m``, ``1h`` or plain seconds -> seconds. Raises ValueError."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 16s, 500ms, 2m)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _split(segment: str) -> tuple[str, str | None]:
    name, sep, value = segment.partition("=")
    return name.strip().lower(), (value.strip() if sep else None)


def _need(value: str | None, what: str) -> str:
    if not value:
        raise ValueError(f"{what} needs a value ({what}=...)")
    return value


def _positive_int(value: str, what: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{what} must be a whole number >= 1, not {value!r}")
    return int(value)


def parse_fault(spec: str) -> Step:
    """Parse one fault step (see ``FAULT_SYNTAX``). Raises ValueError saying what is wrong."""
    segments = [segment for segment in spec.split(":")]
    if not spec.strip() or any(not segment.strip() for segment in segments):
        raise ValueError(f"empty part in fault {spec!r}")
    kind, argument = _split(segments[0])
    times: int | None = None
    seconds: float | None = None
    retry_after: str | None = None
    for segment in segments[1:]:
        name, value = _split(segment)
        if name == "times":
            times = _positive_int(_need(value, name), name)
        elif name == "for":
            seconds = parse_duration(_need(value, name))
            if seconds <= 0:
                raise ValueError("for= must be > 0")
        elif name == "retry-after":
            retry_after = _need(value, name)
        else:
            raise ValueError(f"unknown option {name!r} in fault {spec!r} (times=, for=, retry-after=)")
    if retry_after is not None and not kind.isdigit():
        raise ValueError("retry-after= goes with a status code, e.g. 429:retry-after=2")
    return Step(_fault(kind, argument, retry_after), times=times, seconds=seconds)


def _fault(kind: str, argument: str | None, retry_after: str | None) -> Fault | None:
    if kind.isdigit():
        if argument is not None:
            raise ValueError(f"a status takes no value: {kind}={argument}")
        code = int(kind)
        if not 100 <= code <= 599:
            raise ValueError(f"HTTP status out of range: {code}")
        if retry_after is None:
            return Fault.status(code)
        # Whole seconds go out as given; anything else (an HTTP date) is sent verbatim.
        return Fault.retry_after(code, float(retry_after) if _is_number(retry_after) else retry_after)
    if kind in _SIMPLE or kind == "ok":
        if argument is not None:
            raise ValueError(f"{kind} takes no value")
        return None if kind == "ok" else _SIMPLE[kind]()
    if kind == "delay":
        return Fault.delay(parse_duration(_need(argument, "delay")))
    if kind == "slow":
        return Fault.slow_body(parse_duration(argument) if argument else 1.0, _SLOW_CHUNKS)
    if kind == "huge":
        return Fault.huge_body(_positive_int(argument, "huge") if argument else _HUGE_DEFAULT)
    known = ", ".join(["STATUS", *_SIMPLE, "slow", "delay", "huge", "ok"])
    raise ValueError(f"unknown fault {kind!r} (one of: {known})")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_identity(spec: str) -> Identity:
    """Parse one identity (see ``IDENTITY_SYNTAX``). Raises ValueError saying what is wrong."""
    text = spec.strip()
    if text.lower() == "system":
        return Identity.system()
    kind, _, rest = text.partition(":")
    if kind.lower() != "user" or not rest:
        raise ValueError(f"not an identity: {spec!r} (use system or user:NAME)")
    name, *options = rest.split(":")
    if not name.strip() or "=" in name:
        raise ValueError(f"user-assigned identity needs a name first: user:NAME (got {spec!r})")
    identity = Identity.user_assigned(name.strip())
    for option in options:
        key, value = _split(option)
        if key == "client_id":
            identity = dataclasses.replace(identity, client_id=_need(value, key))
        elif key == "object_id":
            identity = dataclasses.replace(identity, object_id=_need(value, key))
        elif key == "msi_res_id":
            identity = dataclasses.replace(identity, msi_res_id=_need(value, key))
        else:
            raise ValueError(f"unknown identity option {key!r} (client_id=, object_id=, msi_res_id=)")
    return identity
