"""Benchmarks: azure_imds_credential side by side with azure-identity and msal.

Run `python -m bench --quick` (or `python bench/run.py`) from the repository root. Extra
dependencies (the `bench` extra; nothing is installed by the suite): azure-identity, msal,
aiohttp, matplotlib. See docs/bench.md.
"""
