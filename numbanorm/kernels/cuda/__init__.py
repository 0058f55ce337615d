"""CUDA kernels, ``numba.cuda``: the mirror of ``numbanorm.kernels.cpu``, file for file and name
for name, on numba device arrays.

Each public function launches its kernels on the arrays it is given, with the block size of
``NUMBANORM_THREADS_PER_BLOCK``. Importing this module imports ``numba.cuda``; each kernel compiles
on its first launch. The training ops outside the norms (convolution, pooling) have CPU
kernels only.
"""

from numbanorm.kernels.cuda.batch_norm import (
    batch_norm_backward_ncs,
    batch_norm_backward_nsc,
    batch_norm_eval_ncs,
    batch_norm_eval_nsc,
    batch_norm_train_ncs,
    batch_norm_train_nsc,
)
from numbanorm.kernels.cuda.local_response_norm import (
    local_response_norm_backward_ncs,
    local_response_norm_backward_nsc,
    local_response_norm_ncs,
    local_response_norm_nsc,
)
from numbanorm.kernels.cuda.row_norm import (
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
__all__ += ["group_norm_backward_ncs", "group_norm_backward_nsc", "group_norm_forward_ncs"]
__all__ += ["group_norm_forward_nsc", "layer_norm_backward", "layer_norm_forward"]
