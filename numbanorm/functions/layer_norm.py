"""LayerNorm and RMSNorm on the tape: rows of the trailing ``normalized_shape`` axes, one fused
forward kernel and one fused backward kernel."""

from math import prod
from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function
from numbanorm.backends.host_cache import empty
from numbanorm.dispatch import backend, device_of
from numbanorm.functions.batch_norm import _empty


def compute_dtype(dtype: Any) -> np.dtype:
    """The dtype the kernels compute a float ``dtype`` in: float16 in float32, as torch's CPU
    kernels do (its "opmath" type)."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


def _rows(a: Any, normalized_ndim: int) -> Any:
    """``a`` as C-contiguous ``(R, D)`` rows of its trailing ``normalized_ndim`` axes (a copy
    only when its strides leave no choice)."""
    split = a.ndim - normalized_ndim
    return np.ascontiguousarray(a).reshape(prod(a.shape[:split]), prod(a.shape[split:]))


def _param(param: Any, dtype: Any) -> Any:
    """A weight or bias as a flat array of the compute ``dtype``; size 0 for None."""
    if param is None:
        return _empty(dtype)
    return param.reshape(-1).astype(dtype, copy=False)


class RowNorm(Function):
    """torch.layer_norm (``rms=False``) and torch.rms_norm (``rms=True``) on validated input.

    The statistics run over the trailing ``normalized_ndim`` axes; ``weight`` and ``bias`` (None,
    or of ``normalized_shape``) are per element. The output has the input's dtype; float16 input
    is computed in float32. ``compute`` is the dtype the kernels run in (the parameters are cast
    to it), which the validation picks as torch does for each op.
    """

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
        x2 = _rows(x.astype(compute, copy=False), normalized_ndim)
        w = _param(weight, compute)
        b = _param(bias, compute)
        rows = x2.shape[0]
        mean = np.empty(rows)
        invstd = np.empty(rows)
        y2 = empty(x2.shape, x2.dtype)
        backend(device_of(x)).kernel("row_norm", "layer_norm_forward", x2.size)(
            x2, w, b, eps, rms, y2, mean, invstd
        )
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x2, w, mean, invstd)
            ctx.rms = rms
            ctx.shape = x.shape
            ctx.x_dtype = x.dtype
            ctx.params = [None if p is None else (p.shape, p.dtype) for p in (weight, bias)]
        return y2.reshape(x.shape).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x2, w, mean, invstd = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        dy2 = np.ascontiguousarray(grad.astype(x2.dtype, copy=False)).reshape(x2.shape)
        dx2 = empty(x2.shape, x2.dtype) if needs_x else _empty(x2.dtype, ndim=2)
        d = x2.shape[1]
        dweight = np.empty(d, x2.dtype) if needs_weight else _empty(x2.dtype)
        dbias = np.empty(d, x2.dtype) if needs_bias else _empty(x2.dtype)
        backend(device_of(x2)).kernel("row_norm", "layer_norm_backward", x2.size)(
            dy2, x2, w, mean, invstd, ctx.rms, dx2, dweight, dbias
        )
        grads = [dx2.reshape(ctx.shape).astype(ctx.x_dtype, copy=False) if needs_x else None]
        for needed, param, g in zip(
            (needs_weight, needs_bias), ctx.params, (dweight, dbias), strict=True
        ):
            grads.append(g.astype(param[1], copy=False).reshape(param[0]) if needed else None)
        return (*grads, None, None, None, None)
