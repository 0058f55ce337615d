"""BatchNorm on the tape: one fused forward kernel, one fused backward kernel."""

from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function
from numbanorm.dispatch import backend, device_of
from numbanorm.functions.layout import as_layout, channel_view, empty_in_layout

_NO_ARRAY = np.empty(0)


class BatchNorm(Function):
    """torch.batch_norm: statistics per channel over the batch and spatial axes.

    ``training`` normalizes with the batch's statistics and, when running buffers are given,
    updates them in place with ``momentum``; otherwise the running buffers normalize (torch lets
    an empty input through without them: it then takes the batch path, which touches nothing).
    Inputs are validated by ``numbanorm.nn.functional.batch_norm`` before they get here.
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: Any,
        weight: Any,
        bias: Any,
        running_mean: Any,
        running_var: Any,
        training: bool,
        momentum: float,
        eps: float,
    ) -> Any:
        channels = x.shape[1]
        dtype = x.dtype if weight is None else weight.dtype
        weight = np.ones(channels, dtype) if weight is None else weight
        bias = np.zeros(channels, dtype) if bias is None else bias
        device = backend(device_of(x))
        x3, layout = channel_view(x)
        y, y3 = empty_in_layout(x.shape, x.dtype, layout)
        training = training or running_mean is None
        if training:
            mean = np.empty(channels)
            invstd = np.empty(channels)
            tracked = running_mean is not None
            device.kernel("batch_norm", f"batch_norm_train_{layout}", x.size)(
                x3,
                weight,
                bias,
                eps,
                momentum,
                running_mean if tracked else _NO_ARRAY.astype(dtype),
                running_var if tracked else _NO_ARRAY.astype(dtype),
                y3,
                mean,
                invstd,
            )
        else:
            device.kernel("batch_norm", f"batch_norm_eval_{layout}", x.size)(
                x3, weight, bias, running_mean, running_var, eps, y3
            )
            if any(ctx.needs_input_grad):
                mean = running_mean.astype(np.float64)
                invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x3, weight, mean, invstd)
            ctx.layout = layout
            ctx.training = training
            ctx.shape = x.shape
        return y

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x3, weight, mean, invstd = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        kernel = backend(device_of(x3)).kernel(
            "batch_norm", f"batch_norm_backward_{ctx.layout}", x3.size
        )
        dy3 = as_layout(grad, ctx.layout)
        if needs_x:
            dx, dx3 = empty_in_layout(ctx.shape, x3.dtype, ctx.layout)
        else:
            dx, dx3 = None, _NO_ARRAY.astype(x3.dtype)
        dweight = np.empty_like(weight) if needs_weight else _NO_ARRAY.astype(weight.dtype)
        dbias = np.empty_like(weight) if needs_bias else _NO_ARRAY.astype(weight.dtype)
        kernel(dy3, x3, weight, mean, invstd, ctx.training, dx3, dweight, dbias)
        return (
            dx,
            dweight if needs_weight else None,
            dbias if needs_bias else None,
            None,
            None,
            None,
            None,
            None,
        )
