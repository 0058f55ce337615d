"""2-D convolution on the tape: im2col (a Numba kernel), one BLAS product, col2im backward.

Inputs are validated by ``numbanorm.nn.functional.conv`` before they get here. float16 is
computed in float32 and rounded back; integer tensors are multiplied exactly by numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function
from numbanorm.dispatch import backend, device_of


def is_channels_last(a: Any) -> bool:
    """Whether a 4-D array is stored channels-last (and not also plain contiguous)."""
    return a.ndim == 4 and not a.flags.c_contiguous and a.transpose(0, 2, 3, 1).flags.c_contiguous


def output_size(size: int, kernel: int, stride: int, before: int, after: int, dilation: int) -> int:
    """The number of kernel positions along one axis (torch's conv output size)."""
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


def _work_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float32) if dtype == np.float16 else dtype


class Conv2d(Function):
    """torch.conv2d: ``x`` (N, C, H, W) or unbatched (C, H, W), ``weight`` (O, C/groups, kh, kw),
    ``bias`` (O,) or None; ``padding`` is ``(top, bottom, left, right)`` (padding='same' may be
    asymmetric).

    A channels-last input with ``groups == 1`` takes the nhwc kernels and one product for the
    whole batch; any other input the nchw kernels and one product per sample and group.
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: Any,
        weight: Any,
        bias: Any,
        stride: tuple,
        padding: tuple,
        dilation: tuple,
        groups: int,
    ) -> Any:
        unbatched = x.ndim == 3
        x4 = x[None] if unbatched else x
        n, channels, h, w = x4.shape
        out_channels, _, kh, kw = weight.shape
        pt, pb, pl, pr = padding
        ho = output_size(h, kh, stride[0], pt, pb, dilation[0])
        wo = output_size(w, kw, stride[1], pl, pr, dilation[1])
        work = _work_dtype(x.dtype)
        geometry = (kh, kw, *stride, pt, pl, *dilation, ho, wo)
        device = backend(device_of(x))
        nhwc = groups == 1 and is_channels_last(x4)
        xw = x4.astype(work, copy=False)
        if nhwc:
            weight2 = np.ascontiguousarray(weight.transpose(0, 2, 3, 1), work)
            weight2 = weight2.reshape(out_channels, kh * kw * channels)
            cols = np.empty((n * ho * wo, kh * kw * channels), work)
            device.kernel("conv", "im2col_nhwc", x.size)(xw.transpose(0, 2, 3, 1), *geometry, cols)
            out2 = cols @ weight2.T
            if bias is not None:
                out2 += bias.astype(work)
            out = out2.reshape(n, ho, wo, out_channels).transpose(0, 3, 1, 2)
        else:
            weight2 = np.ascontiguousarray(weight, work)
            weight2 = weight2.reshape(groups, out_channels // groups, weight[0].size)
            cols = np.empty((n, channels * kh * kw, ho * wo), work)
            device.kernel("conv", "im2col_nchw", x.size)(xw, *geometry, cols)
            out = np.matmul(weight2, cols.reshape(n, groups, weight2.shape[2], ho * wo))
            out = out.reshape(n, out_channels, ho, wo)
            if bias is not None:
                out += bias.astype(work).reshape(1, out_channels, 1, 1)
            if is_channels_last(x4) or is_channels_last(weight):
                out = np.ascontiguousarray(out.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        needs = ctx.needs_input_grad
        ctx.save_for_backward(cols if needs[1] else None, weight2 if needs[0] else None)
        ctx.meta = (x4.shape, x.dtype, weight.shape, geometry, groups, nhwc, unbatched)
        out = out.astype(x.dtype, copy=False)
        return out[0] if unbatched else out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        cols, weight2 = ctx.saved_tensors
        x_shape, dtype, weight_shape, geometry, groups, nhwc, unbatched = ctx.meta
        needs = ctx.needs_input_grad
        work = _work_dtype(dtype)
        grad = (grad[None] if unbatched else grad).astype(work, copy=False)
        n, out_channels, ho, wo = grad.shape
        kh, kw = weight_shape[2:]
        device = backend(device_of(grad))
        dx = dweight = dbias = None
        if nhwc:
            g2 = np.ascontiguousarray(grad.transpose(0, 2, 3, 1)).reshape(-1, out_channels)
            if needs[0]:
                dx4 = np.empty((n, x_shape[2], x_shape[3], x_shape[1]), work)
                device.kernel("conv", "col2im_nhwc", dx4.size)(g2 @ weight2, *geometry, dx4)
                dx = dx4.transpose(0, 3, 1, 2)
            if needs[1]:
                dweight = (
                    (g2.T @ cols).reshape(out_channels, kh, kw, x_shape[1]).transpose(0, 3, 1, 2)
                )
        else:
            g4 = np.ascontiguousarray(grad).reshape(n, groups, out_channels // groups, ho * wo)
            if needs[0]:
                dcols = np.matmul(weight2.transpose(0, 2, 1), g4).reshape(
                    n, x_shape[1] * kh * kw, ho * wo
                )
                dx = np.empty(x_shape, work)
                device.kernel("conv", "col2im_nchw", dx.size)(dcols, *geometry, dx)
            if needs[1]:
                cols4 = cols.reshape(n, groups, cols.shape[1] // groups, ho * wo)
                dweight = np.matmul(g4, cols4.transpose(0, 1, 3, 2)).sum(axis=0)
        if needs[0]:
            dx = dx.astype(dtype, copy=False)
            dx = dx[0] if unbatched else dx
        if needs[1]:
            dweight = np.ascontiguousarray(dweight.reshape(weight_shape), dtype)
        if len(needs) > 2 and needs[2]:
            dbias = grad.sum(axis=(0, 2, 3), dtype=np.float64).astype(dtype)
        return dx, dweight, dbias, None, None, None, None


_NUMPY_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class Pad2d(Function):
    """torch.nn.functional.pad's ``reflect``, ``replicate`` and ``circular`` modes on the last two
    axes, ``pad`` being ``(left, right, top, bottom)`` as torch orders it; the backward sums each
    output element's gradient into the input element it copies."""

    @staticmethod
    def forward(ctx: Context, x: Any, pad: tuple, mode: str) -> Any:
        left, right, top, bottom = pad
        ctx.meta = (x.shape, pad, mode)
        widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
        return np.pad(x, widths, mode=_NUMPY_PAD_MODES[mode])

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        shape, (left, right, top, bottom), mode = ctx.meta
        mode = _NUMPY_PAD_MODES[mode]
        rows = np.pad(np.arange(shape[-2]), (top, bottom), mode=mode)
        cols = np.pad(np.arange(shape[-1]), (left, right), mode=mode)
        by_column = np.zeros((*grad.shape[:-1], shape[-1]), grad.dtype)
        np.add.at(by_column, (..., cols), grad)
        dx = np.zeros(shape, grad.dtype)
        np.add.at(dx, (..., rows, slice(None)), by_column)
        return dx, None, None
