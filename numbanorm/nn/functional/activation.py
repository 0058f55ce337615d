"""torch.nn.functional's activations: relu, gelu, tanh."""

from __future__ import annotations

from typing import Any

from numbanorm.functions.activation import GELU, ReLU, Tanh
from numbanorm.nn.functional.checks import as_tensor
from numbanorm.tensor import Tensor


def relu(input: Any, inplace: bool = False) -> Tensor:
    """max(input, 0) (torch.nn.functional.relu); ``inplace`` is accepted, the result is new."""
    return ReLU.apply(as_tensor(input))


def gelu(input: Any, approximate: str = "none") -> Tensor:
    """input * Phi(input), or its tanh approximation (torch.nn.functional.gelu)."""
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    return GELU.apply(as_tensor(input), approximate)


def tanh(input: Any) -> Tensor:
    """Elementwise tanh (torch.nn.functional.tanh)."""
    return Tanh.apply(as_tensor(input))
