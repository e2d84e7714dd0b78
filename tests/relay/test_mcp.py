"""`serve --mcp stdio` driven by the official MCP SDK's client, as an agent host would."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from azure_imds_credential.relay import TOOL_NAME
from azure_imds_credential.testing import ImdsEmulator
from tests.relay.helpers import RESOURCE, ROOT, SCOPE, env_without_endpoint, first_line, serve_command

mcp = pytest.importorskip("mcp", reason="the optional extra `mcp` is not installed")

from mcp import ClientSession  # noqa: E402 - after the importorskip above
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402


@pytest.fixture
def upstream() -> Iterator[ImdsEmulator]:
    with ImdsEmulator() as running:
        yield running


async def _session_run(upstream: ImdsEmulator, stderr: Path, *extra: str, calls: list[dict[str, Any]]) -> Any:
    """Start the server, list its tools and make `calls`; returns (tools, results)."""
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "azure_imds_credential",
            "serve",
            "--mcp",
            "stdio",
            "--endpoint",
            upstream.endpoint,
            *extra,
        ],
        env=env_without_endpoint(),
        cwd=ROOT,
    )
    with stderr.open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = (await session.list_tools()).tools
            results = [await session.call_tool(TOOL_NAME, arguments) for arguments in calls]
    return tools, results


def _text(result: Any) -> str:
    return "".join(getattr(part, "text", "") for part in result.content)


async def test_mcp_tool_lists_annotations_and_hides_token_when_started_without_expose_flag(
    upstream: ImdsEmulator, tmp_path: Path
) -> None:
    stderr = tmp_path / "stderr.txt"
    tools, results = await _session_run(upstream, stderr, calls=[{"scope": SCOPE}, {"resource": RESOURCE}])
    (tool,) = tools
    assert tool.name == TOOL_NAME
    assert tool.annotations.read_only_hint is True
    assert tool.annotations.idempotent_hint is True
    assert "NOT returned" in (tool.description or "")
    assert set(tool.input_schema["properties"]) >= {
        "resource",
        "scope",
        "client_id",
        "object_id",
        "msi_res_id",
        "authority",
        "bypass_cache",
    }
    first, second = results
    assert not first.is_error
    info = json.loads(_text(first))
    assert info["resource"] == RESOURCE
    assert info["claims"]["aud"] == RESOURCE and "oid" in info["claims"] and "tid" in info["claims"]
    assert "access_token" not in info
    (token,) = upstream.issued_tokens()  # both calls: one upstream token (one cache)
    assert token not in _text(first) + _text(second)
    assert token not in stderr.read_text()


async def test_mcp_tool_returns_token_when_started_with_expose_flag(
    upstream: ImdsEmulator, tmp_path: Path
) -> None:
    tools, (result,) = await _session_run(
        upstream, tmp_path / "stderr.txt", "--mcp-expose-token", calls=[{"resource": RESOURCE}]
    )
    assert "IS returned" in (tools[0].description or "")
    assert json.loads(_text(result))["access_token"] == upstream.issued_tokens()[0]


async def test_mcp_tool_reports_imds_style_error_when_input_or_upstream_fails(
    upstream: ImdsEmulator, tmp_path: Path
) -> None:
    _, results = await _session_run(
        upstream,
        tmp_path / "stderr.txt",
        calls=[
            {},
            {"resource": RESOURCE, "client_id": "a", "object_id": "b"},
            {"resource": RESOURCE, "client_id": "x"},
        ],
    )
    missing, two_selectors, not_found = results
    assert all(result.is_error for result in results)
    assert "400 invalid_request" in _text(missing) and "resource" in _text(missing)
    assert "Only one of client_id" in _text(two_selectors)
    assert "Identity not found" in _text(not_found)
    assert "Traceback" not in _text(not_found)


def test_mcp_stdio_server_exits_0_when_sigterm_arrives(upstream: ImdsEmulator) -> None:
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [
            sys.executable,
            "-m",
            "azure_imds_credential",
            "serve",
            "--mcp",
            "stdio",
            "--endpoint",
            upstream.endpoint,
        ],
        cwd=ROOT,
        env=env_without_endpoint(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        # The banner means the server is up (stdout is the protocol: it stays empty).
        assert "MCP server on stdio" in process.stderr.readline()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out == ""


def _start_http_server(endpoint: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        serve_command("--mcp", "http", "--port", "0", "--endpoint", endpoint),
        cwd=ROOT,
        env=env_without_endpoint(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = first_line(process)  # the server prints it once it listens
    except BaseException:
        process.kill()
        process.communicate(timeout=30)
        raise
    assert line.startswith("MCP http://127.0.0.1:"), line
    return process, line.split(" ", 1)[1]


def _stop(process: subprocess.Popen[str], sig: signal.Signals | None) -> str:
    if sig is not None and process.poll() is None:
        process.send_signal(sig)
    try:
        return process.communicate(timeout=30)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


async def test_mcp_http_server_serves_tool_and_exits_0_when_sigterm_arrives(upstream: ImdsEmulator) -> None:
    # Subprocess calls block: they run in a worker thread, off the event loop.
    process, url = await anyio.to_thread.run_sync(_start_http_server, upstream.endpoint)
    try:
        async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool(TOOL_NAME, {"resource": RESOURCE})
    finally:
        err = await anyio.to_thread.run_sync(_stop, process, signal.SIGTERM)
    assert process.returncode == 0, err
    assert not result.is_error
    assert json.loads(_text(result))["claims"]["aud"] == RESOURCE
    assert upstream.issued_tokens()[0] not in _text(result) + err
