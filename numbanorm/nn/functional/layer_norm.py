"""torch.nn.functional.layer_norm and rms_norm: torch's checks in torch's order, then one fused
Function."""

from __future__ import annotations

from typing import Any

import numpy as np

from numbanorm.functions.layer_norm import RowNorm, compute_dtype
from numbanorm.nn.functional.checks import (
    _type_name,
    as_float,
    as_tensor,
    check_argument_type,
    check_float_input,
    check_mixed_precision,
    check_same_device,
    check_same_dtype,
)
from numbanorm.tensor import Tensor


def _shape(shape: Any) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def _is_int(value: Any) -> bool:
    """An int as torch's argument parser takes one: Python and numpy integers (not bools), and
    0-d integer tensors."""
    if isinstance(value, Tensor):
        return value.ndim == 0 and value.dtype.kind in "iu"
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def int_tuple(function: str, value: Any) -> tuple[int, ...]:
    """torch's argument parser on ``normalized_shape`` (``SymInt[]``, position 2): a tuple or
    list of ints; a bare int is refused, as in torch's functional forms."""
    prefix = f"{function}(): argument 'normalized_shape' (position 2) must be tuple of ints"
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{prefix}, not {_type_name(value)}")
    for pos, item in enumerate(value):
        if not _is_int(item):
            raise TypeError(f"{prefix}, but found element of type {_type_name(item)} at pos {pos}")
    return tuple(int(item.item() if isinstance(item, Tensor) else item) for item in value)


def _check_parameter_shapes(
    normalized_shape: tuple[int, ...], weight: Tensor | None, bias: Tensor | None
) -> None:
    if not normalized_shape:
        raise RuntimeError(
            "Expected normalized_shape to be at least 1-dimensional, i.e., containing at least "
            "one element, but got normalized_shape = []"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != normalized_shape:
            raise RuntimeError(
                f"Expected {name} to be of same shape as normalized_shape, but got {name} of "
                f"shape {_shape(p.shape)} and normalized_shape = {_shape(normalized_shape)}"
            )


def _matches(input: Tensor, normalized_shape: tuple[int, ...]) -> bool:
    k = len(normalized_shape)
    return input.ndim >= k and input.shape[input.ndim - k :] == normalized_shape


def _check_device(*tensors: Tensor | None) -> None:
    check_same_device(*tensors)


def layer_norm(
    input: Tensor,
    normalized_shape: list[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalization over the trailing ``normalized_shape`` axes
    (torch.nn.functional.layer_norm): per-element ``weight`` and ``bias``, biased variance."""
    input, weight, bias = map(as_tensor, (input, weight, bias))
    normalized_shape = int_tuple("layer_norm", normalized_shape)
    check_argument_type("layer_norm", "eps", 5, "float", eps)
    # torch checks the parameters' dtypes first, then the shapes, then the kernel's dtype.
    mixed = check_mixed_precision(input, [weight, bias])
    _check_parameter_shapes(normalized_shape, weight, bias)
    if not _matches(input, normalized_shape):
        raise RuntimeError(
            f"Given normalized_shape={_shape(normalized_shape)}, expected input with shape "
            f"[*, {', '.join(map(str, normalized_shape))}], but got input of size"
            f"{_shape(input.shape)}"
        )
    check_float_input("LayerNormKernelImpl", input)
    if not mixed:
        check_same_dtype(input, weight)
        check_same_dtype(input, bias)
    _check_device(input, weight, bias)
    compute = np.dtype(np.float32) if mixed else compute_dtype(input.dtype)
    return RowNorm.apply(input, weight, bias, len(normalized_shape), as_float(eps), False, compute)


def rms_norm(
    input: Tensor,
    normalized_shape: list[int],
    weight: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    """Root-mean-square normalization over the trailing ``normalized_shape`` axes
    (torch.nn.functional.rms_norm): no centring, per-element ``weight``, no bias.

    As torch's CPU code path: float16 and float32 input compute in float32, float64 in float64,
    the weight (of any real dtype) cast to that type; ``eps=None`` is the machine epsilon of that
    type, not of the input's; the output has the input's dtype.
    """
    input, weight = map(as_tensor, (input, weight))
    normalized_shape = int_tuple("rms_norm", normalized_shape)
    if eps is not None:
        check_argument_type("rms_norm", "eps", 4, "float", eps)
    _check_parameter_shapes(normalized_shape, weight, None)
    k = len(normalized_shape)
    if input.ndim < k:
        raise ValueError(f"Input tensor must have at least {k} dimensions, but got {input.ndim}")
    if not _matches(input, normalized_shape):
        raise RuntimeError(
            f"Given normalized_shape={_shape(normalized_shape)}, expected input with shape "
            f"[*{', '.join(map(str, normalized_shape))}], but got input of size"
            f"{_shape(input.shape)}"
        )
    check_float_input("rms_norm", input)
    _check_device(input, weight)
    compute = compute_dtype(input.dtype)
    eps = float(np.finfo(compute).eps) if eps is None else as_float(eps)
    return RowNorm.apply(input, weight, None, k, eps, True, compute)
