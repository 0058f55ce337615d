"""The bandwidth yardsticks of the benchmarks, on numba's thread pool, so on as many threads as
the libraries get (a numpy copy runs on one).

- ``parallel_copy``: the copy ``python -m numbanorm bench`` compares every phase with (LLVM
  turns it into ``memcpy``, which may write around the caches);
- ``parallel_scale`` and ``parallel_add``: the least a forward and a backward move with plain
  stores, as the norms' kernels write: a forward reads its input and writes its output, a
  backward reads the input and the output gradient and writes the input gradient.
"""

from numba import prange

from numbanorm.kernels.config import cpu_kernel


@cpu_kernel
def parallel_copy(source, out):
    """``out[:] = source`` for 1-D arrays."""
    for i in prange(source.size):
        out[i] = source[i]


@cpu_kernel
def parallel_scale(a, out):
    """``out[:] = 2 * a`` for 1-D arrays."""
    for i in prange(a.size):
        out[i] = 2 * a[i]


@cpu_kernel
def parallel_add(a, b, out):
    """``out[:] = a + b`` for 1-D arrays."""
    for i in prange(a.size):
        out[i] = a[i] + b[i]
