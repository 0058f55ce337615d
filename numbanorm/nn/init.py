"""Parameter initializations (torch.nn.init): torch's names, formulas, gains and errors.

Each function fills a Tensor's data in place and returns the Tensor. Random ones draw from
``generator`` when given (a ``numpy.random.Generator``), else from the module generator
(``numbanorm.random.default_generator()``, reseeded by ``numbanorm.manual_seed``): the same seed
gives the same numbers, but not torch's numbers (same distributions, different stream).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from numbanorm import random as _random
from numbanorm.autograd import no_grad
from numbanorm.tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

_LINEAR_FNS = [
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
]


def calculate_gain(nonlinearity: str, param: int | float | None = None) -> float:
    """The recommended gain for ``nonlinearity`` (torch.nn.init.calculate_gain)."""
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif (not isinstance(param, bool) and isinstance(param, int)) or isinstance(param, float):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _shape(tensor: Any) -> tuple[int, ...]:
    return tuple(tensor.data.shape if isinstance(tensor, Tensor) else np.shape(tensor))


def _calculate_fan_in_and_fan_out(tensor: Any) -> tuple[int, int]:
    shape = _shape(tensor)
    if len(shape) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )
    receptive_field_size = 1
    for s in shape[2:]:
        receptive_field_size *= s
    return shape[1] * receptive_field_size, shape[0] * receptive_field_size


def _calculate_correct_fan(tensor: Any, mode: str) -> int:
    mode = mode.lower()
    valid_modes = ["fan_in", "fan_out"]
    if mode not in valid_modes:
        raise ValueError(f"Mode {mode} not supported, please use one of {valid_modes}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _generator(generator: np.random.Generator | None) -> np.random.Generator:
    return _random.default_generator() if generator is None else generator


def _fill(tensor: Any, values: Any) -> Any:
    """Write ``values`` into ``tensor``'s array in place (cast to its dtype); return ``tensor``."""
    with no_grad():
        data = tensor.data if isinstance(tensor, Tensor) else tensor
        data[...] = np.asarray(values, dtype=np.float64).astype(data.dtype)
    return tensor


def uniform_(
    tensor: Any, a: float = 0.0, b: float = 1.0, generator: np.random.Generator | None = None
) -> Any:
    """Fill with values drawn from U(a, b)."""
    return _fill(tensor, _generator(generator).uniform(a, b, _shape(tensor)))


def normal_(
    tensor: Any,
    mean: float = 0.0,
    std: float = 1.0,
    generator: np.random.Generator | None = None,
) -> Any:
    """Fill with values drawn from N(mean, std**2)."""
    return _fill(tensor, _generator(generator).normal(mean, std, _shape(tensor)))


def constant_(tensor: Any, val: float) -> Any:
    """Fill with ``val``."""
    return _fill(tensor, np.full(_shape(tensor), val, dtype=np.float64))


def ones_(tensor: Any) -> Any:
    """Fill with the scalar value 1."""
    return constant_(tensor, 1.0)


def zeros_(tensor: Any) -> Any:
    """Fill with the scalar value 0."""
    return constant_(tensor, 0.0)


def xavier_uniform_(
    tensor: Any, gain: float = 1.0, generator: np.random.Generator | None = None
) -> Any:
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(
    tensor: Any, gain: float = 1.0, generator: np.random.Generator | None = None
) -> Any:
    """Glorot normal: N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(
    tensor: Any,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Any:
    """He uniform: U(-bound, bound) with bound = gain * sqrt(3 / fan_mode)."""
    if 0 in _shape(tensor):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    std = gain / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Any,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Any:
    """He normal: N(0, std**2) with std = gain / sqrt(fan_mode)."""
    if 0 in _shape(tensor):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    std = gain / math.sqrt(fan)
    return normal_(tensor, 0, std, generator)
