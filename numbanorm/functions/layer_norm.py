"""LayerNorm and RMSNorm on the tape: rows of the trailing ``normalized_shape`` axes, one fused
forward kernel and one fused backward kernel, on arrays of either device."""

from math import prod
from typing import Any

import numpy as np

from numbanorm.autograd import ALL_DEVICES, Context, Function
from numbanorm.dispatch import backend, device_of
from numbanorm.functions.batch_norm import _empty


def compute_dtype(dtype: Any) -> np.dtype:
    """The dtype the kernels compute a float ``dtype`` in: float16 in float32, as torch's CPU
    kernels do (its "opmath" type)."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


def _rows(xp: Any, a: Any, normalized_ndim: int) -> Any:
    """``a`` as C-contiguous ``(R, D)`` rows of its trailing ``normalized_ndim`` axes (a copy
    only when its strides leave no choice)."""
    split = a.ndim - normalized_ndim
    return xp.ascontiguousarray(a).reshape(prod(a.shape[:split]), prod(a.shape[split:]))


def _param(xp: Any, param: Any, dtype: Any) -> Any:
    """A weight or bias as a flat array of the compute ``dtype``; size 0 for None."""
    if param is None:
        return _empty(xp, dtype)
    return xp.astype(param.reshape(-1), dtype)


class RowNorm(Function):
    """torch.layer_norm (``rms=False``) and torch.rms_norm (``rms=True``) on validated input.

    The statistics run over the trailing ``normalized_ndim`` axes; ``weight`` and ``bias`` (None,
    or of ``normalized_shape``) are per element. The output has the input's dtype; float16 input
    is computed in float32. ``compute`` is the dtype the kernels run in (the parameters are cast
    to it), which the validation picks as torch does for each op.
    """

    devices = ALL_DEVICES

    @staticmethod
    def forward(
        ctx: Context,
        x: Any,
        weight: Any,
        bias: Any,
        normalized_ndim: int,
        eps: float,
        rms: bool,
        compute: Any,
    ) -> Any:
        xp = backend(device_of(x))
        x2 = _rows(xp, xp.astype(x, compute), normalized_ndim)
        w = _param(xp, weight, compute)
        b = _param(xp, bias, compute)
        rows = x2.shape[0]
        mean = xp.empty(rows, np.float64)
        invstd = xp.empty(rows, np.float64)
        y2 = xp.empty(x2.shape, x2.dtype)
        xp.kernel("row_norm", "layer_norm_forward", x2.size)(x2, w, b, eps, rms, y2, mean, invstd)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x2, w, mean, invstd)
            ctx.rms = rms
            ctx.shape = x.shape
            ctx.x_dtype = x.dtype
            ctx.params = [None if p is None else (p.shape, p.dtype) for p in (weight, bias)]
        return xp.astype(y2.reshape(x.shape), x.dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x2, w, mean, invstd = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        xp = backend(device_of(x2))
        dy2 = xp.ascontiguousarray(xp.astype(grad, x2.dtype)).reshape(x2.shape)
        dx2 = xp.empty(x2.shape, x2.dtype) if needs_x else _empty(xp, x2.dtype, ndim=2)
        d = x2.shape[1]
        dweight = xp.empty(d, x2.dtype) if needs_weight else _empty(xp, x2.dtype)
        dbias = xp.empty(d, x2.dtype) if needs_bias else _empty(xp, x2.dtype)
        xp.kernel("row_norm", "layer_norm_backward", x2.size)(
            dy2, x2, w, mean, invstd, ctx.rms, dx2, dweight, dbias
        )
        grads = [xp.astype(dx2.reshape(ctx.shape), ctx.x_dtype) if needs_x else None]
        for needed, param, g in zip(
            (needs_weight, needs_bias), ctx.params, (dweight, dbias), strict=True
        ):
            grads.append(xp.astype(g, param[1]).reshape(param[0]) if needed else None)
        return (*grads, None, None, None, None)
