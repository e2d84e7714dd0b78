"""Azurite (the Azure Storage emulator, npm) as a child process for the end-to-end tests.

Azurite checks bearer tokens only with `--oauth basic`, and that needs HTTPS: the
certificate comes from trustme (a throwaway CA and a server certificate for 127.0.0.1),
made at test time. Azurite is the one pinned in the repo's package.json and installed into
./node_modules by `scripts/test` (or `npm ci`). Nothing but 127.0.0.1 is contacted:
`--disableTelemetry` keeps Azurite from phoning home. `--inMemoryPersistence` keeps no
data on disk (Azurite refuses `--location` with it, so its working directory is a tmp dir).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import trustme

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "devstoreaccount1"
LOOPBACK = "127.0.0.1"
# Readiness: Azurite 3.35 listens within about a second; a cold, loaded CI machine gets more.
_START_BUDGET = 60.0
_POLL = 0.05
_STOP_BUDGET = 10.0
_PORT_TRIES = 3


class AzuriteUnavailable(RuntimeError):
    """Azurite is not installed here (no node, or `npm ci` not run)."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pinned_version() -> str:
    """The Azurite version package.json pins (exactly)."""
    manifest = json.loads((REPO / "package.json").read_text(encoding="utf-8"))
    version: str = manifest["devDependencies"]["azurite"]
    return version


def find_azurite_blob() -> Path:
    """The pinned `azurite-blob` entry point in ./node_modules.

    Raises:
        AzuriteUnavailable: with what to do, when node or the pinned Azurite is missing.
    """
    override = os.environ.get("AZURITE_BLOB")
    if override:
        return Path(override)
    want = pinned_version()
    if shutil.which("node") is None:
        raise AzuriteUnavailable("node is not installed: install Node.js (>= 20) and run `npm ci`")
    installed = REPO / "node_modules" / "azurite" / "package.json"
    entry = REPO / "node_modules" / ".bin" / "azurite-blob"
    if not installed.is_file() or not entry.exists():
        raise AzuriteUnavailable(
            f"Azurite {want} is not installed in {REPO / 'node_modules'}: run `npm ci` (scripts/test does it)"
        )
    have = json.loads(installed.read_text(encoding="utf-8")).get("version")
    if have != want:
        raise AzuriteUnavailable(f"node_modules has Azurite {have}, package.json pins {want}: run `npm ci`")
    return entry


@dataclass(frozen=True)
class Tls:
    """A CA (trusted by the clients) and a server certificate for 127.0.0.1 (used by Azurite)."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path

    @classmethod
    def create(cls, directory: Path) -> Tls:
        ca = trustme.CA()
        server = ca.issue_cert(LOOPBACK, "localhost")
        tls = cls(directory / "ca.pem", directory / "server-cert.pem", directory / "server-key.pem")
        ca.cert_pem.write_to_path(str(tls.ca_pem))
        server.cert_chain_pems[0].write_to_path(str(tls.cert_pem))
        for extra in server.cert_chain_pems[1:]:
            extra.write_to_path(str(tls.cert_pem), append=True)
        server.private_key_pem.write_to_path(str(tls.key_pem))
        return tls


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


class Azurite:
    """One `azurite-blob` process: HTTPS, `--oauth basic`, in memory, on a free loopback port.

    A context manager: `__enter__` returns once the port accepts connections (or raises with
    Azurite's output), `__exit__` always stops the process (terminate, wait, kill).
    """

    def __init__(self, workdir: Path, tls: Tls, entry: Path | None = None) -> None:
        self.workdir = workdir
        self.tls = tls
        self._entry = entry if entry is not None else find_azurite_blob()
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = workdir / "azurite.log"
        self.startup_seconds = 0.0

    @property
    def account_url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}/{ACCOUNT}"

    def _command(self, port: int) -> list[str]:
        return [
            str(self._entry),
            "--blobHost", LOOPBACK,
            "--blobPort", str(port),
            "--oauth", "basic",
            "--cert", str(self.tls.cert_pem),
            "--key", str(self.tls.key_pem),
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--inMemoryPersistence",
        ]  # fmt: skip

    def output(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]
        except OSError:
            return ""

    def start(self) -> Azurite:
        began = time.monotonic()
        for _ in range(_PORT_TRIES):
            port = _free_port()
            if self._launch(port):
                self.port = port
                self.startup_seconds = time.monotonic() - began
                return self
        raise RuntimeError(f"Azurite did not start ({self._entry}); its output:\n{self.output()}")

    def _launch(self, port: int) -> bool:
        """Start on `port` and wait until it accepts; False when the port was taken."""
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own pinned tool, fixed arguments
                self._command(port),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_BUDGET
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                if "EADDRINUSE" in self.output():
                    return False  # another process took the port meanwhile: try another
                raise RuntimeError(f"Azurite exited at start ({self._entry}); its output:\n{self.output()}")
            if _accepts(port):
                return True
            time.sleep(_POLL)
        self.stop()
        raise RuntimeError(
            f"Azurite did not listen on {LOOPBACK}:{port} within {_START_BUDGET:g} s; its output:\n"
            f"{self.output()}"
        )

    def stop(self) -> None:
        """Terminate, wait, kill if need be. Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_BUDGET)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=_STOP_BUDGET)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
