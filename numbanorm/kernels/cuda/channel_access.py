"""Element access to ``(N, C, S)`` tensors through their ``ncs`` or ``nsc`` views, shared by the
channel-wise CUDA kernels (BatchNorm, LocalResponseNorm)."""

import numpy as np

from numbanorm.kernels.config import cuda_device


@cuda_device
def load(x, i, c, j, channels_last):
    """Element ``(i, c, j)`` of the ``(N, C, S)`` tensor, in float64."""
    if channels_last:
        return np.float64(x[i, j, c])
    return np.float64(x[i, c, j])


@cuda_device
def store(y, i, c, j, channels_last, value):
    """Write element ``(i, c, j)`` of the ``(N, C, S)`` tensor."""
    if channels_last:
        y[i, j, c] = value
    else:
        y[i, c, j] = value
