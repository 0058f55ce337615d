"""Conv2d (torch.nn.modules.conv)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from numbanorm.dispatch import backend
from numbanorm.nn import init
from numbanorm.nn.functional.conv import conv2d, conv_padding
from numbanorm.nn.modules.module import Module
from numbanorm.nn.parameter import Parameter
from numbanorm.tensor import Tensor
from numbanorm.types import DEFAULT_DTYPE, as_dtype, device_type


def _pair(value: Any) -> tuple:
    """torch's ``_pair``: an iterable as a tuple, anything else twice."""
    return tuple(value) if isinstance(value, Iterable) else (value, value)


class Conv2d(Module):
    """2-D convolution: weight (out_channels, in_channels // groups, *kernel_size), bias
    (out_channels,); ``padding_mode`` other than ``'zeros'`` pads the input first, as torch."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        kernel_size = _pair(kernel_size)
        stride = _pair(stride)
        padding = padding if isinstance(padding, str) else _pair(padding)
        dilation = _pair(dilation)
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        valid_padding_strings = {"same", "valid"}
        if isinstance(padding, str):
            if padding not in valid_padding_strings:
                raise ValueError(
                    f"Invalid padding string {padding!r}, should be one of {valid_padding_strings}"
                )
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        valid_padding_modes = {"zeros", "reflect", "replicate", "circular"}
        if padding_mode not in valid_padding_modes:
            raise ValueError(
                f"padding_mode must be one of {valid_padding_modes}, but got "
                f"padding_mode='{padding_mode}'"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.transposed = False
        self.output_padding = (0, 0)
        self.groups = groups
        self.padding_mode = padding_mode
        self._reversed_padding_repeated_twice = _reversed_padding(padding, kernel_size, dilation)
        dtype = DEFAULT_DTYPE if dtype is None else as_dtype(dtype)
        xp = backend(device_type(device))
        shape = (out_channels, in_channels // groups, *kernel_size)
        self.weight = Parameter(xp.empty(shape, dtype=dtype))
        if bias:
            self.bias = Parameter(xp.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's initialization: kaiming_uniform_(weight, a=sqrt(5)), bias U(-1/sqrt(fan_in),
        1/sqrt(fan_in)) with fan_in = in_channels // groups * kh * kw."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        if self.padding_mode != "zeros":
            padded = conv_padding(input, self._reversed_padding_repeated_twice, self.padding_mode)
            return conv2d(
                padded, self.weight, self.bias, self.stride, (0, 0), self.dilation, self.groups
            )
        return conv2d(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )

    def extra_repr(self) -> str:
        s = "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
        if self.padding != (0,) * len(self.padding):
            s += ", padding={padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += ", dilation={dilation}"
        if self.groups != 1:
            s += ", groups={groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += ", padding_mode={padding_mode}"
        return s.format(**self.__dict__)


def _reversed_padding(padding: Any, kernel_size: tuple, dilation: tuple) -> tuple:
    """The padding F.pad takes, last axis first: ``(left, right, top, bottom)``; for ``'same'``
    the extra element of an even kernel goes after, as torch's."""
    if not isinstance(padding, str):
        return tuple(p for p in reversed(padding) for _ in range(2))
    reversed_padding = [0, 0] * len(kernel_size)
    if padding == "same":
        for d, k, i in zip(
            dilation, kernel_size, range(len(kernel_size) - 1, -1, -1), strict=False
        ):
            total = d * (k - 1)
            reversed_padding[2 * i] = total // 2
            reversed_padding[2 * i + 1] = total - total // 2
    return tuple(reversed_padding)
