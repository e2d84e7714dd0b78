"""Running `azure-imds-token` the way a user does: a real subprocess, with a bounded time.

Every run gets a clean environment (no proxy variables, no IMDS endpoint override) unless a
test adds them, so that nothing ever goes to the real 169.254.169.254.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Generous: a subprocess that hangs fails the test instead of the suite.
TIMEOUT = 60.0
_SCRUBBED = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
)


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name.upper() not in _SCRUBBED and not name.startswith("PYTEST")
    }
    env.update(extra or {})
    return env


def _argv(args: Iterable[str]) -> list[str]:
    return [sys.executable, "-m", "azure_imds_credential", *args]


def run_cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT) -> Result:
    """Run with stdout and stderr as pipes (stderr is not a TTY)."""
    # Fixed argv (this interpreter, this package, test-chosen args): nothing untrusted.
    done = subprocess.run(  # noqa: S603
        _argv(args),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
        env=clean_env(env),
    )
    return Result(done.returncode, done.stdout, done.stderr)


def run_cli_with_tty_stderr(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT
) -> Result:
    """Run with stderr attached to a pseudo-terminal (so `isatty()` is true); stdout a pipe."""
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def pump() -> None:
        # Drain the terminal while the child runs (a full pty buffer would block it); EIO
        # once every copy of the slave side is closed.
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=pump, daemon=True)
    try:
        try:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, see run_cli
                _argv(args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=slave,
                env=clean_env(env),
            )
        finally:
            os.close(slave)
        reader.start()
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        reader.join(timeout=10)
    finally:
        os.close(master)
    stderr = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return Result(proc.returncode, out.decode("utf-8", "replace"), stderr)


def assert_no_token_on_stderr(result: Result, issued: Iterable[str]) -> None:
    """No token ever reaches stderr: neither one the emulator issued nor anything JWT-like."""
    for token in issued:
        assert token not in result.stderr
        assert token.split(".")[2] not in result.stderr
    assert "eyJ" not in result.stderr
