"""BatchNorm on the tape: one fused forward kernel, one fused backward kernel, on arrays of
either device (the array operations are the backend's)."""

from typing import Any

import numpy as np

from numbanorm.autograd import ALL_DEVICES, Context, Function
from numbanorm.dispatch import backend, device_of
from numbanorm.functions.layout import as_layout, channel_view, empty_in_layout


def _widen(array: Any) -> Any:
    """A 1-D parameter (torch accepts any shape with C elements) of a dtype the kernels compute
    with: float16 as float32, other arrays as they are."""
    if array is None:
        return None
    array = array.reshape(-1)
    if array.dtype != np.float16:
        return array
    return backend(device_of(array)).astype(array, np.float32)


def _float64(xp: Any, array: Any) -> Any:
    """A flat float64 copy of ``array`` of backend ``xp`` (running statistics saved for the
    backward, which must not see later updates)."""
    out = xp.empty(array.size, np.float64)
    xp.copyto(out, array.reshape(-1))
    return out


def _empty(xp: Any, dtype: Any, ndim: int = 1) -> Any:
    """A size-0 array of backend ``xp``: the kernels' way to say "not wanted" for an output or a
    buffer."""
    return xp.empty((0,) * ndim, dtype)


class BatchNorm(Function):
    """torch.batch_norm: statistics per channel over the batch and spatial axes.

    ``training`` normalizes with the batch's statistics and, when running buffers are given,
    updates them in place with ``momentum``; otherwise the running buffers normalize (torch lets
    an empty input through without them: it then takes the batch path, which touches nothing).
    Inputs are validated by ``numbanorm.nn.functional.batch_norm`` before they get here. float16
    tensors are computed in float32 and rounded back, as torch's CPU kernels do.
    """

    devices = ALL_DEVICES

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
        param_shapes = (
            None if weight is None else weight.shape,
            None if bias is None else bias.shape,
        )
        given = weight if weight is not None else bias if bias is not None else running_mean
        param_dtype = x.dtype if given is None else given.dtype
        xp = backend(device_of(x))
        work = xp.astype(x, np.float32) if x.dtype == np.float16 else x
        dtype = np.dtype(np.float32) if param_dtype == np.float16 else param_dtype
        weight = xp.full(channels, 1, dtype) if weight is None else _widen(weight)
        bias = xp.full(channels, 0, dtype) if bias is None else _widen(bias)
        x3, layout = channel_view(work)
        y, y3 = empty_in_layout(x.shape, work.dtype, layout, xp.DEVICE)
        training = training or running_mean is None
        if training:
            mean = xp.empty(channels, np.float64)
            invstd = xp.empty(channels, np.float64)
            tracked = running_mean is not None
            running = (
                (_widen(running_mean), _widen(running_var))
                if tracked
                else (_empty(xp, dtype), _empty(xp, dtype))
            )
            xp.kernel("batch_norm", f"batch_norm_train_{layout}", x.size)(
                x3, weight, bias, eps, momentum, *running, y3, mean, invstd
            )
            if tracked and running_mean.dtype == np.float16:  # the kernel updated a copy
                xp.copyto(running_mean, running[0])
                xp.copyto(running_var, running[1])
        else:
            xp.kernel("batch_norm", f"batch_norm_eval_{layout}", x.size)(
                x3, weight, bias, _widen(running_mean), _widen(running_var), eps, y3
            )
            if any(ctx.needs_input_grad):
                mean = _float64(xp, running_mean)
                invstd = xp.inverse_std(running_var, eps)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x3, weight, mean, invstd)
            ctx.layout = layout
            ctx.training = training
            ctx.shape = x.shape
            ctx.dtypes = (x.dtype, param_dtype)
            ctx.param_shapes = param_shapes
        return xp.astype(y, x.dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x3, weight, mean, invstd = ctx.saved_tensors
        x_dtype, param_dtype = ctx.dtypes
        weight_shape, bias_shape = ctx.param_shapes
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        xp = backend(device_of(x3))
        kernel = xp.kernel("batch_norm", f"batch_norm_backward_{ctx.layout}", x3.size)
        dy3 = as_layout(xp.astype(grad, x3.dtype), ctx.layout)
        dx, dx3 = (
            empty_in_layout(ctx.shape, x3.dtype, ctx.layout, xp.DEVICE)
            if needs_x
            else (None, _empty(xp, x3.dtype, ndim=3))
        )
        dweight = xp.empty_like(weight) if needs_weight else _empty(xp, weight.dtype)
        dbias = xp.empty_like(weight) if needs_bias else _empty(xp, weight.dtype)
        kernel(dy3, x3, weight, mean, invstd, ctx.training, dx3, dweight, dbias)
        return (
            None if dx is None else xp.astype(dx, x_dtype),
            xp.astype(dweight, param_dtype).reshape(weight_shape) if needs_weight else None,
            xp.astype(dbias, param_dtype).reshape(bias_shape) if needs_bias else None,
            None, None, None, None, None,
        )  # fmt: skip
