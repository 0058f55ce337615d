"""Reductions on the tape."""

from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function


class Sum(Function):
    """Sum of all elements (torch.sum without ``dim``)."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        ctx.shape = x.shape
        return np.asarray(x.sum(dtype=x.dtype))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return (np.broadcast_to(grad, ctx.shape).copy(),)
