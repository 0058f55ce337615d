"""torch.nn.functional.instance_norm: torch's checks in torch's order, then one fused Function.

torch 2.13 runs instance norm as a batch norm of the input viewed as ``(1, N*C, *spatial)``, with
the weight, bias and running statistics repeated ``N`` times (the running statistics first cast
to the weight's dtype, or the input's, when theirs differs). Its errors speak of that batch norm:
sizes are ``N`` times the per-channel ones.
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from numbanorm.functions.instance_norm import (
    InstanceNorm,
    repeated_dtypes,
    update_running_stats,
)
from numbanorm.nn.functional.batch_norm import _EmptyBatchNorm
from numbanorm.nn.functional.checks import (
    as_float,
    as_tensor,
    check_argument_type,
    check_float_input,
    check_mixed_precision,
    check_same_device,
    check_same_dtype,
    no_dimension_1,
)
from numbanorm.tensor import Tensor
from numbanorm.types import size_str, torch_name


def verify_spatial_size(shape: tuple) -> None:
    """torch's ``_verify_spatial_size``: statistics need more than one spatial element."""
    if prod(shape[2:]) == 1:
        raise ValueError(
            f"Expected more than 1 spatial element when training, got input size {size_str(shape)}"
        )


def _with_dtype(tensor: Tensor | None, dtype: np.dtype | None) -> Tensor | None:
    """``tensor``, or a stand-in for its cast to ``dtype`` for the checks that read only
    dtypes."""
    if tensor is None or tensor.dtype == dtype:
        return tensor
    return Tensor(np.empty(0, dtype))


def _check_average_back(stat: Tensor, dtype: np.dtype, n: int, channels: int) -> None:
    """torch's ``stat.copy_(repeated.view(n, C).mean(0))`` after a batch with statistics."""
    size = n * stat.numel()
    if size != n * channels:
        raise RuntimeError(f"shape '[{n}, {channels}]' is invalid for input of size {size}")
    if dtype.kind not in "fc":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point "
            f"or complex dtype. Got: {torch_name(dtype)}"
        )
    if stat.ndim == 0:
        raise RuntimeError(f"output with shape [] doesn't match the broadcast shape [{channels}]")
    if stat.shape[0] != channels and channels != 1:
        raise RuntimeError(
            f"The size of tensor a ({stat.shape[0]}) must match the size of tensor b "
            f"({channels}) at non-singleton dimension 0"
        )


def _check_instance_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    use_input_stats: Any,
    momentum: Any,
    eps: Any,
) -> None:
    """torch 2.13's checks, in its order: Python's, the argument parser's, ATen's (CPU), then
    those of storing the running statistics back."""
    if use_input_stats:
        verify_spatial_size(input.shape)
    check_argument_type("instance_norm", "use_input_stats", 6, "bool", use_input_stats)
    check_argument_type("instance_norm", "momentum", 7, "float", momentum)
    check_argument_type("instance_norm", "eps", 8, "float", eps)
    if not use_input_stats and (running_mean is None or running_var is None):
        raise RuntimeError(
            "Expected running_mean and running_var to be defined when use_input_stats is false"
        )
    if input.ndim == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    if input.ndim == 1:
        raise no_dimension_1(input)
    n, channels = input.shape[:2]
    for p in (weight, bias, running_mean, running_var):
        if p is not None and p.ndim > 1:
            raise RuntimeError(
                "Number of dimensions of repeat dims can not be smaller than number of "
                "dimensions of tensor"
            )
    stats = (running_mean, running_var)
    dtypes = repeated_dtypes(
        input.dtype, *(None if t is None else t.dtype for t in (weight, *stats))
    )
    if input.numel() == 0:
        # torch's empty batch norm multiplies by weight[0] and adds bias[0] of the repeats.
        for p in (weight, bias):
            if p is not None and n * p.numel() == 0:
                raise IndexError(
                    "select(): index 0 out of range for tensor of size [0] at dimension 0"
                )
    else:
        for name, p in (("running_mean", running_mean), ("running_var", running_var)):
            _check_features(name, p, n, channels)
        _check_features("weight", weight, n, channels)
        _check_features("bias", bias, n, channels)
        if (running_mean is None) != (running_var is None):
            raise ValueError(
                "running_mean and running_var must either both be None or neither be None"
            )
        check_float_input("batch_norm", input)
        cast = [_with_dtype(t, dtype) for t, dtype in zip(stats, dtypes, strict=True)]
        mixed = check_mixed_precision(input, [weight, bias, *cast])
        read_order = [*cast, weight, bias] if use_input_stats else [weight, bias, *cast]
        if not mixed:
            for p in read_order:
                check_same_dtype(input, p)
        tensors = (input, running_mean, running_var, weight, bias)
        check_same_device(*tensors)
    if use_input_stats:
        for stat, dtype in zip(stats, dtypes, strict=True):
            if stat is not None:
                _check_average_back(stat, dtype, n, channels)


def _check_features(name: str, tensor: Tensor | None, n: int, channels: int) -> None:
    """The batch norm's check, on ``tensor`` repeated ``n`` times, against ``n * C`` channels."""
    if tensor is not None and n * tensor.numel() != n * channels:
        raise RuntimeError(
            f"{name} should contain {n * channels} elements not {n * tensor.numel()}"
        )


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Instance normalization per sample and channel (torch.nn.functional.instance_norm).

    With ``use_input_stats`` each sample's channels are normalized by their own statistics, and
    ``running_mean``/``running_var``, when given, are updated in place with the batch's average
    of them (the variances unbiased); otherwise the running statistics normalize.
    """
    input, running_mean, running_var, weight, bias = map(
        as_tensor, (input, running_mean, running_var, weight, bias)
    )
    _check_instance_norm(
        input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps
    )
    if input.numel() == 0:
        output = _EmptyBatchNorm.apply(input, weight, bias)
        if use_input_stats:
            stats = [None if t is None else t.data for t in (running_mean, running_var)]
            dtypes = repeated_dtypes(
                input.dtype, *(None if t is None else t.dtype for t in (weight, *stats))
            )
            update_running_stats(*stats, dtypes, as_float(momentum), None, input.shape[0])
        return output
    return InstanceNorm.apply(
        input,
        weight,
        bias,
        None if running_mean is None else running_mean.data,
        None if running_var is None else running_var.data,
        use_input_stats,
        as_float(momentum),
        as_float(eps),
    )
