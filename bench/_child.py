"""One measurement in a fresh interpreter (run as a script by bench/run.py; not imported).

Kept free of imports beyond `sys`, `os` and `time` until the measurement is taken, so that
import-time and memory figures are those of the library measured, not of this script.

    python bench/_child.py MODE IMPL [ARG]

MODE: import | construct | cold | memory | call | calls. IMPL: ours-sync, ours-aio, azid-sync,
azid-aio, msal, or (import only) a module name. The endpoint comes from
AZURE_POD_IDENTITY_AUTHORITY_HOST, set by the parent. The result is one JSON line on stdout.
`call`/`calls` first print "ready" and wait for a "go" line on stdin, so that the parent can
start every implementation's call at the same moment, with the imports already done.
"""

import os
import sys
import time

SCOPE = "https://storage.azure.com/.default"
RESOURCE = "https://storage.azure.com"


class MsalErrorResult(Exception):
    """msal returns errors as a dict instead of raising; the child raises this for them."""


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def import_impl(impl):
    if impl.startswith("ours-sync"):
        from azure_imds_credential import ImdsManagedIdentityCredential

        return ImdsManagedIdentityCredential
    if impl.startswith("ours-aio"):
        from azure_imds_credential.aio import ImdsManagedIdentityCredential

        return ImdsManagedIdentityCredential
    if impl == "azid-sync":
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential
    if impl == "azid-aio":
        from azure.identity.aio import ManagedIdentityCredential

        return ManagedIdentityCredential
    if impl == "msal":
        import msal
        import requests

        def make():
            return msal.ManagedIdentityClient(
                msal.SystemAssignedManagedIdentity(), http_client=requests.Session()
            )

        return make
    raise SystemExit(f"unknown implementation {impl}")


def construct(impl, factory):
    if impl.endswith(":short"):  # ours with a shortened deadline (quick mode of long scenarios)
        return factory(timeout=float(os.environ["BENCH_OURS_TIMEOUT"]))
    return factory()


def is_async(impl):
    return "aio" in impl


def token_sync(impl, credential, scope):
    if impl == "msal":
        result = credential.acquire_token_for_client(resource=scope[: -len("/.default")])
        if "access_token" not in result:
            raise MsalErrorResult(f"{result.get('error')}: {result.get('error_description')}")
        return result["access_token"]
    return credential.get_token(scope).token


async def token_async(credential, scope):
    return (await credential.get_token(scope)).token


def close(impl, credential):
    if impl != "msal":
        credential.close()


def error_info(exc):
    module = "msal" if isinstance(exc, MsalErrorResult) else type(exc).__module__
    return {"ok": False, "error": module + "." + type(exc).__qualname__}


def main() -> None:
    mode, impl = sys.argv[1], sys.argv[2]
    out = {"mode": mode, "impl": impl}
    if mode == "import":
        t0 = time.perf_counter()
        for module in impl.split("+"):
            __import__(module)
        out["seconds"] = time.perf_counter() - t0
    elif mode == "construct":
        factory = import_impl(impl)
        if is_async(impl):
            import asyncio

            async def build():
                t0 = time.perf_counter()
                credential = construct(impl, factory)
                seconds = time.perf_counter() - t0
                await credential.close()
                return seconds

            out["seconds"] = asyncio.run(build())
        else:
            t0 = time.perf_counter()
            credential = construct(impl, factory)
            out["seconds"] = time.perf_counter() - t0
            close(impl, credential)
    elif mode in ("cold", "memory"):
        rss0 = rss_kib()
        t0 = time.perf_counter()
        factory = import_impl(impl)
        if is_async(impl):
            import asyncio

            async def first():
                credential = construct(impl, factory)
                try:
                    return await token_async(credential, SCOPE)
                finally:
                    await credential.close()

            token = asyncio.run(first())
        else:
            credential = construct(impl, factory)
            token = token_sync(impl, credential, SCOPE)
        out["seconds"] = time.perf_counter() - t0
        out["rss_growth_mib"] = (rss_kib() - rss0) / 1024
        out["ok"] = bool(token)
        if not is_async(impl):
            close(impl, credential)
    elif mode in ("call", "calls"):
        count = int(sys.argv[3]) if mode == "calls" else 1
        scopes = [SCOPE] if count == 1 else [f"https://r{i}.example/.default" for i in range(count)]
        factory = import_impl(impl)
        import json

        if is_async(impl):
            # Both async credentials load aiohttp on the way to their first request (theirs in
            # the constructor, ours on first use); load it before the clock starts so that the
            # figure is the failure handling, not an import (imports have their own scenarios).
            import asyncio

            import aiohttp  # noqa: F401
            from azure.core.pipeline.transport import AioHttpTransport  # noqa: F401

        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return
        if is_async(impl):
            import asyncio

            async def run():
                credential = construct(impl, factory)
                try:
                    for scope in scopes:
                        await token_async(credential, scope)
                finally:
                    await credential.close()

            t0 = time.perf_counter()
            try:
                asyncio.run(run())
                out["ok"] = True
            except Exception as exc:
                out.update(error_info(exc))
        else:
            t0 = time.perf_counter()
            credential = construct(impl, factory)
            try:
                for scope in scopes:
                    token_sync(impl, credential, scope)
                out["ok"] = True
            except Exception as exc:
                out.update(error_info(exc))
            finally:
                close(impl, credential)
        out["seconds"] = time.perf_counter() - t0
        out["done_at"] = time.time()
    else:
        raise SystemExit(f"unknown mode {mode}")
    import json

    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
