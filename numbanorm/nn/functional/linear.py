"""torch.nn.functional.linear."""

from __future__ import annotations

from typing import Any

from numbanorm.functions.linear import Linear
from numbanorm.nn.functional.checks import as_tensor
from numbanorm.tensor import Tensor


def linear(input: Any, weight: Any, bias: Any = None) -> Tensor:
    """y = input @ weight.T + bias over any leading dimensions (torch.nn.functional.linear)."""
    input, weight, bias = map(as_tensor, (input, weight, bias))
    return Linear.apply(input, weight, bias)
