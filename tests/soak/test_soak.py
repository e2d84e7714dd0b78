"""Soak: many callers, short-lived tokens (refreshes happen constantly), faults mixed in.

Bounded by SOAK_SECONDS (default 3 s per shell: the short mode CI runs). The long mode is
`SOAK_SECONDS=120 pytest tests/soak -s`. Each run prints its numbers.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from azure_imds_credential import ImdsManagedIdentityCredential
from azure_imds_credential.aio import ImdsManagedIdentityCredential as AsyncCredential
from azure_imds_credential.testing import Fault, ImdsEmulator

SCOPE = "https://storage.azure.com/.default"
SECONDS = float(os.environ.get("SOAK_SECONDS", "3"))
LIFETIME = 4.0  # refresh at 2 s: a refresh every other second
MAX_CALLS_PER_CALLER = 2_000_000  # a bound, not a target: the clock ends the run


@dataclass
class Tally:
    calls: int = 0
    errors: list[BaseException] = field(default_factory=list)
    expired_served: int = 0  # tokens already expired when the call started
    faults_pushed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def soak_emulator() -> Iterator[ImdsEmulator]:
    with ImdsEmulator(lifetime=LIFETIME, latency=0.02) as emulator:
        yield emulator


def _faults(emulator: ImdsEmulator, tally: Tally, stop: threading.Event) -> None:
    """Every 2.5 s, the next request gets a transient fault (500, 429, reset or 410): sparser
    than the retry schedule, so each fault costs one retry. (Faster than that, IMDS is down for
    longer than a token lives, and raising is then the right answer.)"""
    kinds = [Fault.status(500), Fault.retry_after(429, 0), Fault.reset(), Fault.status(410)]
    while not stop.wait(2.5):
        emulator.push(kinds[tally.faults_pushed % len(kinds)])
        tally.faults_pushed += 1


def _check(emulator: ImdsEmulator, tally: Tally, label: str) -> None:
    requests = len(emulator.token_requests)
    refreshes = SECONDS / (LIFETIME / 2) + 2
    print(
        f"\nsoak {label}: {tally.calls} calls in {SECONDS:g} s, {requests} IMDS requests "
        f"({refreshes:.0f} refreshes expected), {tally.faults_pushed} faults, "
        f"max in flight {emulator.max_in_flight}, {len(tally.errors)} errors"
    )
    assert tally.errors == []
    assert tally.expired_served == 0
    assert emulator.max_in_flight <= 5
    # IMDS load follows refreshes (plus one retry per injected fault), never the callers.
    assert requests <= refreshes + 2 * tally.faults_pushed + 2
    assert tally.calls > 50 * requests


def test_soak_sync_threads_serve_valid_tokens_when_refreshing_under_faults(
    soak_emulator: ImdsEmulator,
) -> None:
    tally, stop = Tally(), threading.Event()
    cred = ImdsManagedIdentityCredential(endpoint=soak_emulator.endpoint)
    end = time.monotonic() + SECONDS

    def caller() -> None:
        for _ in range(MAX_CALLS_PER_CALLER):
            if time.monotonic() >= end:
                return
            called_at = time.time()
            try:
                token = cred.get_token(SCOPE)
            except Exception as exc:  # the soak records every failure
                with tally.lock:
                    tally.errors.append(exc)
                return
            with tally.lock:
                tally.calls += 1
                tally.expired_served += token.expires_on <= called_at

    injector = threading.Thread(target=_faults, args=(soak_emulator, tally, stop))
    threads = [threading.Thread(target=caller) for _ in range(32)]
    injector.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 90)
    stop.set()
    injector.join(timeout=5)
    cred.close()
    assert not any(t.is_alive() for t in [*threads, injector]), "a caller deadlocked"
    _check(soak_emulator, tally, "sync, 32 threads")


async def test_soak_async_tasks_serve_valid_tokens_when_refreshing_under_faults(
    soak_emulator: ImdsEmulator,
) -> None:
    tally, stop = Tally(), threading.Event()
    end = time.monotonic() + SECONDS
    injector = threading.Thread(target=_faults, args=(soak_emulator, tally, stop))
    async with AsyncCredential(endpoint=soak_emulator.endpoint) as cred:

        async def caller() -> None:
            for _ in range(MAX_CALLS_PER_CALLER):
                if time.monotonic() >= end:
                    return
                called_at = time.time()
                try:
                    token = await cred.get_token(SCOPE)
                except Exception as exc:  # the soak records every failure
                    tally.errors.append(exc)
                    return
                tally.calls += 1
                tally.expired_served += token.expires_on <= called_at
                await asyncio.sleep(0)  # let the other tasks (and the refresh) run

        injector.start()
        try:
            await asyncio.wait_for(asyncio.gather(*(caller() for _ in range(1000))), SECONDS + 90)
        finally:
            stop.set()
            injector.join(timeout=5)
    _check(soak_emulator, tally, "async, 1000 tasks")
