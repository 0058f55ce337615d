"""Reductions on the tape."""

from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function


class Sum(Function):
    """Sum of all elements (torch.sum without ``dim``): floating and complex inputs keep their
    dtype, booleans and integers sum to int64 as in torch."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        ctx.shape = x.shape
        dtype = x.dtype if x.dtype.kind in "fc" else np.dtype(np.int64)
        return np.asarray(x.sum(dtype=dtype))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return (np.broadcast_to(grad, ctx.shape).copy(),)
