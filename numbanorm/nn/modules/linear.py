"""Linear (torch.nn.modules.linear)."""

from __future__ import annotations

import math
from typing import Any

from numbanorm.dispatch import backend
from numbanorm.nn import functional as F
from numbanorm.nn import init
from numbanorm.nn.modules.module import Module
from numbanorm.nn.parameter import Parameter
from numbanorm.tensor import Tensor
from numbanorm.types import DEFAULT_DTYPE, as_dtype, device_type


class Linear(Module):
    """y = x @ weight.T + bias; weight (out_features, in_features), bias (out_features,)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        dtype = DEFAULT_DTYPE if dtype is None else as_dtype(dtype)
        xp = backend(device_type(device))
        self.weight = Parameter(xp.empty((out_features, in_features), dtype=dtype))
        if bias:
            self.bias = Parameter(xp.empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's initialization: kaiming_uniform_(weight, a=sqrt(5)), bias U(-1/sqrt(fan_in),
        1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
