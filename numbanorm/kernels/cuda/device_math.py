"""Device arithmetic whose GPU meaning the CUDA simulator would not keep on its own.

The simulator runs kernels as Python: ``math.sqrt`` of a negative raises and a division by 0
raises, where a GPU gives NaN and inf as torch does; and Python never fuses a multiplication
with a later addition, where the GPU compiler does. Each function here means on both what it
means on a GPU, so kernels written with them behave the same on either.
"""

import math

import numba
import numpy as np
from numba import cuda
from numba.cuda import libdevice

from numbanorm.kernels.config import cuda_device

if numba.config.ENABLE_CUDASIM:

    @cuda_device
    def inverse_sqrt(v):
        """``1 / sqrt(v)`` in float64: inf for 0 and NaN for a negative or NaN ``v``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.float64(1.0) / np.sqrt(np.float64(v))

    @cuda_device
    def product(a, b):
        """``a * b``, rounded on its own (Python never fuses it with an add)."""
        return a * b

    @cuda_device
    def multiply_add(a, b, c):
        """``a*b + c`` in the dtype of ``a``, rounded once as by a GPU's FMA (for float32; a
        float64 one can differ from it by the rounding of the sum to float64)."""
        return type(a)(np.float64(a) * np.float64(b) + np.float64(c))

else:

    @cuda_device
    def inverse_sqrt(v):
        """``1 / sqrt(v)`` in float64: inf for 0 and NaN for a negative or NaN ``v``."""
        return 1.0 / math.sqrt(np.float64(v))

    @cuda_device
    def product(a, b):
        """``a * b`` rounded on its own, never fused with a later add or subtraction into an
        FMA, so that ``a*b - m`` is exactly 0 where ``m`` is the same rounded product."""
        return libdevice.dmul_rn(a, b)

    @cuda_device
    def multiply_add(a, b, c):
        """``a*b + c`` in the dtype of ``a``, rounded once (an FMA), as the CPU kernels' fused
        multiply-adds."""
        return cuda.fma(a, b, c)
