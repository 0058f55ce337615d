"""Neural-network layers and functions (torch.nn)."""

from numbanorm.nn import functional, init
from numbanorm.nn.modules import (
    GELU,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    Dropout,
    Flatten,
    Linear,
    Module,
    ReLU,
    Sequential,
    Tanh,
)
from numbanorm.nn.modules.loss import CrossEntropyLoss, MSELoss
from numbanorm.nn.parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Module", "Parameter", "functional", "init"]
__all__ += ["GELU", "Dropout", "Flatten", "Linear", "ReLU", "Sequential", "Tanh"]
__all__ += ["CrossEntropyLoss", "MSELoss"]
