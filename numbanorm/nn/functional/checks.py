"""Checks shared by the functional forms: torch's exception types and messages."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from numbanorm.dispatch import backend, common_device, device_of
from numbanorm.tensor import Tensor
from numbanorm.types import size_str, torch_name

_FLOAT_DTYPES = frozenset({np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)})


def as_tensor(x: Any) -> Tensor | None:
    """``x`` as a Tensor (arrays of either device are wrapped without a copy); None stays
    None."""
    if x is None or isinstance(x, Tensor):
        return x
    return Tensor(backend(device_of(x)).asarray(x))


def verify_batch_size(shape: tuple) -> None:
    """torch's ``_verify_batch_size``: training needs more than one value per channel.

    As in torch, a 0-d input fails on ``size[0]`` and a 1-d input counts ``size[0]`` values.
    """
    if not shape:
        raise IndexError("tuple index out of range")
    if shape[0] * prod(shape[2:]) == 1:
        raise ValueError(
            "Expected more than 1 value per channel when training, got input size "
            f"{size_str(shape)}"
        )


def check_float_input(name: str, x: Tensor) -> None:
    """torch's dtype dispatch: a norm runs on float16, float32 and float64 input only."""
    if x.dtype not in _FLOAT_DTYPES:
        raise NotImplementedError(f"\"{name}\" not implemented for '{torch_name(x.dtype)}'")


def _type_name(value: Any) -> str:
    """A type's name as torch's argument parser prints it (CPython's ``tp_name``)."""
    cls = type(value)
    if cls.__module__ == "builtins" or cls.__flags__ & (1 << 9):  # Py_TPFLAGS_HEAPTYPE
        return cls.__name__
    return f"{cls.__module__}.{cls.__qualname__}"


def check_argument_type(function: str, name: str, position: int, kind: str, value: Any) -> None:
    """torch's argument parser on a ``float`` or ``bool`` argument.

    A float argument takes Python and numpy numbers (bools too) and 0-d tensors; a bool argument
    takes Python's bool only.
    """
    if kind == "bool":
        ok = isinstance(value, bool)
    elif isinstance(value, Tensor):
        ok = value.ndim == 0
    else:
        ok = isinstance(value, (int, float, np.number, np.bool_))
    if not ok:
        raise TypeError(
            f"{function}(): argument '{name}' (position {position}) must be {kind}, not "
            f"{_type_name(value)}"
        )


def as_float(value: Any) -> float:
    """A float argument (a Python or numpy number, or a 0-d tensor) as a Python float."""
    if type(value) is float:  # the common case, twice per call
        return value
    return float(value.item() if isinstance(value, Tensor) else value)


def check_mixed_precision(x: Tensor, parameters: list[Tensor | None]) -> bool:
    """Whether torch's CPU kernels take ``parameters`` as mixed precision; raises if they cannot.

    The first defined parameter (in the op's argument order) decides: with the input's dtype it
    is the plain case (the caller checks the others against the input as the kernels read them).
    Otherwise every parameter must be float32, and the input float16 (or bfloat16, in torch).
    """
    defined = [p for p in parameters if p is not None]
    if not defined or defined[0].data.dtype == x.data.dtype:
        return False
    if any(p.dtype != np.float32 for p in defined):
        raise RuntimeError("mixed dtype (CPU): expect parameter to have scalar type of Float")
    if x.dtype != np.float16:
        raise RuntimeError("mixed dtype (CPU): all inputs must share same datatype.")
    return True


def check_same_dtype(x: Tensor, parameter: Tensor | None) -> None:
    """The plain (not mixed) case: a parameter the kernel reads has the input's dtype."""
    if parameter is not None and parameter.data.dtype != x.data.dtype:
        raise RuntimeError(
            f"expected scalar type {torch_name(x.dtype)} but found {torch_name(parameter.dtype)}"
        )


def check_features(name: str, expected: int, tensor: Tensor | None) -> None:
    """A per-channel tensor has one element per channel."""
    if tensor is not None and tensor.data.size != expected:
        raise RuntimeError(f"{name} should contain {expected} elements not {tensor.numel()}")


def no_dimension_1(input: Tensor) -> IndexError:
    """torch's error for asking a 0-d or 1-d tensor for the size of dimension 1."""
    if input.ndim:
        return IndexError("Dimension out of range (expected to be in range of [-1, 0], but got 1)")
    return IndexError("Dimension specified as 1 but tensor has no dimensions")


def check_same_device(*tensors: Tensor | None) -> None:
    """torch's error when the defined ``tensors`` do not all live on one device."""
    for t in tensors:  # a loop that ends the common case, numpy arrays only, early
        if t is not None and type(t.data) is not np.ndarray:
            common_device(*[t.data for t in tensors if t is not None])
            return
