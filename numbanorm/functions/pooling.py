"""2-D pooling on the tape: max (with its indices), average and adaptive average.

Inputs are validated by ``numbanorm.nn.functional.pooling`` before they get here. They are
``(N, C, H, W)`` or unbatched ``(C, H, W)`` (adaptive average also takes any leading axes, for
torch's 1x1 shortcut); outputs and input gradients keep a channels-last input's layout. float16
is computed in float32 and rounded back, as torch's CPU kernels accumulate it.
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function
from numbanorm.backends.host_cache import empty
from numbanorm.dispatch import backend, device_of
from numbanorm.functions.conv import is_channels_last
from numbanorm.tensor import Tensor


def _work_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def _batched(a: Any) -> Any:
    return a[None] if a.ndim == 3 else a


def _empty(shape: tuple, dtype: Any, channels_last: bool) -> Any:
    """A new (N, C, H, W) array, stored channels-last when asked."""
    if not channels_last:
        return empty(shape, dtype)
    n, c, h, w = shape
    return empty((n, h, w, c), dtype).transpose(0, 3, 1, 2)


def _lowest(dtype: np.dtype) -> Any:
    """torch's starting maximum: -inf, or an integer type's minimum, as a scalar of ``dtype``."""
    return dtype.type(-np.inf if dtype.kind == "f" else np.iinfo(dtype).min)


class MaxPool2d(Function):
    """torch.max_pool2d_with_indices: ``geometry`` is ``(kh, kw, sh, sw, ph, pw, dh, dw)``,
    ``size`` the output's ``(ho, wo)``; ``indices`` (int64, the output's shape) is filled in
    place with each maximum's position ``ih * W + iw`` in its plane."""

    @staticmethod
    def forward(ctx: Context, x: Any, geometry: tuple, size: tuple, indices: Any) -> Any:
        x4 = _batched(x)
        n, channels = x4.shape[:2]
        work = _work_dtype(x.dtype)
        y4 = _empty((n, channels, *size), work, is_channels_last(x4))
        kernel = backend(device_of(x)).kernel("pooling", "max_pool2d", x.size)
        kernel(x4.astype(work, copy=False), *geometry, _lowest(work), y4, _batched(indices))
        ctx.save_for_backward(indices)
        ctx.meta = (x4.shape, x.dtype, is_channels_last(x4), x.ndim == 3)
        y = y4.astype(x.dtype, copy=False)
        return y[0] if x.ndim == 3 else y

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        (indices,) = ctx.saved_tensors
        shape, dtype, channels_last, unbatched = ctx.meta
        dx = _empty(shape, _work_dtype(dtype), channels_last)
        dy = _batched(grad).astype(dx.dtype, copy=False)
        kernel = backend(device_of(grad)).kernel("pooling", "max_pool2d_backward", dx.size)
        kernel(dy, _batched(indices), dx)
        dx = dx.astype(dtype, copy=False)
        return (dx[0] if unbatched else dx), None, None, None


def max_pool2d_and_indices(x: Tensor, geometry: tuple, size: tuple) -> tuple[Tensor, Tensor]:
    """The maxima and their int64 indices (torch.max_pool2d_with_indices), indices stored in the
    output's layout."""
    x4 = _batched(x.data)
    indices = _empty((*x4.shape[:2], *size), np.int64, is_channels_last(x4))
    indices = indices[0] if x.ndim == 3 else indices
    return MaxPool2d.apply(x, geometry, size, indices), Tensor(indices)


class AvgPool2d(Function):
    """torch.avg_pool2d: ``geometry`` is ``(kh, kw, sh, sw, ph, pw)``, ``size`` the output's
    ``(ho, wo)``, ``divisor`` the override or 0. int64 input divides rounding toward zero."""

    @staticmethod
    def forward(
        ctx: Context, x: Any, geometry: tuple, size: tuple, count_include_pad: bool, divisor: int
    ) -> Any:
        x4 = _batched(x)
        n, channels = x4.shape[:2]
        work = _work_dtype(x.dtype)
        y4 = _empty((n, channels, *size), work, is_channels_last(x4))
        name = "avg_pool2d" if work.kind == "f" else "avg_pool2d_int"
        kernel = backend(device_of(x)).kernel("pooling", name, x.size)
        kernel(x4.astype(work, copy=False), *geometry, count_include_pad, divisor, y4)
        ctx.meta = (x4.shape, x.dtype, is_channels_last(x4), x.ndim == 3)
        ctx.meta += (geometry, count_include_pad, divisor)
        y = y4.astype(x.dtype, copy=False)
        return y[0] if x.ndim == 3 else y

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        shape, dtype, channels_last, unbatched, geometry, count_include_pad, divisor = ctx.meta
        dx = _empty(shape, _work_dtype(dtype), channels_last)
        dy = _batched(grad).astype(dx.dtype, copy=False)
        kernel = backend(device_of(grad)).kernel("pooling", "avg_pool2d_backward", dx.size)
        kernel(dy, *geometry, count_include_pad, divisor, dx)
        dx = dx.astype(dtype, copy=False)
        return (dx[0] if unbatched else dx), None, None, None, None


def _planes(shape: tuple) -> tuple:
    """``shape`` (at least 2-D) as (N, C, H, W): the leading axes before the last three make N,
    the third from last (or 1) C."""
    h, w = shape[-2:]
    channels = shape[-3] if len(shape) >= 3 else 1
    return prod(shape[:-3]), channels, h, w


class AdaptiveAvgPool2d(Function):
    """torch.adaptive_avg_pool2d: output ``(oh, ow)``; output ``o`` of ``O`` averages inputs
    ``floor(o*I/O)`` to ``ceil((o+1)*I/O)``. Takes any input of at least two axes, as torch's
    1x1 shortcut (a mean over the last two) does."""

    @staticmethod
    def forward(ctx: Context, x: Any, size: tuple) -> Any:
        x4 = x.reshape(_planes(x.shape))
        work = _work_dtype(x.dtype)
        channels_last = is_channels_last(x4)
        y4 = _empty((*x4.shape[:2], *size), work, channels_last)
        kernel = backend(device_of(x)).kernel("pooling", "adaptive_avg_pool2d", x.size)
        kernel(x4.astype(work, copy=False), y4)
        ctx.meta = (x.shape, x.dtype, channels_last)
        return y4.astype(x.dtype, copy=False).reshape(*x.shape[:-2], *size)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        if grad.shape[-2:] != (1, 1):  # torch's kernel (its 1x1 mean does not) refuses this
            for i in range(1, grad.ndim):
                if grad.shape[i] == 0:
                    raise RuntimeError(
                        "adaptive_avg_pool2d_backward(): Expected grad_output to have non-zero "
                        "size for non-batch dimensions, but grad_output has sizes "
                        f"[{', '.join(map(str, grad.shape))}] with dimension {i} being empty"
                    )
        shape, dtype, channels_last = ctx.meta
        dx = _empty(_planes(shape), _work_dtype(dtype), channels_last)
        dy = grad.reshape(*dx.shape[:2], *grad.shape[-2:]).astype(dx.dtype, copy=False)
        kernel = backend(device_of(grad)).kernel("pooling", "adaptive_avg_pool2d_backward", dx.size)
        kernel(dy, dx)
        return dx.astype(dtype, copy=False).reshape(shape), None
