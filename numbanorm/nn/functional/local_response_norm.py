"""torch.nn.functional.local_response_norm: torch's checks in torch's order, then one fused
Function.

torch 2.13 composes the op from ``mul``, ``view``, ``pad``, ``avg_pool2d`` (3-D input) or
``avg_pool3d`` (4-D and more), ``mul``, ``add``, ``pow`` and ``div``; each raises its own errors,
so the checks below are those ops' checks, in that order.
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from numbanorm.functions.local_response_norm import LocalResponseNorm
from numbanorm.nn.functional.checks import _type_name, as_tensor
from numbanorm.tensor import Tensor
from numbanorm.types import DEFAULT_DTYPE, torch_name

# torch's message, with the spaces its line continuation leaves inside the string.
_DIMENSIONS = (
    "Expected 3D or higher dimensionality                          input (got {} dimensions)"
)
_POOLED_DTYPES = {
    "avg_pool2d": ("float16", "float32", "float64", "int64"),
    "avg_pool3d_out_frame": ("float32", "float64", "int64"),
}
_POW_TYPES = (
    "pow() received an invalid combination of arguments - got ({0}), but expected one of:\n"
    " * (Tensor exponent)\n"
    "      didn't match because some of the arguments have invalid types: (!{1}!)\n"
    " * (Number exponent)\n"
    "      didn't match because some of the arguments have invalid types: (!{1}!)\n"
)


def _described(value: Any) -> str:
    """An argument as torch's overload error describes it: a list or tuple with its items'
    types."""
    if isinstance(value, list):
        return f"list of [{', '.join(map(_type_name, value))}]"
    if isinstance(value, tuple):
        items = ", ".join(map(_type_name, value)) + ("," if len(value) == 1 else "")
        return f"tuple of ({items})"
    return _type_name(value)


def _is_contiguous(shape: tuple, strides: tuple) -> bool:
    expected = 1
    for size, stride in zip(reversed(shape), reversed(strides), strict=True):
        if size != 1:
            if stride != expected:
                return False
            expected *= size
    return True


def _is_non_overlapping_and_dense(shape: tuple, strides: tuple) -> bool:
    """torch's ``is_non_overlapping_and_dense``: a permutation of a contiguous layout."""
    expected = 1
    for d in sorted((d for d in range(len(shape)) if shape[d] > 1), key=lambda d: strides[d]):
        if strides[d] != expected:
            return False
        expected *= shape[d]
    return True


def _elementwise_strides(shape: tuple, strides: tuple) -> tuple:
    """The strides (in elements) of torch's result of an elementwise op on a tensor of
    ``strides``: TensorIterator keeps a dense layout and otherwise orders the dimensions by its
    insertion sort of the input's strides."""
    if _is_contiguous(shape, strides):
        return tuple(prod(shape[d + 1 :]) for d in range(len(shape)))
    if _is_non_overlapping_and_dense(shape, strides):
        return strides

    def should_swap(d0: int, d1: int) -> int:
        s0, s1 = strides[d0], strides[d1]
        if s0 == 0 or s1 == 0:
            return 0
        if s0 != s1:
            return -1 if s0 < s1 else 1
        return 1 if shape[d0] > shape[d1] else 0

    perm = list(range(len(shape)))[::-1]  # innermost first
    for i in range(1, len(perm)):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            comparison = should_swap(perm[d0], perm[d1])
            if comparison > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif comparison < 0:
                break
    result = [0] * len(shape)
    stride = 1
    for d in perm:
        result[d] = stride
        stride *= shape[d]
    return tuple(result)


def _check_view(input: Tensor) -> None:
    """torch views ``input * input`` as ``(N, 1, C, D, -1)``; that product keeps a permuted
    layout, in which the dimensions after the third may not merge (torch raises then)."""
    array = input.data
    if any(s < 0 for s in array.strides):
        return  # a numpy-only layout: torch has no such tensor
    itemsize = array.dtype.itemsize  # numba's device arrays have no ``itemsize``
    strides = _elementwise_strides(array.shape, tuple(s // itemsize for s in array.strides))
    product = np.lib.stride_tricks.as_strided(
        np.empty(input.numel(), np.int8), array.shape, strides
    )
    Tensor(product).view(*array.shape[:1], 1, *array.shape[1:3], -1)


def _window_size(input: Tensor, size: Any) -> int:
    """``size`` through ``size // 2``, ``pad`` and the pooling's argument and shape checks."""
    if isinstance(size, Tensor):
        if size.dtype == np.bool_:
            raise RuntimeError(
                "Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                "trying to invert a mask, use the `~` or `logical_not()` operator instead."
            )
        if size.dtype.kind not in "iu" or size.numel() != 1:
            half = size  # pad refuses it below
        else:
            size = half = int(size.item())
    else:
        half = size // 2
    three_d = input.ndim == 3
    if not isinstance(half, (int, np.integer)):
        raise TypeError(
            f"pad(): argument 'pad' failed to unpack the object at pos {3 if three_d else 5} with "
            f'error "type must be tuple of ints,but got {_type_name(half)}"'
        )
    if input.shape[1] + size // 2 + (size - 1) // 2 < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    pool = "avg_pool2d" if three_d else "avg_pool3d"
    if isinstance(size, (bool, np.bool_)):
        raise TypeError(
            f"{pool}(): argument 'kernel_size' (position 2) must be tuple of ints, but found "
            f"element of type {_type_name(size)} at pos 0"
        )
    size = int(size)
    if size <= -2:
        raise RuntimeError(
            "pad should be at most half of effective kernel size, but got pad=0, "
            f"kernel_size={size} and dilation=1"
        )
    if size <= 0:
        kernel = f"kH: {size} kW: 1" if three_d else f"kT: {size} kH: 1 kW: 1"
        raise RuntimeError(f"kernel size should be greater than zero, but got {kernel}")
    return size


def _check_dtype(input: Tensor) -> None:
    kernel = "avg_pool2d" if input.ndim == 3 else "avg_pool3d_out_frame"
    if input.dtype.name not in _POOLED_DTYPES[kernel]:
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{torch_name(input.dtype)}'")


def _is_number(value: Any) -> bool:
    """torch's Number: Python's bool, int, float, complex and numpy's scalars."""
    return isinstance(value, (bool, int, float, complex, np.number, np.bool_))


def _scalar(value: Any, message: str) -> float:
    """A scalar argument as a float; ``message`` is torch's error for another type."""
    if not (_is_number(value) or isinstance(value, Tensor)):
        raise TypeError(message)
    number = value.item() if isinstance(value, Tensor) else value
    if isinstance(number, (complex, np.complexfloating)):
        raise TypeError("local_response_norm: complex alpha, beta and k are not supported")
    return float(number)


def _is_integral(value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.dtype.kind in "biu"
    return isinstance(value, (bool, int, np.integer, np.bool_))


def _result_dtype(input: Tensor, alpha: Any, k: Any, beta: Any) -> np.dtype:
    """torch's result dtype. int64 input stays integral through ``mul(alpha)``, ``add(k)`` and
    ``pow(beta)`` until the first floating argument: a tensor brings its dtype, a number the
    default dtype; ``input / div`` of two integer tensors is of the default dtype too."""
    if input.dtype.kind == "f":
        return input.dtype
    for value in (alpha, k, beta):
        if not _is_integral(value):
            return value.dtype if isinstance(value, Tensor) else DEFAULT_DTYPE
    return DEFAULT_DTYPE


def local_response_norm(
    input: Any, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> Tensor:
    """Local response normalization across channels (torch.nn.functional.local_response_norm).

    ``input / (k + alpha/size * sum of squares over size neighbouring channels)**beta``, the
    channel axis zero-padded by ``size // 2`` before and ``(size - 1) // 2`` after. An empty
    input is returned as it is, as torch does.
    """
    input = as_tensor(input)
    if input.ndim < 3:
        raise ValueError(_DIMENSIONS.format(input.ndim))
    if input.numel() == 0:
        return input
    if input.ndim > 4:
        _check_view(input)
    window = _window_size(input, size)
    _check_dtype(input)
    name = "other' (position 1) must be Tensor, not "
    alpha_value = _scalar(alpha, f"mul(): argument '{name}{_type_name(alpha)}")
    k_value = _scalar(k, f"add(): argument '{name}{_type_name(k)}")
    beta_value = _scalar(beta, _POW_TYPES.format(_type_name(beta), _described(beta)))
    integral = input.dtype.kind == "i" and all(map(_is_integral, (alpha, k, beta)))
    if integral and beta_value < 0:
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    dtype = _result_dtype(input, alpha, k, beta)
    return LocalResponseNorm.apply(input, window, alpha_value, beta_value, k_value, dtype)
