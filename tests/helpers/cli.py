"""A long-running `azure-imds-token` command (`emulate`, `serve`) as a user runs it: a
subprocess whose first stdout line is the `export AZURE_POD_IDENTITY_AUTHORITY_HOST=...`."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repo root: `tests...` imports in subprocesses
ENDPOINT_ENV = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
EXPORT = f"export {ENDPOINT_ENV}="
WAIT = 30.0  # bound on every wait for a subprocess; never reached when things work


def env_without_endpoint(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENDPOINT_ENV}
    env.update(extra)
    return env


def cli_command(command: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "azure_imds_credential", command, *args]


class Running:
    def __init__(self, process: subprocess.Popen[str], endpoint: str) -> None:
        self.process = process
        self.endpoint = endpoint
        self.port = int(endpoint.rsplit(":", 1)[1])

    def stop(self, sig: signal.Signals) -> tuple[int, str, str]:
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=WAIT)
        return self.process.returncode, out, err


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=WAIT):
            raise AssertionError("the command printed nothing")
    return process.stdout.readline().strip()


@contextmanager
def running(command: str, *args: str) -> Iterator[Running]:
    """`azure-imds-token COMMAND --port 0 ARGS`, until the block ends (killed if still up)."""
    process = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter, this package
        cli_command(command, "--port", "0", *args),
        cwd=ROOT,
        env=env_without_endpoint(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = first_line(process)
        assert line.startswith(EXPORT), line
        yield Running(process, line[len(EXPORT) :])
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=WAIT)
