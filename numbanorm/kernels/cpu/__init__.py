"""CPU kernels, ``@njit(parallel=True)``: public API for a user's own ``@njit`` code.

Importing this module imports numba; each kernel compiles on its first call.
"""

from numbanorm.kernels.cpu.batch_norm import (
    batch_norm_backward_ncs,
    batch_norm_backward_nsc,
    batch_norm_eval_ncs,
    batch_norm_eval_nsc,
    batch_norm_train_ncs,
    batch_norm_train_nsc,
)
from numbanorm.kernels.cpu.local_response_norm import (
    local_response_norm_backward_ncs,
    local_response_norm_backward_nsc,
    local_response_norm_ncs,
    local_response_norm_nsc,
)
from numbanorm.kernels.cpu.pooling import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    avg_pool2d,
    avg_pool2d_backward,
    avg_pool2d_int,
    max_pool2d,
    max_pool2d_backward,
)
from numbanorm.kernels.cpu.row_norm import (
    group_norm_backward_ncs,
    group_norm_backward_nsc,
    group_norm_forward_ncs,
    group_norm_forward_nsc,
    layer_norm_backward,
    layer_norm_forward,
)

__all__ = [
    "batch_norm_backward_ncs",
    "batch_norm_backward_nsc",
    "batch_norm_eval_ncs",
    "batch_norm_eval_nsc",
    "batch_norm_train_ncs",
    "batch_norm_train_nsc",
    "local_response_norm_backward_ncs",
    "local_response_norm_backward_nsc",
    "local_response_norm_ncs",
    "local_response_norm_nsc",
]
__all__ += ["adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "avg_pool2d"]
__all__ += ["avg_pool2d_backward", "avg_pool2d_int", "max_pool2d", "max_pool2d_backward"]
__all__ += ["group_norm_backward_ncs", "group_norm_backward_nsc", "group_norm_forward_ncs"]
__all__ += ["group_norm_forward_nsc", "layer_norm_backward", "layer_norm_forward"]
