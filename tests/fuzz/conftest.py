"""Hypothesis profiles for the property tests.

- `default`: a quick pass on every `pytest` run (200 examples per property).
- `fuzz`: the dedicated deep run, 10,000 examples per property, run by CI as its own step:
  `pytest tests/fuzz --hypothesis-profile=fuzz` (scripts/test does this).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("default", max_examples=200, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("fuzz", max_examples=10_000, **_COMMON)  # type: ignore[arg-type]
settings.load_profile("default")
