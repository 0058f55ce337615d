"""Dropout on the tape: a Bernoulli(1 - p) mask from the module generator, scaled by 1/(1 - p)."""

from __future__ import annotations

from typing import Any

import numpy as np

from numbanorm import random as _random
from numbanorm.autograd import Context, Function


class Dropout(Function):
    """x * mask / (1 - p); p == 1 zeroes everything (as torch). The gradient is grad * the same."""

    @staticmethod
    def forward(ctx: Context, x: Any, p: float) -> Any:
        if p >= 1:
            scaled = np.zeros(x.shape, x.dtype)
        else:
            keep = _random.default_generator().random(x.shape) >= p
            scaled = keep.astype(x.dtype) * np.asarray(1.0 / (1.0 - p), x.dtype)
        ctx.save_for_backward(scaled)
        return np.asarray(x * scaled)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        (scaled,) = ctx.saved_tensors
        return np.asarray(grad * scaled), None
