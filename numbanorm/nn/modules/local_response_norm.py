"""LocalResponseNorm (torch.nn.modules.normalization)."""

from __future__ import annotations

from typing import Any

from numbanorm.nn import functional as F
from numbanorm.nn.modules.module import Module
from numbanorm.tensor import Tensor


class LocalResponseNorm(Module):
    """Local response normalization across channels: ``x / (k + alpha/size * sum of x**2 over
    size neighbouring channels)**beta``, on input of 3 or more dimensions. No parameters, no
    buffers: training and evaluation compute the same."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input: Any) -> Tensor:
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
