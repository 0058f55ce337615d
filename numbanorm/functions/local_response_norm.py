"""LocalResponseNorm on the tape: one fused forward kernel, one fused backward kernel, on arrays
of either device."""

from typing import Any

import numpy as np

from numbanorm.autograd import ALL_DEVICES, Context, Function
from numbanorm.dispatch import backend, device_of
from numbanorm.functions.layout import as_layout, channel_view, empty_in_layout


class LocalResponseNorm(Function):
    """torch.nn.functional.local_response_norm: ``x / (k + alpha * mean of the squares over a
    window of ``size`` channels, zero-padded)**beta``.

    Inputs are validated by ``numbanorm.nn.functional.local_response_norm`` before they get
    here; ``dtype`` is the output's (torch's result dtype: the input's, or a float type for
    int64 input, whose mean of squares torch floors). float16 is computed in float32 and rounded
    once. The backward recomputes what it needs from the input: nothing but ``x`` is saved.
    """

    devices = ALL_DEVICES

    @staticmethod
    def forward(
        ctx: Context, x: Any, size: int, alpha: float, beta: float, k: float, dtype: np.dtype
    ) -> Any:
        xp = backend(device_of(x))
        work = xp.astype(x, np.float32) if x.dtype == np.float16 else x
        x3, layout = channel_view(work)
        y_dtype = work.dtype if x.dtype.kind == "f" else np.promote_types(dtype, np.float32)
        y, y3 = empty_in_layout(x.shape, y_dtype, layout, xp.DEVICE)
        xp.kernel("local_response_norm", f"local_response_norm_{layout}", x.size)(
            x3, size, alpha, beta, k, x.dtype.kind == "i", y3
        )
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x3)
            ctx.arguments = (size, alpha, beta, k)
            ctx.layout = layout
            ctx.shape = x.shape
            ctx.dtype = x.dtype
        with np.errstate(over="ignore"):  # float16 overflows to inf, silently as in torch
            return xp.astype(y, dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        (x3,) = ctx.saved_tensors
        xp = backend(device_of(x3))
        dy3 = as_layout(xp.astype(grad, x3.dtype), ctx.layout)
        dx, dx3 = empty_in_layout(ctx.shape, x3.dtype, ctx.layout, xp.DEVICE)
        xp.kernel("local_response_norm", f"local_response_norm_backward_{ctx.layout}", x3.size)(
            dy3, x3, *ctx.arguments, dx3
        )
        with np.errstate(over="ignore"):
            dx = xp.astype(dx, ctx.dtype)
        return dx, None, None, None, None, None
