"""The CUDA backend's own kernels: what the tape and the norms need around the norm kernels.

Elementwise kernels (fill, copy with a cast, add) take 6-D views: ``numbanorm.backends.cuda``
merges the dimensions that memory lets it merge and pads the rest with leading size-1
dimensions, so one kernel serves every rank and every layout (a C-contiguous array is one run of
memory). Each thread walks a grid-stride loop over the flat C-order index. The sum is a tree in
float64 shared memory, block by block, then over the blocks' partials: no atomics, so its bits
depend on the input's size alone.
"""

import numpy as np
from numba import cuda, float64

from numbanorm.kernels.config import THREADS_PER_BLOCK, cuda_device, cuda_kernel
from numbanorm.kernels.cuda.device_math import inverse_sqrt

MAX_DIMS = 6
# Enough blocks to fill a GPU; a larger input loops. It also bounds the partials of a sum.
MAX_BLOCKS = 1024


def blocks_for(size: int) -> int:
    """The grid (in blocks of ``THREADS_PER_BLOCK``) for a grid-stride loop over ``size`` items."""
    return max(1, min(-(-size // THREADS_PER_BLOCK), MAX_BLOCKS))


@cuda_device
def _index(shape, i):
    """The 6-D index of position ``i`` in C order."""
    i5 = i % shape[5]
    i //= shape[5]
    i4 = i % shape[4]
    i //= shape[4]
    i3 = i % shape[3]
    i //= shape[3]
    i2 = i % shape[2]
    i //= shape[2]
    i1 = i % shape[1]
    return i // shape[1], i1, i2, i3, i4, i5


@cuda_kernel
def fill(out, value):
    """``out[...] = value`` (cast to ``out``'s dtype)."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[_index(out.shape, i)] = value


@cuda_kernel
def copy(source, out):
    """``out[...] = source`` (same shape, any strides, cast to ``out``'s dtype)."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        index = _index(out.shape, i)
        out[index] = source[index]


@cuda_kernel
def add(a, b, out):
    """``out[...] = a + b`` (same shape, any strides; ``out`` may be ``a``)."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        index = _index(out.shape, i)
        out[index] = a[index] + b[index]


@cuda_kernel
def inverse_std(var, eps, out):
    """``out = 1/sqrt(var + eps)`` in float64 (1-D): inf or NaN where torch gives them."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = inverse_sqrt(np.float64(var[i]) + eps)


@cuda_kernel
def block_sums(x, out):
    """``out[b]`` = block ``b``'s share of the sum of ``x`` (1-D), accumulated in float64 and
    rounded to ``out``'s dtype once."""
    shared = cuda.shared.array(THREADS_PER_BLOCK, float64)
    tid = cuda.threadIdx.x
    total = 0.0
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        total += np.float64(x[i])
    shared[tid] = total
    cuda.syncthreads()
    width = THREADS_PER_BLOCK // 2
    while width > 0:
        if tid < width:
            shared[tid] += shared[tid + width]
        cuda.syncthreads()
        width //= 2
    if tid == 0:
        out[cuda.blockIdx.x] = shared[0]
