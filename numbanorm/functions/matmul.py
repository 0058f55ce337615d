"""Matrix products on the tape: torch.matmul for 1-D and higher operands."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function
from numbanorm.functions.elementwise import broadcast_shape

_C_NAMES = {"float16": "c10::Half", "float32": "float", "float64": "double", "int64": "long int"}


def _check(a: Any, b: Any, fold_b: bool) -> None:
    """torch.matmul's refusals, worded as the kernel each shape pair reaches: a 3-D or larger
    operand with a 1-D or 2-D one is folded into a matrix (``b`` only when ``fold_b``: torch
    folds it when ``a`` requires a gradient) and multiplied by mm or mv, the rest by bmm."""
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {a.ndim}D and {b.ndim}D"
        )
    if a.dtype != b.dtype:
        names = [_C_NAMES.get(d.name, d.name) for d in (a.dtype, b.dtype)]
        raise RuntimeError(
            f"expected m1 and m2 to have the same dtype, but got: {names[0]} != {names[1]}"
        )
    batch = prod(broadcast_shape(a.shape[:-2], b.shape[:-2]))
    k = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k == kb:
        return
    if a.ndim == 1 and b.ndim == 1:
        raise RuntimeError(
            f"inconsistent tensor size, expected tensor [{k}] and src [{kb}] to have the same "
            f"number of elements, but got {k} and {kb} elements respectively"
        )
    if b.ndim <= 2 and (a.ndim != 1 or b.ndim != 1):
        rows = prod(a.shape[:-1])  # a folded, or a row
        if b.ndim == 1:
            raise RuntimeError(f"size mismatch, got input ({rows}), mat ({rows}x{k}), vec ({kb})")
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{k} and {kb}x{b.shape[-1]})"
        )
    if fold_b and a.ndim <= 2:  # b.mT folded into rows, multiplied by a.mT
        rows = prod(b.shape[:-2]) * b.shape[-1]
        if a.ndim == 1:
            raise RuntimeError(f"size mismatch, got input ({rows}), mat ({rows}x{kb}), vec ({k})")
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{kb} and {k}x{a.shape[0]})"
        )
    raise RuntimeError(
        f"Expected size for first two dimensions of batch2 tensor to be: [{batch}, {k}] but "
        f"got: [{batch}, {kb}]."
    )


class MatMul(Function):
    """a @ b as torch.matmul: 1-D operands are a row (left) or a column (right) that the
    result drops, leading (batch) dimensions broadcast. The gradients have the broadcast
    batch shape; the engine sums them down to each operand's."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        _check(a, b, fold_b=ctx.needs_input_grad[0])
        ctx.save_for_backward(a, b)
        return np.asarray(np.matmul(a, b))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b = ctx.saved_tensors
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            grad = np.expand_dims(grad, -1)
        if a.ndim == 1:
            grad = np.expand_dims(grad, -2)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = np.matmul(grad, np.swapaxes(b2, -1, -2))
            grad_a = grad_a[..., 0, :] if a.ndim == 1 else grad_a
        if ctx.needs_input_grad[1]:
            grad_b = np.matmul(np.swapaxes(a2, -1, -2), grad)
            grad_b = grad_b[..., 0] if b.ndim == 1 else grad_b
        return grad_a, grad_b
