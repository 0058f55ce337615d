"""Shared test settings: hypothesis profiles, which CPU kernels tiny inputs run, and where the
CUDA kernels run."""

import ctypes
import os
import sys

from hypothesis import HealthCheck, settings

from tests.simulator_shared_arrays import lock_shared_arrays


def _cuda_gpu_present() -> bool:
    """Whether the CUDA driver loads and sees a GPU (asked of the driver itself, since importing
    numba.cuda here would fix the simulator setting before it is made)."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    return (
        driver.cuInit(0) == 0
        and driver.cuDeviceGetCount(ctypes.byref(count)) == 0
        and count.value > 0
    )


# The CUDA tests run on the GPU where there is one, and on numba's CUDA simulator otherwise, with
# nothing for the user to set. numba reads the setting when it is first imported.
if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _cuda_gpu_present():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
# The simulator runs every GPU thread as a Python thread: a block of 256 costs about half a second
# per launch, so there the CUDA kernels run in blocks of 32, the smallest the configuration allows.
# Its threads wait at every syncthreads for the one holding the GIL, which Python hands on only
# every switch interval (5 ms): a shorter one makes the CUDA tests about four times faster there.
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    os.environ.setdefault("NUMBANORM_THREADS_PER_BLOCK", "32")
    sys.setswitchinterval(1e-4)
    lock_shared_arrays()

# Test inputs are tiny, and tiny inputs would all run the kernels' serial twins; run the parallel
# kernels, which users' real inputs run. tests/kernels checks that the twins agree with them.
os.environ.setdefault("NUMBANORM_PARALLEL_MIN_SIZE", "0")

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
