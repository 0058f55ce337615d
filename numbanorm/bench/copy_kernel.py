"""The bandwidth yardstick of ``python -m numbanorm bench``: a copy on numba's thread pool, so on
as many threads as the libraries get (a numpy copy runs on one)."""

from numba import prange

from numbanorm.kernels.config import cpu_kernel


@cpu_kernel
def parallel_copy(source, out):
    """``out[:] = source`` for 1-D arrays."""
    for i in prange(source.size):
        out[i] = source[i]
