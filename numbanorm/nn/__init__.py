"""Neural-network layers and functions (torch.nn)."""

from numbanorm.nn import functional, init
from numbanorm.nn.modules import (
    GELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    Conv2d,
    Dropout,
    Flatten,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LayerNorm,
    LazyBatchNorm1d,
    LazyBatchNorm2d,
    LazyBatchNorm3d,
    LazyInstanceNorm1d,
    LazyInstanceNorm2d,
    LazyInstanceNorm3d,
    Linear,
    LocalResponseNorm,
    MaxPool2d,
    Module,
    ReLU,
    RMSNorm,
    Sequential,
    Tanh,
)
from numbanorm.nn.modules.loss import CrossEntropyLoss, MSELoss
from numbanorm.nn.parameter import Parameter, UninitializedBuffer, UninitializedParameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Module", "Parameter", "functional", "init"]
__all__ += ["GELU", "Dropout", "Flatten", "Linear", "ReLU", "Sequential", "Tanh"]
__all__ += ["CrossEntropyLoss", "MSELoss"]
__all__ += ["Conv2d"]
__all__ += ["InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"]
__all__ += ["LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d"]
__all__ += ["LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d"]
__all__ += ["UninitializedBuffer", "UninitializedParameter"]
__all__ += ["LocalResponseNorm"]
__all__ += ["GroupNorm", "LayerNorm", "RMSNorm"]
__all__ += ["AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d"]
