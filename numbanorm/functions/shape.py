"""Shape operations on the tape: Reshape, Transpose and Index (torch's basic and integer-array
indexing)."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from numbanorm.autograd import ALL_DEVICES, Context, Function


def wrap_dim(dim: int, ndim: int) -> int:
    """``dim`` as a non-negative axis of an ``ndim``-D tensor (a 0-d one has axes -1 and 0)."""
    low, high = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not low <= dim <= high:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{low}, {high}], but got {dim})"
        )
    return dim % max(ndim, 1)


def infer_shape(shape: tuple, size: int) -> tuple:
    """``shape`` with its -1 filled in so that it holds ``size`` elements, or torch's error."""
    shape = tuple(int(n) for n in shape)
    inferred = None
    for index, n in enumerate(shape):
        if n == -1:
            if inferred is not None:
                raise RuntimeError("only one dimension can be inferred")
            inferred = index
        elif n < 0:
            raise RuntimeError(
                f"invalid shape dimension {n} at index {index} of shape "
                f"[{', '.join(str(m) for m in shape)}]"
            )
    known = prod(n for n in shape if n != -1)
    invalid = RuntimeError(
        f"shape '[{', '.join(str(m) for m in shape)}]' is invalid for input of size {size}"
    )
    if inferred is None:
        if known != size:
            raise invalid
        return shape
    if known == 0 or size % known:
        raise invalid
    return (*shape[:inferred], size // known, *shape[inferred + 1 :])


class Reshape(Function):
    """x reshaped (a view where numpy can make one, as torch.reshape)."""

    devices = ALL_DEVICES  # numba's device arrays reshape alike (contiguous ones only)

    @staticmethod
    def forward(ctx: Context, x: Any, shape: tuple) -> Any:
        ctx.shape = x.shape
        return x.reshape(infer_shape(shape, x.size))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return grad.reshape(ctx.shape), None


class Transpose(Function):
    """x with dimensions ``dim0`` and ``dim1`` swapped (a view)."""

    @staticmethod
    def forward(ctx: Context, x: Any, dim0: int, dim1: int) -> Any:
        ctx.dims = wrap_dim(dim0, x.ndim), wrap_dim(dim1, x.ndim)
        if x.ndim == 0:
            return x
        return np.swapaxes(x, *ctx.dims)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return (grad if grad.ndim == 0 else np.swapaxes(grad, *ctx.dims)), None, None


def _is_advanced(item: Any) -> bool:
    return isinstance(item, np.ndarray)


def _consumed(item: Any) -> int:
    """How many dimensions of the input an index item uses up."""
    if item is None or item is Ellipsis:
        return 0
    return item.ndim if isinstance(item, np.ndarray) and item.dtype.kind == "b" else 1


def _check_bounds(key: tuple, shape: tuple) -> None:
    """torch's IndexErrors: too many indices, an integer out of its dimension's range."""
    if sum(_consumed(item) for item in key) > len(shape):
        raise IndexError(f"too many indices for tensor of dimension {len(shape)}")
    dim = arrays = 0
    for position, item in enumerate(key):
        if item is Ellipsis:
            dim = len(shape) - sum(_consumed(other) for other in key[position + 1 :])
            continue
        is_array = isinstance(item, np.ndarray) and item.dtype.kind in "iu"
        if isinstance(item, (int, np.integer)) or is_array:
            # torch names an index array's dimension by its place among the index arrays
            named = arrays if is_array else dim
            for value in np.asarray(item).reshape(-1):
                if not -shape[dim] <= value < shape[dim]:
                    raise IndexError(
                        f"index {value} is out of bounds for dimension {named} with size "
                        f"{shape[dim]}"
                    )
        arrays += _consumed(item) if isinstance(item, np.ndarray) else 0
        dim += _consumed(item)


class Index(Function):
    """x[key]: ints, slices, None, Ellipsis, and integer (or boolean) arrays. Backward adds the
    gradient into a zero array at the indexed places (repeated indices accumulate)."""

    @staticmethod
    def forward(ctx: Context, x: Any, key: tuple) -> Any:
        _check_bounds(key, x.shape)
        ctx.shape, ctx.dtype, ctx.key = x.shape, x.dtype, key
        return np.asarray(x[key])

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        result = np.zeros(ctx.shape, dtype=grad.dtype)
        if any(_is_advanced(item) for item in ctx.key):
            np.add.at(result, ctx.key, grad)
        else:
            result[ctx.key] += grad
        return result, None
