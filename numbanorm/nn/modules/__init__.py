"""Layers (torch.nn.modules)."""

from numbanorm.nn.modules.activation import GELU, ReLU, Tanh
from numbanorm.nn.modules.batchnorm import (
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    LazyBatchNorm1d,
    LazyBatchNorm2d,
    LazyBatchNorm3d,
)
from numbanorm.nn.modules.container import Sequential
from numbanorm.nn.modules.conv import Conv2d
from numbanorm.nn.modules.dropout import Dropout
from numbanorm.nn.modules.flatten import Flatten
from numbanorm.nn.modules.instancenorm import (
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LazyInstanceNorm1d,
    LazyInstanceNorm2d,
    LazyInstanceNorm3d,
)
from numbanorm.nn.modules.lazy import LazyModuleMixin
from numbanorm.nn.modules.linear import Linear
from numbanorm.nn.modules.local_response_norm import LocalResponseNorm
from numbanorm.nn.modules.loss import CrossEntropyLoss, MSELoss
from numbanorm.nn.modules.module import Module
from numbanorm.nn.modules.normalization import GroupNorm, LayerNorm, RMSNorm
from numbanorm.nn.modules.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Module"]
__all__ += ["GELU", "Dropout", "Flatten", "Linear", "ReLU", "Sequential", "Tanh"]
__all__ += ["CrossEntropyLoss", "MSELoss"]
__all__ += ["Conv2d"]
__all__ += ["InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"]
__all__ += ["LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d"]
__all__ += ["LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d", "LazyModuleMixin"]
__all__ += ["LocalResponseNorm"]
__all__ += ["GroupNorm", "LayerNorm", "RMSNorm"]
__all__ += ["AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d"]
