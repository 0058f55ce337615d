"""GroupNorm on the tape: statistics per sample and group of channels, one fused forward kernel
and one fused backward kernel on a 3-D view of the input in its own layout (NCHW or
channels-last), never a copy of a contiguous input; arrays of either device."""

from typing import Any

import numpy as np

from numbanorm.autograd import ALL_DEVICES, Context, Function
from numbanorm.dispatch import backend, device_of
from numbanorm.functions.batch_norm import _empty
from numbanorm.functions.layer_norm import compute_dtype
from numbanorm.functions.layout import as_layout, channel_view, empty_in_layout


class GroupNorm(Function):
    """torch.group_norm on validated input ``(N, C, *)``, ``C`` divisible by ``groups``.

    ``weight`` and ``bias`` (None, or ``(C,)``) are per channel. The output has the input's dtype
    and layout; float16 input is computed in float32 (with float32 parameters, torch's mixed
    precision, or float16 ones), as torch's CPU kernels do.
    """

    devices = ALL_DEVICES

    @staticmethod
    def forward(ctx: Context, x: Any, weight: Any, bias: Any, groups: int, eps: float) -> Any:
        xp = backend(device_of(x))
        compute = compute_dtype(x.dtype)
        x3, layout = channel_view(xp.astype(x, compute))
        w = _empty(xp, compute) if weight is None else xp.astype(weight, compute)
        b = _empty(xp, compute) if bias is None else xp.astype(bias, compute)
        n = x.shape[0]
        mean = xp.empty((n, groups), np.float64)
        invstd = xp.empty((n, groups), np.float64)
        y, y3 = empty_in_layout(x.shape, compute, layout, xp.DEVICE)
        xp.kernel("row_norm", f"group_norm_forward_{layout}", x3.size)(
            x3, groups, w, b, eps, y3, mean, invstd
        )
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x3, w, mean, invstd)
            ctx.layout = layout
            ctx.groups = groups
            ctx.shape = x.shape
            ctx.x_dtype = x.dtype
            ctx.param_dtypes = [None if p is None else p.dtype for p in (weight, bias)]
        return xp.astype(y, x.dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x3, w, mean, invstd = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        xp = backend(device_of(x3))
        dy3 = as_layout(xp.astype(grad, x3.dtype), ctx.layout)
        dx, dx3 = (
            empty_in_layout(ctx.shape, x3.dtype, ctx.layout, xp.DEVICE)
            if needs_x
            else (None, _empty(xp, x3.dtype, ndim=3))
        )
        channels = ctx.shape[1]
        dweight = xp.empty(channels, x3.dtype) if needs_weight else _empty(xp, x3.dtype)
        dbias = xp.empty(channels, x3.dtype) if needs_bias else _empty(xp, x3.dtype)
        xp.kernel("row_norm", f"group_norm_backward_{ctx.layout}", x3.size)(
            dy3, x3, ctx.groups, w, mean, invstd, dx3, dweight, dbias
        )
        weight_dtype, bias_dtype = ctx.param_dtypes
        return (
            None if dx is None else xp.astype(dx, ctx.x_dtype),
            xp.astype(dweight, weight_dtype) if needs_weight else None,
            xp.astype(dbias, bias_dtype) if needs_bias else None,
            None,
            None,
        )
