"""torch.nn.functional.dropout."""

from __future__ import annotations

from typing import Any

from numbanorm.functions.dropout import Dropout
from numbanorm.nn.functional.checks import as_tensor
from numbanorm.tensor import Tensor


def dropout(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1 - p) when training
    (torch.nn.functional.dropout); the input itself when not training or when ``p`` is 0."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    input = as_tensor(input)
    if not training or p == 0:
        return input
    return Dropout.apply(input, float(p))
