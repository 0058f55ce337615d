"""Neural-network layers and functions (torch.nn)."""

from numbanorm.nn import functional, init
from numbanorm.nn.modules import BatchNorm1d, BatchNorm2d, BatchNorm3d, Module
from numbanorm.nn.parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Module", "Parameter", "functional", "init"]
