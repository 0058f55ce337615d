"""Activations on the tape: ReLU, GELU (exact erf form and tanh approximation), Tanh."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function

_ERF = np.frompyfunc(math.erf, 1, 1)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_KAPPA = 0.044715


def _erf(x: Any) -> Any:
    """Elementwise erf in float64 (numpy has none)."""
    return _ERF(np.asarray(x, np.float64)).astype(np.float64)


class ReLU(Function):
    """max(x, 0); the gradient is 0 where x <= 0, as torch's."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        ctx.save_for_backward(x)
        return np.asarray(np.maximum(x, np.zeros((), x.dtype)))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (x,) = ctx.saved_tensors
        return np.where(x > 0, grad, np.zeros((), grad.dtype))


class GELU(Function):
    """x * Phi(x) (``approximate='none'``) or its tanh approximation (``'tanh'``)."""

    @staticmethod
    def forward(ctx: Context, x: Any, approximate: str) -> Any:
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        x64 = np.asarray(x, np.float64)
        if approximate == "tanh":
            y = 0.5 * x64 * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x64 + _KAPPA * x64**3)))
        else:
            y = 0.5 * x64 * (1.0 + _erf(x64 * _INV_SQRT_2))
        return np.asarray(y.astype(x.dtype))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        (x,) = ctx.saved_tensors
        x64 = np.asarray(x, np.float64)
        if ctx.approximate == "tanh":
            t = np.tanh(_SQRT_2_OVER_PI * (x64 + _KAPPA * x64**3))
            inner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _KAPPA * x64**2)
            d = 0.5 * (1.0 + t) + 0.5 * x64 * (1.0 - t * t) * inner
        else:
            cdf = 0.5 * (1.0 + _erf(x64 * _INV_SQRT_2))
            d = cdf + x64 * _INV_SQRT_2PI * np.exp(-0.5 * x64 * x64)
        return np.asarray(grad * d.astype(grad.dtype)), None


class Tanh(Function):
    """tanh(x); the gradient is grad * (1 - y**2)."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        y = np.asarray(np.tanh(x))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)
