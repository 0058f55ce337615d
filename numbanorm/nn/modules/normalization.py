"""LayerNorm, GroupNorm and RMSNorm (torch.nn.modules.normalization)."""

from __future__ import annotations

import numbers
from typing import Any

from numbanorm.dispatch import backend
from numbanorm.nn import functional as F
from numbanorm.nn.functional.checks import _type_name
from numbanorm.nn.modules.module import Module, assign_data
from numbanorm.nn.parameter import Parameter
from numbanorm.tensor import Tensor
from numbanorm.types import DEFAULT_DTYPE, as_dtype, device_type


def _new_parameter(shape: Any, value: float, device: Any, dtype: Any) -> Parameter:
    """A parameter filled with ``value``, refusing the sizes ``torch.empty`` refuses: a tuple
    (LayerNorm's, RMSNorm's) or a bare size (GroupNorm's), with the argument parser's message
    for each."""
    if not isinstance(shape, tuple):
        if not isinstance(shape, numbers.Integral) or isinstance(shape, bool):
            raise TypeError(
                "empty(): argument 'size' (position 1) must be tuple of ints, not "
                f"{_type_name(shape)}"
            )
        shape = (shape,)
    sizes = shape
    for pos, size in enumerate(sizes):
        if not isinstance(size, numbers.Integral) or isinstance(size, bool):
            raise TypeError(
                "empty(): argument 'size' (position 1) must be tuple of ints, but found element "
                f"of type {_type_name(size)} at pos {pos}"
            )
    if any(size < 0 for size in sizes):
        negative = next(size for size in sizes if size < 0)
        raise RuntimeError(
            f"Trying to create tensor with negative dimension {negative}: "
            f"[{', '.join(str(size) for size in sizes)}]"
        )
    dtype = DEFAULT_DTYPE if dtype is None else as_dtype(dtype)
    xp = backend(device_type(device))
    return Parameter(xp.full(tuple(int(size) for size in sizes), value, dtype=dtype))


def _register_affine(
    module: Module, shape: Any, affine: bool, bias: bool, device: Any, dtype: Any
) -> None:
    """``weight`` (ones) and ``bias`` (zeros) of ``shape`` as torch's norms register them: both
    None without ``affine``, the bias None with ``bias=False``."""
    module.register_parameter(
        "weight", _new_parameter(shape, 1.0, device, dtype) if affine else None
    )
    has_bias = affine and bias
    module.register_parameter(
        "bias", _new_parameter(shape, 0.0, device, dtype) if has_bias else None
    )


def _reset_affine(module: Module) -> None:
    """Weight to 1 and bias to 0, where the module has them."""
    if module.weight is not None:
        assign_data(module.weight, 1)
    if getattr(module, "bias", None) is not None:
        assign_data(module.bias, 0)


def _as_shape(normalized_shape: Any) -> tuple:
    """torch's ``normalized_shape`` attribute: an integer becomes a 1-tuple, anything else a
    tuple of its items as they are."""
    if isinstance(normalized_shape, numbers.Integral):
        return (normalized_shape,)
    return tuple(normalized_shape)


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` axes (torch.nn.LayerNorm):
    per-element ``weight`` (ones) and ``bias`` (zeros) when ``elementwise_affine``; statistics
    from the input in training and evaluation alike."""

    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _register_affine(self, self.normalized_shape, elementwise_affine, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight to 1 and bias to 0."""
        _reset_affine(self)

    def forward(self, input: Any) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class GroupNorm(Module):
    """Group normalization (torch.nn.GroupNorm): ``num_channels`` split in ``num_groups``
    groups, per-channel ``weight`` (ones) and ``bias`` (zeros) when ``affine``."""

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(
                f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})"
            )
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _register_affine(self, num_channels, affine, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight to 1 and bias to 0."""
        _reset_affine(self)

    def forward(self, input: Any) -> Tensor:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )


class RMSNorm(Module):
    """Root-mean-square normalization over the trailing ``normalized_shape`` axes
    (torch.nn.RMSNorm): per-element ``weight`` (ones) when ``elementwise_affine``, no bias;
    ``eps=None`` is the machine epsilon of the type torch computes in."""

    def __init__(
        self,
        normalized_shape: Any,
        eps: float | None = None,
        elementwise_affine: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        shape = self.normalized_shape
        weight = _new_parameter(shape, 1.0, device, dtype) if elementwise_affine else None
        self.register_parameter("weight", weight)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight to 1."""
        _reset_affine(self)

    def forward(self, x: Any) -> Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )
