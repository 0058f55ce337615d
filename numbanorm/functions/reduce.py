"""Reductions on the tape."""

from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function
from numbanorm.functions.shape import wrap_dim

_TORCH_NAMES = {
    "bool": "Bool",
    "int64": "Long",
    "int32": "Int",
    "int16": "Short",
    "int8": "Char",
    "uint8": "Byte",
}


def _axes(dim: Any, ndim: int) -> tuple:
    """torch's ``dim`` argument (None, an int or a sequence) as sorted non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    axes = []
    for d in dims:
        axis = wrap_dim(int(d), ndim)
        if axis in axes:
            raise RuntimeError(f"dim {axis} appears multiple times in the list of dims")
        axes.append(axis)
    return tuple(sorted(axes)) if ndim else ()


def _kept_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    """Sum over ``dim`` (all elements when None), as torch.sum: floating and complex inputs keep
    their dtype, booleans and integers sum to int64 as in torch."""

    @staticmethod
    def forward(ctx: Context, x: Any, dim: Any = None, keepdim: bool = False) -> Any:
        # axis=None when all: numpy's tuple-of-axes path costs more than a tiny sum itself, and
        # the gradient of a sum of all elements broadcasts as it is (no kept shape to build)
        axis = None if dim is None else _axes(dim, x.ndim)
        ctx.shape = x.shape
        ctx.kept = None if axis is None else _kept_shape(x.shape, axis)
        dtype = x.dtype if x.dtype.kind in "fc" else np.dtype(np.int64)
        # float16 accumulates in float32, as torch's CPU kernel does
        accumulate = np.float32 if dtype == np.float16 else dtype
        result = x.sum(axis=axis, dtype=accumulate, keepdims=bool(keepdim))
        return np.asarray(result, dtype=dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        fill = grad if ctx.kept is None else grad.reshape(ctx.kept)
        # np.full broadcasts its fill value in a third of broadcast_to(...).copy()'s time
        return np.full(ctx.shape, fill), None, None


class Mean(Function):
    """Mean over ``dim`` (all elements when None), as torch.mean: floating and complex only."""

    @staticmethod
    def forward(ctx: Context, x: Any, dim: Any = None, keepdim: bool = False) -> Any:
        if x.dtype.kind not in "fc":
            raise RuntimeError(
                "mean(): could not infer output dtype. Input dtype must be either a floating "
                f"point or complex dtype. Got: {_TORCH_NAMES.get(x.dtype.name, x.dtype.name)}"
            )
        axes = _axes(dim, x.ndim)
        ctx.shape, ctx.kept = x.shape, _kept_shape(x.shape, axes)
        ctx.count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
        accumulate = np.float32 if x.dtype == np.float16 else x.dtype
        total = x.sum(axis=axes, dtype=accumulate, keepdims=bool(keepdim))
        with np.errstate(divide="ignore", invalid="ignore"):  # torch: nan over no elements
            return np.asarray(total / np.asarray(ctx.count, dtype=accumulate), dtype=x.dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = grad.reshape(ctx.kept) / np.asarray(ctx.count, dtype=grad.dtype)
        return np.broadcast_to(scaled, ctx.shape).copy(), None, None
