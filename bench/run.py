"""Benchmark azure_imds_credential against azure-identity and msal, side by side.

    python -m bench [--quick] [--only SCENARIO[,SCENARIO...]] [--out bench/results]
    python bench/run.py ...          (the same)

Needs the `bench` extra (installs nothing by itself):
    pip install -e '.[bench]'        # azure-identity, msal, aiohttp, matplotlib

Everything runs against loopback servers (the package's IMDS emulator, a refusing port, a
listener that drops SYNs, a silent server), pointed to by AZURE_POD_IDENTITY_AUTHORITY_HOST,
set per scenario. Implementations are interleaved and repeated; every figure is a median and
a min. Fresh-process scenarios run in subprocesses (bench/_child.py). Scenarios that take long
by design for the incumbents are capped and reported as ">cap". Writes bench/results/results.md,
results.json and ratios.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/run.py`
    sys.path.insert(0, str(ROOT))

from azure_imds_credential.testing import (  # noqa: E402 - after the sys.path fix above
    Fault,
    ImdsEmulator,
    SilentServer,
    dropped_syn_endpoint,
    refusing_endpoint,
)

CHILD = Path(__file__).resolve().parent / "_child.py"
ENV = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
SCOPE = "https://storage.azure.com/.default"
RESOURCE = "https://storage.azure.com"
OURS = ("ours-sync", "ours-aio")
INCUMBENTS = ("azid-sync", "azid-aio", "msal")
ALL = OURS + INCUMBENTS
LABEL = {
    "ours-sync": "ours (sync)",
    "ours-aio": "ours (aio)",
    "azid-sync": "azure-identity (sync)",
    "azid-aio": "azure-identity (aio)",
    "msal": "msal ManagedIdentityClient",
}
# The azure-identity flavour each of ours is compared with.
PEER = {"ours-sync": "azid-sync", "ours-aio": "azid-aio", "msal": "azid-sync"}


# -- results -----------------------------------------------------------------------------------
@dataclass
class Figure:
    scenario: str
    metric: str
    impl: str
    unit: str
    samples: list[float] = field(default_factory=list)
    capped: bool = False  # at least one run hit the cap
    cap: float | None = None
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def min(self) -> float | None:
        return min(self.samples) if self.samples else None


@dataclass
class Target:
    scenario: str
    text: str
    figure: str
    met: bool | None  # None: not measurable here
    ratio: float | None = None  # ours / azure-identity, for the chart


class Results:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.figures: list[Figure] = []
        self.targets: list[Target] = []
        self.notes: list[str] = []

    def figure(self, scenario: str, metric: str, impl: str, unit: str, **kw: Any) -> Figure:
        for fig in self.figures:
            if (fig.scenario, fig.metric, fig.impl) == (scenario, metric, impl):
                return fig
        fig = Figure(scenario, metric, impl, unit, **kw)
        self.figures.append(fig)
        return fig

    def get(self, scenario: str, metric: str, impl: str) -> Figure | None:
        for fig in self.figures:
            if (fig.scenario, fig.metric, fig.impl) == (scenario, metric, impl):
                return fig
        return None

    def target(
        self, scenario: str, text: str, figure: str, met: bool | None, ratio: float | None = None
    ) -> None:
        state = {True: "MET", False: "MISSED", None: "n/a"}[met]
        print(f"  target [{state}] {text}: {figure}", flush=True)
        self.targets.append(Target(scenario, text, figure, met, ratio))


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.2f} us"
        if value < 1:
            return f"{value * 1e3:.2f} ms"
        return f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:+.1f} MiB"
    if unit == "count":
        return f"{value:g}"
    return f"{value:g} {unit}"


def fig_text(fig: Figure | None) -> str:
    if fig is None or not fig.samples:
        return "-"
    if fig.capped and fig.cap is not None and fig.median is not None and fig.median >= fig.cap:
        return f">{fig.cap:g} s (cap)"
    return fmt(fig.median, fig.unit)


def ratio(
    results: Results, scenario: str, metric: str, impl: str, peer_metric: str | None = None
) -> float | None:
    ours = results.get(scenario, metric, impl)
    theirs = results.get(scenario, peer_metric or metric, PEER[impl])
    if not ours or not theirs or not ours.median or not theirs.median:
        return None
    return ours.median / theirs.median


# -- environment helpers --------------------------------------------------------------------------
@contextlib.contextmanager
def endpoint_env(endpoint: str) -> Iterator[None]:
    old = os.environ.get(ENV)
    os.environ[ENV] = endpoint
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


# Children read and write bytecode here, never next to the sources: an installed package has
# its .pyc files, and compiling on every import (PYTHONDONTWRITEBYTECODE) would measure the
# compiler, not the import. A warm-up run fills it before anything is timed.
PYCACHE = Path(tempfile.gettempdir()) / "azure-imds-bench-pycache"


def child_env(endpoint: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV, "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.pop("HTTP_PROXY", None)
    env.pop("HTTPS_PROXY", None)
    env["NO_PROXY"] = "127.0.0.1,localhost"
    if endpoint is not None:
        env[ENV] = endpoint
    env.update(extra)
    return env


def run_child(args: list[str], endpoint: str | None, timeout: float = 60.0, **extra: str) -> dict[str, Any]:
    proc = subprocess.run(  # noqa: S603 - our own child script
        [sys.executable, str(CHILD), *args],
        env=child_env(endpoint, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child {args} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


class Racer:
    """One implementation's call in a fresh process: imports done, waiting for "go"."""

    def __init__(
        self, impl: str, endpoint: str, mode: str = "call", arg: str | None = None, **extra: str
    ) -> None:
        self.impl = impl
        args = [sys.executable, str(CHILD), mode, impl] + ([arg] if arg else [])
        self.proc = subprocess.Popen(  # noqa: S603 - our own child script
            args,
            env=child_env(endpoint, **extra),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=str(ROOT),
        )
        self.result: dict[str, Any] | None = None

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if readable else b""
        if line.strip() != b"ready":
            self.kill()
            raise RuntimeError(f"{self.impl} child did not get ready")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def finish(self, deadline: float) -> dict[str, Any] | None:
        """The child's result, or None when it passed the deadline (then it is killed)."""
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        assert self.proc.stdout is not None
        lines = [line for line in self.proc.stdout.read().splitlines() if line.startswith(b"{")]
        self.close_pipes()
        self.result = json.loads(lines[-1]) if lines else None
        return self.result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.close_pipes()

    def close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def race(
    endpoints: dict[str, str],
    cap: float,
    mode: str = "call",
    arg: str | None = None,
    at_go: Callable[[float], None] | None = None,
    **extra: str,
) -> dict[str, tuple[float | None, dict[str, Any] | None, float]]:
    """Start every implementation's call at once (each in its own process, against its own
    endpoint); returns impl -> (seconds or None when capped, result, wall-clock go time)."""
    racers = [Racer(impl, endpoint, mode, arg, **extra) for impl, endpoint in endpoints.items()]
    try:
        for racer in racers:
            racer.wait_ready()
        go_wall = time.time()
        if at_go is not None:
            at_go(go_wall)
        for racer in racers:
            racer.go()
        deadline = time.monotonic() + cap
        out = {}
        for racer in racers:
            result = racer.finish(deadline)
            out[racer.impl] = (None if result is None else float(result["seconds"]), result, go_wall)
        return out
    finally:
        for racer in racers:
            racer.kill()


# -- in-process credentials -------------------------------------------------------------------------
def make_sync(impl: str) -> tuple[Any, Callable[[str], str], Callable[[str], Any], Callable[[], None]]:
    """(credential, get_token(scope) -> token, get_token_info(scope), close)."""
    if impl == "ours-sync":
        from azure_imds_credential import ImdsManagedIdentityCredential

        cred: Any = ImdsManagedIdentityCredential()
    elif impl == "azid-sync":
        from azure.identity import ManagedIdentityCredential

        cred = ManagedIdentityCredential()
    elif impl == "msal":
        import msal
        import requests

        client = msal.ManagedIdentityClient(
            msal.SystemAssignedManagedIdentity(), http_client=requests.Session()
        )

        def msal_token(scope: str) -> str:
            result = client.acquire_token_for_client(resource=scope.removesuffix("/.default"))
            return str(result["access_token"])

        return client, msal_token, msal_token, lambda: None
    else:
        raise ValueError(impl)
    return cred, lambda scope: cred.get_token(scope).token, cred.get_token_info, cred.close


def make_async(impl: str) -> Any:
    if impl == "ours-aio":
        from azure_imds_credential.aio import ImdsManagedIdentityCredential

        return ImdsManagedIdentityCredential()
    from azure.identity.aio import ManagedIdentityCredential

    return ManagedIdentityCredential()


def rotate(items: tuple[str, ...], rep: int) -> list[str]:
    """Interleave: every repetition starts with a different implementation."""
    k = rep % len(items)
    return list(items[k:] + items[:k])


# -- scenarios ----------------------------------------------------------------------------------------
@dataclass
class Config:
    quick: bool
    hit_calls: int
    hit_reps: int
    miss_calls: int
    miss_reps: int
    proc_reps: int
    fail_reps: int
    syn_cap: float
    hang_cap: float
    slow_seconds: float
    window_410: float
    forever_cap: float
    short_timeout: float


def scenario_cache_hit(res: Results, cfg: Config) -> None:
    """Warm cache hit: get_token and get_token_info per call."""
    name = "warm cache hit"
    with ImdsEmulator() as imds, endpoint_env(imds.endpoint):
        sync = {impl: make_sync(impl) for impl in ("ours-sync", "azid-sync", "msal")}
        for _, token, info, _ in sync.values():
            token(SCOPE), info(SCOPE)

        async def async_timing(impl: str, method: str, n: int) -> float:
            cred = make_async(impl)
            try:
                call = getattr(cred, method)
                await call(SCOPE)
                t0 = time.perf_counter()
                for _ in range(n):
                    await call(SCOPE)
                return (time.perf_counter() - t0) / n
            finally:
                await cred.close()

        n = cfg.hit_calls
        for rep in range(cfg.hit_reps):
            for impl in rotate(ALL, rep):
                for method in ("get_token", "get_token_info"):
                    if impl == "msal" and method == "get_token_info":
                        continue
                    metric = method if impl != "msal" else "acquire_token_for_client"
                    fig = res.figure(name, "get_token" if impl == "msal" else metric, impl, "s")
                    if impl == "msal":
                        fig.note = "acquire_token_for_client(resource=...)"
                    if impl in sync:
                        _, token, info, _ = sync[impl]
                        call = token if method == "get_token" else info
                        t0 = time.perf_counter()
                        for _ in range(n):
                            call(SCOPE)
                        fig.samples.append((time.perf_counter() - t0) / n)
                    else:
                        fig.samples.append(asyncio.run(async_timing(impl, method, n)))
        for _, _, _, close in sync.values():
            close()
    for impl in OURS:
        for method in ("get_token", "get_token_info"):
            ours = res.get(name, method, impl)
            base = res.get(name, method, "azid-sync")
            r = ours.median / base.median if ours and base and ours.median and base.median else None
            res.target(
                name,
                f"{LABEL[impl]} {method} >= 15x faster than azure-identity sync",
                f"{fig_text(ours)} vs {fig_text(base)}: {1 / r:.0f}x faster" if r else "-",
                r is not None and r <= 1 / 15,
                r,
            )


def scenario_cache_miss(res: Results, cfg: Config) -> None:
    """A token request that misses the cache, on an already open connection."""
    name = "cache miss, open connection"
    import http.client

    with ImdsEmulator() as imds, endpoint_env(imds.endpoint):
        k = cfg.miss_calls

        def bare() -> float:
            conn = http.client.HTTPConnection("127.0.0.1", imds.port, timeout=5)
            try:
                path = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="

                def get(resource: str) -> None:
                    conn.request("GET", path + resource, headers={"Metadata": "true"})
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200

                get("https%3A%2F%2Fwarm.example")
                t0 = time.perf_counter()
                for i in range(k):
                    get(f"https%3A%2F%2Fb{i}.example")
                return (time.perf_counter() - t0) / k
            finally:
                conn.close()

        async def async_miss(impl: str, rep: int) -> float:
            cred = make_async(impl)
            try:
                await cred.get_token(f"https://warm{rep}.example/.default")
                t0 = time.perf_counter()
                for i in range(k):
                    await cred.get_token(f"https://m{rep}-{i}.example/.default")
                return (time.perf_counter() - t0) / k
            finally:
                await cred.close()

        impls = (*ALL, "http.client")
        for rep in range(cfg.miss_reps):
            for impl in rotate(impls, rep):
                fig = res.figure(name, "per request", impl, "s")
                if impl == "http.client":
                    fig.note = "bare keep-alive GET to the same server (floor)"
                    fig.samples.append(bare())
                elif impl.endswith("aio"):
                    fig.samples.append(asyncio.run(async_miss(impl, rep)))
                else:
                    _, token, _, close = make_sync(impl)
                    try:
                        token(f"https://warm{rep}.example/.default")
                        t0 = time.perf_counter()
                        for i in range(k):
                            token(f"https://m{rep}-{i}.example/.default")
                        fig.samples.append((time.perf_counter() - t0) / k)
                    finally:
                        close()
    for impl in OURS:
        r = ratio(res, name, "per request", impl)
        res.target(
            name,
            f"{LABEL[impl]} <= 0.6x azure-identity",
            f"{fig_text(res.get(name, 'per request', impl))} = {r:.2f}x" if r else "-",
            r is not None and r <= 0.6,
            r,
        )


def scenario_import(res: Results, cfg: Config) -> None:
    name = "import in a fresh interpreter"
    modules = {
        "azure.core.credentials": "azure.core.credentials",
        # The async package needs asyncio; its fair floor includes it.
        "asyncio+azure.core.credentials": "asyncio+azure.core.credentials",
        "ours-sync": "azure_imds_credential",
        "ours-aio": "azure_imds_credential.aio",
        "azid-sync": "azure.identity",
        "azid-aio": "azure.identity.aio",
        "msal": "msal",
    }
    for rep in range(cfg.proc_reps):
        for impl in rotate(tuple(modules), rep):
            fig = res.figure(name, "import", impl, "s", note=f"import {modules[impl].replace('+', ', ')}")
            fig.samples.append(float(run_child(["import", modules[impl]], None)["seconds"]))
    for impl in OURS:
        floor = "azure.core.credentials" if impl == "ours-sync" else "asyncio+azure.core.credentials"
        core = res.get(name, "import", floor)
        ours = res.get(name, "import", impl)
        r = ours.median / core.median if ours and core and ours.median and core.median else None
        res.target(
            name,
            f"{LABEL[impl]} <= 1.2x import {floor.replace('+', ', ')}",
            f"{fig_text(ours)} vs {fig_text(core)} = {r:.2f}x" if r else "-",
            r is not None and r <= 1.2,
            ratio(res, name, "import", impl),
        )


def scenario_construct(res: Results, cfg: Config) -> None:
    name = "constructing the credential"
    with ImdsEmulator() as imds:
        for rep in range(cfg.proc_reps):
            for impl in rotate(("ours-sync", "ours-aio", "azid-sync", "azid-aio"), rep):
                fig = res.figure(
                    name, "constructor", impl, "s", note="in a fresh process, module already imported"
                )
                fig.samples.append(float(run_child(["construct", impl], imds.endpoint)["seconds"]))
    ours = res.get(name, "constructor", "ours-aio")
    res.target(
        name,
        "ours (aio) constructor < 5 ms (transport loads on first use)",
        fig_text(ours),
        bool(ours and ours.median is not None and ours.median < 0.005),
        ratio(res, name, "constructor", "ours-aio"),
    )


def scenario_fresh(res: Results, cfg: Config, mode: str) -> None:
    """Cold first token (20 ms IMDS latency) or RSS growth, in fresh processes."""
    name = {"cold": "cold first token, new process", "memory": "memory: RSS growth"}[mode]
    with ImdsEmulator(latency=0.02 if mode == "cold" else 0.0) as imds:
        for rep in range(cfg.proc_reps if mode == "cold" else max(2, cfg.proc_reps // 2)):
            for impl in rotate(ALL, rep):
                out = run_child([mode, impl], imds.endpoint)
                if mode == "cold":
                    fig = res.figure(
                        name, "import+construct+first token", impl, "s", note="IMDS latency 20 ms"
                    )
                    fig.samples.append(float(out["seconds"]))
                else:
                    fig = res.figure(name, "import + one token", impl, "MiB")
                    fig.samples.append(float(out["rss_growth_mib"]))
    metric = "import+construct+first token" if mode == "cold" else "import + one token"
    limit = 0.6 if mode == "cold" else 0.75
    for impl in OURS:
        r = ratio(res, name, metric, impl)
        res.target(
            name,
            f"{LABEL[impl]} <= {limit}x azure-identity",
            f"{fig_text(res.get(name, metric, impl))} vs {fig_text(res.get(name, metric, PEER[impl]))}"
            + (f" = {r:.2f}x" if r else ""),
            r is not None and r <= limit,
            r,
        )


def _callers(impl: str, scopes: list[str], cap: float) -> tuple[list[str | None], float]:
    """Call get_token once per scope, all at once (threads or tasks) on one credential."""
    if impl.endswith("aio"):

        async def main() -> list[str | None]:
            cred = make_async(impl)
            try:

                async def one(scope: str) -> str | None:
                    try:
                        return str((await cred.get_token(scope)).token)
                    except Exception:
                        return None

                return list(await asyncio.wait_for(asyncio.gather(*(one(s) for s in scopes)), cap))
            finally:
                await cred.close()

        t0 = time.perf_counter()
        tokens = asyncio.run(main())
        return tokens, time.perf_counter() - t0
    _, token, _, close = make_sync(impl)
    results: list[str | None] = [None] * len(scopes)
    barrier = threading.Barrier(len(scopes))

    def worker(i: int) -> None:
        barrier.wait()
        with contextlib.suppress(Exception):
            results[i] = token(scopes[i])

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(scopes))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    end = time.monotonic() + cap
    for t in threads:
        t.join(timeout=max(0.0, end - time.monotonic()))
    elapsed = time.perf_counter() - t0
    close()
    return results, elapsed


def scenario_herd(res: Results, cfg: Config) -> None:
    name = "cold herd on one credential"
    counts = {"ours-sync": 32, "azid-sync": 32, "msal": 32, "ours-aio": 500, "azid-aio": 500}
    for impl in ALL:
        with ImdsEmulator(latency=0.1) as imds, endpoint_env(imds.endpoint):
            tokens, elapsed = _callers(impl, [SCOPE] * counts[impl], cap=60)
            kind = "tasks" if impl.endswith("aio") else "threads"
            note = f"{counts[impl]} {kind}, IMDS latency 100 ms"
            res.figure(name, "requests to IMDS", impl, "count", note=note).samples.append(
                len(imds.token_requests)
            )
            res.figure(name, "max in flight", impl, "count", note=note).samples.append(imds.max_in_flight)
            res.figure(name, "distinct tokens", impl, "count", note=note).samples.append(
                len({t for t in tokens if t})
            )
            res.figure(name, "callers without a token", impl, "count", note=note).samples.append(
                sum(t is None for t in tokens)
            )
            res.figure(name, "time", impl, "s", note=note).samples.append(elapsed)
    for impl in OURS:
        req = res.get(name, "requests to IMDS", impl)
        tok = res.get(name, "distinct tokens", impl)
        failed = res.get(name, "callers without a token", impl)
        ok = bool(req and tok and failed and req.median == 1 and tok.median == 1 and failed.median == 0)
        res.target(
            name,
            f"{LABEL[impl]} {counts[impl]} callers: exactly 1 request, every caller the same token",
            f"{fig_text(req)} request(s), {fig_text(tok)} distinct token(s), {fig_text(failed)} failed",
            ok,
            ratio(res, name, "requests to IMDS", impl),
        )


def scenario_resources(res: Results, cfg: Config) -> None:
    name = "20 resources at once, cold"
    scopes = [f"https://r{i}.example/.default" for i in range(20)]
    for impl in ALL:
        with ImdsEmulator(latency=0.1) as imds, endpoint_env(imds.endpoint):
            tokens, elapsed = _callers(impl, scopes, cap=60)
            note = "20 threads/tasks, IMDS latency 100 ms"
            res.figure(name, "requests to IMDS", impl, "count", note=note).samples.append(
                len(imds.token_requests)
            )
            res.figure(name, "max in flight", impl, "count", note=note).samples.append(imds.max_in_flight)
            res.figure(name, "callers without a token", impl, "count", note=note).samples.append(
                sum(t is None for t in tokens)
            )
            res.figure(name, "time", impl, "s", note=note).samples.append(elapsed)
    for impl in OURS:
        req = res.get(name, "requests to IMDS", impl)
        peak = res.get(name, "max in flight", impl)
        failed = res.get(name, "callers without a token", impl)
        ok = bool(
            req and peak and failed and req.median == 20 and (peak.median or 99) <= 5 and failed.median == 0
        )
        res.target(
            name,
            f"{LABEL[impl]}: 20 requests, never more than 5 in flight",
            f"{fig_text(req)} requests, max {fig_text(peak)} in flight, {fig_text(failed)} failed",
            ok,
            ratio(res, name, "max in flight", impl),
        )


def _record_race(
    res: Results,
    name: str,
    metric: str,
    cap: float,
    outcome: dict[str, tuple[float | None, dict[str, Any] | None, float]],
    note: str = "",
) -> None:
    for impl, (seconds, result, _) in outcome.items():
        fig = res.figure(
            name, metric, impl.split(":")[0] if impl.endswith(":short") else impl, "s", cap=cap, note=note
        )
        if impl.endswith(":short"):
            continue
        if seconds is None:
            fig.capped = True
            fig.samples.append(cap)
        else:
            fig.samples.append(seconds)
        if result is not None:
            outcome_text = "token" if result.get("ok") else result.get("error", "error").rsplit(".", 1)[-1]
            fig.note = (note + "; " if note else "") + outcome_text


def scenario_refused(res: Results, cfg: Config) -> None:
    name = "connection refused"
    cap = 30.0
    for _ in range(cfg.fail_reps):
        endpoints = {impl: refusing_endpoint() for impl in ALL}
        _record_race(res, name, "time to error", cap, race(endpoints, cap))
    for impl in OURS:
        fig = res.get(name, "time to error", impl)
        res.target(
            name,
            f"{LABEL[impl]} < 0.1 s",
            fig_text(fig),
            bool(fig and not fig.capped and fig.median is not None and fig.median < 0.1),
            ratio(res, name, "time to error", impl),
        )


def scenario_syn_dropped(res: Results, cfg: Config) -> None:
    name = "SYNs dropped"
    cap = cfg.syn_cap
    with dropped_syn_endpoint() as endpoint:
        if endpoint is None:
            res.notes.append("SYNs dropped: this host does not drop SYNs on a full accept queue; skipped")
            return
        for _ in range(cfg.fail_reps):
            _record_race(res, name, "time to error", cap, race(dict.fromkeys(ALL, endpoint), cap))
    for impl in OURS:
        fig = res.get(name, "time to error", impl)
        res.target(
            name,
            f"{LABEL[impl]} < 1.5 s",
            fig_text(fig),
            bool(fig and not fig.capped and fig.median is not None and fig.median < 1.5),
            ratio(res, name, "time to error", impl),
        )


def scenario_hang(res: Results, cfg: Config) -> None:
    name = "accepts, never answers"
    cap = cfg.hang_cap
    with SilentServer() as silent:
        _record_race(res, name, "time to error", cap, race(dict.fromkeys(ALL, silent.endpoint), cap))
    slow_name = f"IMDS {cfg.slow_seconds:g} s slow to answer"
    emulators = {impl: ImdsEmulator().start() for impl in ALL}
    try:
        for imds in emulators.values():
            imds.always(Fault.delay(cfg.slow_seconds))
        outcome = race({impl: imds.endpoint for impl, imds in emulators.items()}, cfg.slow_seconds + 25)
        _record_race(res, slow_name, "time to token", cfg.slow_seconds + 25, outcome)
    finally:
        for imds in emulators.values():
            imds.stop()
    for impl in OURS:
        fig = res.get(name, "time to error", impl)
        slow = res.get(slow_name, "time to token", impl)
        slow_ok = bool(slow and not slow.capped and "token" in slow.note)
        res.target(
            name,
            f"{LABEL[impl]} error within 5 s; a {cfg.slow_seconds:g} s slow IMDS is waited for",
            f"{fig_text(fig)}; slow IMDS: {fig_text(slow)} ({'token' if slow_ok else 'no token'})",
            bool(fig and not fig.capped and fig.median is not None and fig.median < 5 and slow_ok),
            ratio(res, name, "time to error", impl),
        )


def scenario_410_window(res: Results, cfg: Config) -> None:
    window = cfg.window_410
    name = f"410 for the first {window:g} s, then healthy"
    emulators = {impl: ImdsEmulator().start() for impl in ALL}
    timers: list[threading.Timer] = []
    recovered: dict[str, float] = {}
    try:
        for imds in emulators.values():
            imds.always(Fault.status(410))

        def at_go(go_wall: float) -> None:
            for impl, imds in emulators.items():

                def heal(impl: str = impl, imds: ImdsEmulator = imds) -> None:
                    imds.always(None)
                    recovered[impl] = time.time()

                timer = threading.Timer(window, heal)
                timer.daemon = True
                timers.append(timer)
                timer.start()

        cap = window + 90
        outcome = race({impl: imds.endpoint for impl, imds in emulators.items()}, cap, at_go=at_go)
        _record_race(res, name, "time to token", cap, outcome)
        for impl, (_seconds, result, go_wall) in outcome.items():
            fig = res.figure(name, "token after recovery", impl, "s", cap=cap - window)
            if result is None or not result.get("ok"):
                fig.capped = True
                fig.samples.append(cap - window)
            else:
                fig.samples.append(max(0.0, float(result["done_at"]) - recovered.get(impl, go_wall + window)))
            res.figure(name, "requests", impl, "count").samples.append(len(emulators[impl].token_requests))
    finally:
        for timer in timers:
            timer.cancel()
        for imds in emulators.values():
            imds.stop()
    if cfg.quick:
        res.notes.append(f"{name}: quick mode shortens the 16 s window to {window:g} s")
    for impl in OURS:
        fig = res.get(name, "token after recovery", impl)
        res.target(
            name,
            f"{LABEL[impl]} token within 5 s of recovery",
            fig_text(fig),
            bool(fig and not fig.capped and fig.median is not None and fig.median <= 5),
            ratio(res, name, "time to token", impl),
        )


def scenario_410_forever(res: Results, cfg: Config) -> None:
    name = "410 forever"
    cap = cfg.forever_cap
    impls = list(ALL)
    if cfg.quick:
        impls += ["ours-sync:short", "ours-aio:short"]
    emulators = {impl: ImdsEmulator().start() for impl in impls}
    try:
        for imds in emulators.values():
            imds.always(Fault.status(410))
        outcome = race(
            {impl: imds.endpoint for impl, imds in emulators.items()},
            cap,
            BENCH_OURS_TIMEOUT=str(cfg.short_timeout),
        )
        _record_race(res, name, "time to error", cap, outcome)
        errors = {}
        for impl, (_seconds, result, _) in outcome.items():
            errors[impl] = (result or {}).get("error", f">{cap:g} s, still trying")
            if not impl.endswith(":short"):
                res.figure(name, "requests", impl, "count").samples.append(
                    len(emulators[impl].token_requests)
                )
                res.figure(name, "error type", impl, "-").note = errors[impl]
    finally:
        for imds in emulators.values():
            imds.stop()
    same = None
    if cfg.quick:
        res.notes.append(
            f"410 forever: quick mode caps every call at {cap:g} s (ours must still be trying) and "
            f"checks the error types with ours' deadline cut to {cfg.short_timeout:g} s"
        )
        sync_err, aio_err = errors.get("ours-sync:short"), errors.get("ours-aio:short")
    else:
        sync_err, aio_err = errors.get("ours-sync"), errors.get("ours-aio")
    same = sync_err == aio_err and sync_err is not None and not sync_err.startswith(">")
    res.notes.append(
        f"410 forever error types: ours sync {sync_err}, ours aio {aio_err}; azure-identity sync "
        f"{errors.get('azid-sync')}, aio {errors.get('azid-aio')}; msal {errors.get('msal')}"
    )
    for impl in OURS:
        fig = res.get(name, "time to error", impl)
        if cfg.quick:
            ok = bool(fig and fig.capped and same)
            text = f"still trying at the {cap:g} s cap; same error type sync/aio: {same} ({sync_err})"
        else:
            m = fig.median if fig and not fig.capped else None
            ok = bool(m is not None and 70 <= m <= 81 and same)
            text = f"{fig_text(fig)}; same error type sync/aio: {same} ({sync_err})"
        res.target(
            name,
            f"{LABEL[impl]} keeps trying >= 70 s, fails by the deadline, same type",
            text,
            ok,
            ratio(res, name, "time to error", impl),
        )


def scenario_throttled(res: Results, cfg: Config) -> None:
    name = "429 every other, 500 for the first 3"
    cap = 90.0
    for _ in range(max(1, cfg.fail_reps - 1)):
        emulators = {impl: ImdsEmulator().start() for impl in ALL}
        try:
            for imds in emulators.values():
                imds.push(*[Fault.status(500)] * 3)
                for _ in range(30):
                    imds.push(Fault.status(429), Fault.token())
            outcome = race(
                {impl: imds.endpoint for impl, imds in emulators.items()}, cap, mode="calls", arg="5"
            )
            _record_race(res, name, "time for 5 tokens", cap, outcome, note="5 resources, one after another")
            for impl, imds in emulators.items():
                res.figure(name, "requests", impl, "count").samples.append(len(imds.token_requests))
        finally:
            for imds in emulators.values():
                imds.stop()
    for impl in OURS:
        fig = res.get(name, "time for 5 tokens", impl)
        peer = res.get(name, "time for 5 tokens", PEER[impl])
        reqs = res.get(name, "requests", impl)
        peer_reqs = res.get(name, "requests", PEER[impl])
        ok = bool(
            fig
            and peer
            and reqs
            and peer_reqs
            and "token" in fig.note
            and fig.median is not None
            and peer.median is not None
            and fig.median <= peer.median
            and reqs.median <= peer_reqs.median
        )
        res.target(
            name,
            f"{LABEL[impl]} succeeds with no more requests and no more time than azure-identity",
            f"{fig_text(fig)} / {fig_text(reqs)} requests vs {fig_text(peer)} / {fig_text(peer_reqs)}",
            ok,
            ratio(res, name, "time for 5 tokens", impl),
        )


SCENARIOS: dict[str, Callable[[Results, Config], None]] = {
    "cache_hit": scenario_cache_hit,
    "cache_miss": scenario_cache_miss,
    "import": scenario_import,
    "construct": scenario_construct,
    "memory": lambda res, cfg: scenario_fresh(res, cfg, "memory"),
    "herd": scenario_herd,
    "resources": scenario_resources,
    "refused": scenario_refused,
    "syn_dropped": scenario_syn_dropped,
    "hang": scenario_hang,
    "410_window": scenario_410_window,
    "410_forever": scenario_410_forever,
    "throttled": scenario_throttled,
    "cold": lambda res, cfg: scenario_fresh(res, cfg, "cold"),
}


def config(quick: bool) -> Config:
    if quick:
        return Config(
            quick=True,
            hit_calls=2000,
            hit_reps=5,
            miss_calls=10,
            miss_reps=3,
            proc_reps=3,
            fail_reps=1,
            syn_cap=15,
            hang_cap=8,
            slow_seconds=4,
            window_410=4,
            forever_cap=12,
            short_timeout=5,
        )
    return Config(
        quick=False,
        hit_calls=20000,
        hit_reps=11,
        miss_calls=30,
        miss_reps=9,
        proc_reps=11,
        fail_reps=3,
        syn_cap=30,
        hang_cap=60,
        slow_seconds=10,
        window_410=16,
        forever_cap=100,
        short_timeout=80,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small repetitions, shortened long scenarios (< 2 min)"
    )
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="output directory")
    args = parser.parse_args(argv)
    for name in ("azure", "azure_imds_credential", "msal", "urllib3", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    cfg = config(args.quick)
    chosen = list(SCENARIOS) if not args.only else [s.strip() for s in args.only.split(",")]
    for s in chosen:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s!r}")
    res = Results("quick" if args.quick else "full")
    started = time.monotonic()
    warm_up()
    for s in chosen:
        t0 = time.monotonic()
        print(f"== {s}", flush=True)
        SCENARIOS[s](res, cfg)
        print(f"   ({time.monotonic() - t0:.1f} s)", flush=True)
    total = time.monotonic() - started
    from bench.report import write_all

    out = Path(args.out)
    write_all(res, out, total, versions())
    met = sum(t.met is True for t in res.targets)
    missed = sum(t.met is False for t in res.targets)
    print(
        f"\n{met} met, {missed} missed; {total:.0f} s; results in {out}",
        flush=True,
    )
    return 0


def warm_up() -> None:
    """Run every child once, untimed: fills the bytecode cache and the OS page cache."""
    print("== warm-up (untimed)", flush=True)
    with ImdsEmulator() as imds:
        for impl in ALL:
            run_child(["cold", impl], imds.endpoint)
        for module in ("azure.core.credentials", "azure_imds_credential.aio", "azure.identity.aio", "msal"):
            run_child(["import", module], None)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("azure-imds-credential", "azure-identity", "msal", "azure-core", "aiohttp", "requests"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "missing"
    return out


def as_json(res: Results, total: float, meta: dict[str, str]) -> dict[str, Any]:
    return {
        "mode": res.mode,
        "seconds": round(total, 1),
        "versions": meta,
        "figures": [{**asdict(f), "median": f.median, "min": f.min} for f in res.figures],
        "targets": [asdict(t) for t in res.targets],
        "notes": res.notes,
    }


if __name__ == "__main__":
    raise SystemExit(main())
