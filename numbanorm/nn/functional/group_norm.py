"""torch.nn.functional.group_norm: torch's checks in torch's order, then one fused Function."""

from __future__ import annotations

from typing import Any

from numbanorm.functions.group_norm import GroupNorm
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
from numbanorm.nn.functional.layer_norm import _is_int, _shape
from numbanorm.tensor import Tensor


def _verify_group_batch_size(input: Tensor, num_groups: Any) -> None:
    """torch's Python checks, run before its argument parser sees ``num_groups``: at least two
    dimensions, and ``_verify_batch_size`` on ``[N*C // num_groups, num_groups, *spatial]``
    (computed with ``num_groups`` as given, so a zero or a string fails as in torch)."""
    if input.ndim < 2:
        raise RuntimeError(
            f"Expected at least 2 dimensions for input tensor but received {input.ndim}"
        )
    groups = num_groups.item() if isinstance(num_groups, Tensor) else num_groups
    size = [input.shape[0] * input.shape[1] // groups, groups, *input.shape[2:]]
    size_prods = size[0]
    for extent in size[2:]:
        size_prods *= extent
    if size_prods == 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {size}"
        )


def _check_group_norm(
    input: Tensor, num_groups: int, weight: Tensor | None, bias: Tensor | None
) -> None:
    """ATen's checks (CPU), in its order."""
    if num_groups <= 0:
        raise RuntimeError(f"Expected num groups to be greater than 0, got {num_groups}")
    channels = input.shape[1]
    if channels % num_groups:
        raise RuntimeError(
            "Expected number of channels in input to be divisible by num_groups, but got input "
            f"of shape {_shape(input.shape)} and num_groups={num_groups}"
        )
    # torch's bias message prints the weight's shape ([0] without a weight), not the bias's.
    weight_shape = _shape(weight.shape) if weight is not None else "[0]"
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and (p.ndim != 1 or p.numel() != channels):
            raise RuntimeError(
                f"Expected {name} to be a vector of size equal to the number of channels in "
                f"input, but got {name} of shape {weight_shape} and input of shape "
                f"{_shape(input.shape)}"
            )
    mixed = check_mixed_precision(input, [weight, bias])
    check_float_input("GroupNormKernelImpl", input)
    if not mixed:
        check_same_dtype(input, weight)
        check_same_dtype(input, bias)
    check_same_device(input, weight, bias)


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Group normalization (torch.nn.functional.group_norm): statistics per sample over each of
    ``num_groups`` groups of channels, per-channel ``weight`` and ``bias``. The batch-size check
    runs whether or not the module trains, as in torch."""
    input, weight, bias = map(as_tensor, (input, weight, bias))
    _verify_group_batch_size(input, num_groups)
    if not _is_int(num_groups):
        raise TypeError(
            "group_norm(): argument 'num_groups' (position 2) must be int, not "
            f"{_type_name(num_groups)}"
        )
    check_argument_type("group_norm", "eps", 5, "float", eps)
    groups = int(num_groups.item() if isinstance(num_groups, Tensor) else num_groups)
    _check_group_norm(input, groups, weight, bias)
    return GroupNorm.apply(input, weight, bias, groups, as_float(eps))
