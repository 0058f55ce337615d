"""torch.nn.functional's normalization functions: validate first, then run one fused Function.

Validation raises torch 2.13's exception types and messages, in torch's order, before anything is
computed or mutated.
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from numbanorm.dispatch import common_device
from numbanorm.functions.batch_norm import BatchNorm
from numbanorm.tensor import Tensor
from numbanorm.types import size_str, torch_name

_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _as_tensor(x: Any) -> Tensor | None:
    if x is None or isinstance(x, Tensor):
        return x
    return Tensor(np.asarray(x))


def verify_batch_size(shape: tuple) -> None:
    """torch's ``_verify_batch_size``: training needs more than one value per channel."""
    if len(shape) < 2:
        raise IndexError(
            "Dimension out of range (expected to be in range of [-1, 0], but got 1)"
            if shape
            else "tuple index out of range"
        )
    if shape[0] * prod(shape[2:]) == 1:
        raise ValueError(
            "Expected more than 1 value per channel when training, got input size "
            f"{size_str(shape)}"
        )


def check_float_input(name: str, x: Tensor) -> None:
    """torch's dtype dispatch: a norm runs on float16, float32 and float64 input only."""
    if x.dtype not in _FLOAT_DTYPES:
        raise NotImplementedError(f"\"{name}\" not implemented for '{torch_name(x.dtype)}'")


def check_parameter_dtypes(x: Tensor, parameters: list[Tensor | None]) -> None:
    """torch's CPU rules for the dtypes of a norm's parameters and buffers.

    All defined parameters share the first one's dtype; that dtype must be the input's (float32
    parameters with a float16 input are torch's mixed-precision case).
    """
    defined = [p for p in parameters if p is not None]
    if not defined:
        return
    first = defined[0].dtype
    for p in defined[1:]:
        if p.dtype != first:
            raise RuntimeError(
                f"expected scalar type {torch_name(first)} but found {torch_name(p.dtype)}"
            )
    if first == x.dtype:
        return
    if first != np.float32:
        raise RuntimeError("mixed dtype (CPU): expect parameter to have scalar type of Float")
    if x.dtype != np.float16:
        raise RuntimeError("mixed dtype (CPU): all inputs must share same datatype.")


def _check_features(name: str, expected: int, tensor: Tensor | None) -> None:
    if tensor is not None and tensor.numel() != expected:
        raise RuntimeError(f"{name} should contain {expected} elements not {tensor.numel()}")


def _check_batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    momentum: Any,
    eps: float,
) -> None:
    if training:
        verify_batch_size(input.shape)
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    if not isinstance(momentum, (int, float)):
        raise TypeError(
            "batch_norm(): argument 'momentum' (position 7) must be float, not "
            f"{type(momentum).__name__}"
        )
    features = input.shape[1] if input.ndim > 1 else 0
    if input.numel() != 0:
        for name, buffer in (("running_mean", running_mean), ("running_var", running_var)):
            if buffer is None and not training:
                raise RuntimeError(f"{name} must be defined in evaluation mode")
            _check_features(name, features, buffer)
        _check_features("weight", features, weight)
        _check_features("bias", features, bias)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither be None")
    check_float_input("batch_norm", input)
    order = (
        [running_mean, running_var, weight, bias]
        if training
        else [weight, bias, running_mean, running_var]
    )
    check_parameter_dtypes(input, order)
    tensors = (input, running_mean, running_var, weight, bias)
    common_device(*(t.data for t in tensors if t is not None))


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization per channel (torch.nn.functional.batch_norm).

    With ``training=True`` the batch's statistics normalize and ``running_mean``/``running_var``,
    when given, are updated in place; otherwise the running statistics normalize.
    """
    input, running_mean, running_var, weight, bias = map(
        _as_tensor, (input, running_mean, running_var, weight, bias)
    )
    _check_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    return BatchNorm.apply(
        input,
        weight,
        bias,
        None if running_mean is None else running_mean.data,
        None if running_var is None else running_var.data,
        training,
        float(momentum),
        float(eps),
    )
