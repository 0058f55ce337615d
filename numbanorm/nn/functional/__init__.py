"""torch.nn.functional: validate first (torch's exception types and messages, in torch's order,
before anything is computed or mutated), then run one fused Function. One module per kind of op.
"""

from numbanorm.nn.functional.activation import gelu, relu, tanh
from numbanorm.nn.functional.batch_norm import batch_norm
from numbanorm.nn.functional.conv import conv2d
from numbanorm.nn.functional.dropout import dropout
from numbanorm.nn.functional.group_norm import group_norm
from numbanorm.nn.functional.instance_norm import instance_norm
from numbanorm.nn.functional.layer_norm import layer_norm, rms_norm
from numbanorm.nn.functional.linear import linear
from numbanorm.nn.functional.local_response_norm import local_response_norm
from numbanorm.nn.functional.loss import cross_entropy, mse_loss
from numbanorm.nn.functional.pooling import (
    adaptive_avg_pool2d,
    avg_pool2d,
    max_pool2d,
    max_pool2d_with_indices,
)

__all__ = ["batch_norm", "cross_entropy", "dropout", "gelu", "linear", "mse_loss", "relu", "tanh"]
__all__ += ["instance_norm"]
__all__ += ["conv2d"]
__all__ += ["local_response_norm"]
__all__ += ["group_norm", "layer_norm", "rms_norm"]
__all__ += ["adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "max_pool2d_with_indices"]
