"""torch.nn.functional.batch_norm: torch's checks in torch's order, then one fused Function."""

from __future__ import annotations

from typing import Any

import numpy as np

from numbanorm.autograd import ALL_DEVICES, Context, Function
from numbanorm.dispatch import backend, device_of
from numbanorm.functions.batch_norm import BatchNorm
from numbanorm.nn.functional.checks import (
    as_float,
    as_tensor,
    check_argument_type,
    check_features,
    check_float_input,
    check_mixed_precision,
    check_same_device,
    check_same_dtype,
    no_dimension_1,
    verify_batch_size,
)
from numbanorm.tensor import Tensor


def _check_batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: Any,
    momentum: Any,
    eps: Any,
) -> None:
    """torch 2.13's checks, in its order: Python's, the argument parser's, then ATen's (CPU).

    An empty input passes once the arguments parse: torch returns before its other checks.
    """
    shape = input.shape
    if training:
        verify_batch_size(shape)
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    elif eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    check_argument_type("batch_norm", "training", 6, "bool", training)
    check_argument_type("batch_norm", "momentum", 7, "float", momentum)
    check_argument_type("batch_norm", "eps", 8, "float", eps)
    if input.numel() == 0:
        return
    ndim = len(shape)
    features = shape[1] if ndim > 1 else 0
    for name, buffer in (("running_mean", running_mean), ("running_var", running_var)):
        if buffer is None and not training:
            raise RuntimeError(f"{name} must be defined in evaluation mode")
        check_features(name, features, buffer)
    check_features("weight", features, weight)
    check_features("bias", features, bias)
    # Training asks for the size of dimension 1 first, eval only after the dtype dispatch.
    if training and ndim < 2:
        raise no_dimension_1(input)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither be None")
    check_float_input("batch_norm", input)
    mixed = check_mixed_precision(input, [weight, bias, running_mean, running_var])
    if ndim < 2:
        raise no_dimension_1(input)
    read_order = (
        (running_mean, running_var, weight, bias)
        if training
        else (weight, bias, running_mean, running_var)
    )
    for p in read_order:
        if p is None:
            continue
        if (p is running_mean or p is running_var) and p.ndim != 1:
            raise RuntimeError(f"TensorAccessor expected 1 dims but tensor has {p.ndim}")
        if not mixed:
            check_same_dtype(input, p)
    tensors = (input, running_mean, running_var, weight, bias)
    check_same_device(*tensors)


_CATEGORIES = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


class _EmptyBatchNorm(Function):
    """torch's batch norm of an empty input: ``input.clone() * weight[0] + bias[0]``.

    No statistics, no running-stat update, any input dtype; the weight and bias gradients are
    zeros of their own shapes. ``weight[0]``/``bias[0]`` are 0-d, so they change the output's
    dtype only when of a higher category (an integer input times a float weight is float).
    """

    devices = ALL_DEVICES

    @staticmethod
    def forward(ctx: Context, x: Any, weight: Any, bias: Any) -> Any:
        dtype = np.dtype(x.dtype)
        for p in (weight, bias):
            if p is not None and _CATEGORIES[p.dtype.kind] > _CATEGORIES[dtype.kind]:
                dtype = np.dtype(p.dtype)
        ctx.metas = [None if a is None else (a.shape, a.dtype) for a in (x, weight, bias)]
        return backend(device_of(x)).empty(x.shape, dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        xp = backend(device_of(grad))
        return tuple(
            xp.full(meta[0], 0, dtype=meta[1]) if needs else None
            for meta, needs in zip(ctx.metas, ctx.needs_input_grad, strict=True)
        )


def _empty_batch_norm(input: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    for p in (weight, bias):
        if p is not None and (p.ndim == 0 or p.shape[0] == 0):
            raise IndexError(
                f"select(): index 0 out of range for tensor of size {list(p.shape)} at dimension 0"
            )
    return _EmptyBatchNorm.apply(input, weight, bias)


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
    when given, are updated in place; otherwise the running statistics normalize. An empty input
    gives an empty output and leaves the running statistics alone, as in torch.
    """
    input, running_mean, running_var, weight, bias = map(
        as_tensor, (input, running_mean, running_var, weight, bias)
    )
    _check_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    if input.numel() == 0:
        return _empty_batch_norm(input, weight, bias)
    return BatchNorm.apply(
        input,
        weight,
        bias,
        None if running_mean is None else running_mean.data,
        None if running_var is None else running_var.data,
        training,
        as_float(momentum),
        as_float(eps),
    )
