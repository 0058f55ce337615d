"""Shared test settings: hypothesis profiles, and which CPU kernels tiny inputs run."""

import os

# Test inputs are tiny, and tiny inputs would all run the kernels' serial twins; run the parallel
# kernels, which users' real inputs run. tests/kernels checks that the twins agree with them.
os.environ.setdefault("NUMBANORM_PARALLEL_MIN_SIZE", "0")

from hypothesis import HealthCheck, settings

# Compiling a kernel can take seconds on first use; that is not a slow test.
settings.register_profile(
    "default", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, max_examples=10, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
)
