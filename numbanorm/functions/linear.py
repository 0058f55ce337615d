"""torch.nn.functional.linear as one Function: y = x @ W.T + b over any leading dimensions."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function


def check_linear(x: Any, weight: Any, bias: Any) -> None:
    """torch's refusal of an input whose last dimension is not the weight's second."""
    if weight.ndim != 2 or x.ndim == 0:
        raise RuntimeError(
            f"linear expects a 2-D weight and an input of at least 1 dimension, got a "
            f"{weight.ndim}-D weight and a {x.ndim}-D input"
        )
    if x.shape[-1] != weight.shape[1]:
        rows = prod(x.shape[:-1])
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{x.shape[-1]} and "
            f"{weight.shape[1]}x{weight.shape[0]})"
        )


class Linear(Function):
    """y = x @ W.T + b; x (*, in), W (out, in), b (out,) or None."""

    @staticmethod
    def forward(ctx: Context, x: Any, weight: Any, bias: Any) -> Any:
        check_linear(x, weight, bias)
        ctx.save_for_backward(x, weight)
        out = np.matmul(x, weight.T)
        if bias is not None:
            out = out + bias
        return np.asarray(out)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x = grad_w = grad_b = None
        if needs[0]:
            grad_x = np.matmul(grad, weight)
        rows = grad.reshape(-1, grad.shape[-1])
        if needs[1]:
            grad_w = rows.T @ x.reshape(-1, x.shape[-1])
        if len(needs) > 2 and needs[2]:
            grad_b = rows.sum(axis=0)
        return grad_x, grad_w, grad_b
