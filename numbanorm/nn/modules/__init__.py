"""Layers (torch.nn.modules)."""

from numbanorm.nn.modules.batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d
from numbanorm.nn.modules.module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Module"]
