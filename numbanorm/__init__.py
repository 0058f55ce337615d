"""numbanorm: PyTorch's normalization layers on Numba kernels, without PyTorch.

Importing numbanorm does not import numba: kernels are imported and compiled on first use.
"""

from numbanorm import nn, optim
from numbanorm.autograd import Function, is_grad_enabled, no_grad
from numbanorm.backends.host_cache import empty_cache
from numbanorm.random import manual_seed
from numbanorm.serialization import SerializationError, load, save
from numbanorm.tensor import Tensor, tensor
from numbanorm.types import Device as device

__version__ = "0.1.0"

__all__ = [
    "Function",
    "SerializationError",
    "Tensor",
    "device",
    "empty_cache",
    "is_grad_enabled",
    "load",
    "manual_seed",
    "nn",
    "no_grad",
    "optim",
    "save",
    "tensor",
]
