"""Many worker processes, ours and azure-identity's, share one relay: IMDS is asked once."""

from __future__ import annotations

import subprocess
import sys

from azure_imds_credential.relay import TokenRelay
from azure_imds_credential.testing import ImdsEmulator
from tests.relay.helpers import ENDPOINT_ENV, ROOT, WAIT, env_without_endpoint, first_line

WORKERS = ("ours", "azure-identity") * 4


def test_relay_sends_one_upstream_request_when_many_processes_ask_at_once() -> None:
    # Latency upstream keeps the first request in flight while the others arrive, so the
    # relay's single flight (not just its cache) is what keeps IMDS at one request.
    with ImdsEmulator(latency=0.2) as upstream, TokenRelay(endpoint=upstream.endpoint) as relay:
        env = env_without_endpoint(**{ENDPOINT_ENV: relay.endpoint})
        processes = [
            subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter, our worker module
                [sys.executable, "-m", "tests.relay._worker", kind],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for kind in WORKERS
        ]
        try:
            # Every worker has built its credential before any asks: then all ask together.
            assert [first_line(process) for process in processes] == ["ready"] * len(WORKERS)
            for process in processes:
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            results = [process.communicate(timeout=WAIT) for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                process.communicate(timeout=WAIT)
        token_requests = upstream.token_requests
    for process, (_, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
    digests = {out.strip() for out, _ in results}
    assert len(digests) == 1  # every worker, whatever its client, got the same token
    assert len(token_requests) == 1
