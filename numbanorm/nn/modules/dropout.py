"""Dropout (torch.nn.modules.dropout)."""

from __future__ import annotations

from numbanorm.nn import functional as F
from numbanorm.nn.modules.module import Module
from numbanorm.tensor import Tensor


class Dropout(Module):
    """Zero elements with probability ``p`` and scale the rest by 1/(1 - p) while training."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
