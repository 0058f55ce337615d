"""numbanorm: PyTorch's normalization layers on Numba kernels, without PyTorch.

Importing numbanorm does not import numba: kernels are imported and compiled on first use.
"""

from numbanorm import nn, optim
from numbanorm.autograd import Function, is_grad_enabled, no_grad
from numbanorm.tensor import Tensor, tensor
from numbanorm.types import Device as device

__version__ = "0.1.0"

__all__ = ["Function", "Tensor", "device", "is_grad_enabled", "nn", "no_grad", "optim", "tensor"]
