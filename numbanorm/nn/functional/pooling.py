"""torch.nn.functional's 2-D pooling: max_pool2d (and max_pool2d_with_indices), avg_pool2d and
adaptive_avg_pool2d, with torch 2.13's checks in its order, then one Function each.

torch's argument parser reads a call in two passes: first whether each argument has a type it
takes (an int list takes an int, or a list or tuple whose *first* element is one), then the
elements of the lists. Its messages name an argument's position only when the argument came by
position; ``max_pool2d`` and ``adaptive_avg_pool2d`` reach it through Python functions that pass
everything by position, ``avg_pool2d`` is the parser itself. Then the ops' own checks: list
lengths, each value narrowed to a C ``int``, the output size (``pooling_output_shape``), then
the shape checks (``pool2d_shape_check``), and last the dtypes the CPU kernels take.
"""

from __future__ import annotations

import functools
import inspect
import operator
from math import prod
from typing import Any

import numpy as np

from numbanorm.functions.pooling import AdaptiveAvgPool2d, AvgPool2d, max_pool2d_and_indices
from numbanorm.nn.functional.checks import _type_name, as_tensor
from numbanorm.tensor import Tensor
from numbanorm.types import torch_name

_MAX_POOL_DTYPES = frozenset(["float16", "float32", "float64", "int8", "int16", "int32", "int64"])
_MAX_POOL_DTYPES |= {"uint8"}
_AVG_POOL_DTYPES = frozenset(["float16", "float32", "float64", "int64"])
_FLOAT_DTYPES = frozenset(["float16", "float32", "float64"])


def _shape(shape: tuple) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _is_int(value: Any) -> bool:
    """What torch's parser takes as an int: not a bool; an int, a numpy integer, a one-element
    integer tensor, or anything with ``__index__``."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, Tensor):
        return value.numel() == 1 and value.dtype.kind in "iub"
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _as_int(value: Any) -> int:
    return int(value.item()) if isinstance(value, Tensor) else operator.index(value)


def _parse(function: str, positional: int, arguments: list[tuple[str, str, Any]]) -> list[Any]:
    """torch's argument parser on ``arguments``, ``(name, kind, value)`` in the signature's order
    after ``input``; the first ``positional`` arguments (``input`` counted) came by position.
    Kinds: ``ints`` (``int[2]``), ``ints?`` (None for an omitted stride), ``bool``, ``int?``.
    Returns the values, int lists as lists."""
    for position, (name, kind, value) in enumerate(arguments, start=2):
        where = f"{function}(): argument '{name}'"
        if position <= positional:
            where += f" (position {position})"
        if kind.startswith("ints"):
            if (value is None and kind == "ints?") or _is_int(value):
                continue
            if isinstance(value, (list, tuple)):
                if not value or _is_int(value[0]):
                    continue
                if position <= positional:
                    raise TypeError(
                        f"{where} must be tuple of ints, but found element of type "
                        f"{_type_name(value[0])} at pos 0"
                    )
            raise TypeError(f"{where} must be tuple of ints, not {_type_name(value)}")
        if kind == "bool" and not isinstance(value, bool):
            raise TypeError(f"{where} must be bool, not {_type_name(value)}")
        if kind == "int?" and value is not None and not _is_int(value):
            raise TypeError(f"{where} must be int, not {_type_name(value)}")
    return [_unpack(function, name, kind, value) for name, kind, value in arguments]


def _unpack(function: str, name: str, kind: str, value: Any) -> Any:
    """The parser's second pass: an int list's elements, an int repeated for ``int[2]``."""
    if not kind.startswith("ints"):
        return value if value is None or kind == "bool" else _as_int(value)
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        return [_as_int(value)] * 2
    for pos, item in enumerate(value, start=1):
        if not _is_int(item):
            raise TypeError(
                f"{function}(): argument '{name}' failed to unpack the object at pos {pos} with "
                f'error "type must be tuple of ints,but got {_type_name(item)}"'
            )
    return [_as_int(item) for item in value]


def _narrow(value: int) -> int:
    """torch's ``safe_downcast<int, int64_t>``."""
    if not -(2**31) <= value < 2**31:
        raise RuntimeError("value cannot be converted to type int without overflow")
    return value


def _pair(function: str, name: str, values: list[int], omissible: bool = False) -> tuple:
    """A one- or two-element list as ``(h, w)``, each narrowed to a C int; an omitted (empty)
    stride is ``()``."""
    if not (len(values) in (1, 2) or (omissible and not values)):
        rule = "either be omitted, a single int," if omissible else "either be a single int,"
        if name == "dilation":
            rule = "be either a single int,"
        raise RuntimeError(f"{function}: {name} must {rule} or a tuple of two ints")
    if not values:
        return ()
    first = _narrow(values[0])
    return first, first if len(values) == 1 else _narrow(values[1])


def _trunc_div(a: int, b: int) -> int:
    """``a / b`` rounded toward zero, as C++ divides."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _output_size(
    size: int, kernel: int, pad: int, stride: int, dilation: int, ceil_mode: bool
) -> int:
    """torch's ``pooling_output_shape`` (its checks, then the size; ``ceil_mode`` drops a last
    window that would start in the padding)."""
    if stride == 0:
        raise RuntimeError("stride should not be zero")
    if pad < 0:
        raise RuntimeError(f"pad must be non-negative, but got pad: {pad}")
    if pad > _trunc_div((kernel - 1) * dilation + 1, 2):
        raise RuntimeError(
            f"pad should be at most half of effective kernel size, but got pad={pad}, "
            f"kernel_size={kernel} and dilation={dilation}"
        )
    numerator = size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _geometry(
    shape: tuple,
    kernel: tuple,
    stride: tuple,
    padding: tuple,
    dilation: tuple,
    ceil_mode: bool,
) -> tuple[tuple, tuple]:
    """The output size, then torch's ``pool2d_shape_check``; returns the kernels' geometry
    ``(kh, kw, sh, sw, ph, pw, dh, dw)`` and the output's ``(ho, wo)``."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride or kernel, padding, dilation
    ho = _output_size(shape[-2], kh, ph, sh, dh, ceil_mode)
    wo = _output_size(shape[-1], kw, pw, sw, dw, ceil_mode)
    if kw <= 0 or kh <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {kh} kW: {kw}")
    if sw <= 0 or sh <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got dH: {sh} dW: {sw}")
    if dh <= 0 or dw <= 0:
        raise RuntimeError(
            f"dilation should be greater than zero, but got dilationH: {dh} dilationW: {dw}"
        )
    ndim = len(shape)
    valid = shape[1] != 0 and shape[2] != 0
    if not ((ndim == 3 and shape[0] != 0 and valid) or (ndim == 4 and valid and shape[3] != 0)):
        raise RuntimeError(
            "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
            f"but got:{_shape(shape)}"
        )
    if kw // 2 < pw or kh // 2 < ph:
        raise RuntimeError(
            "pad should be smaller than or equal to half of kernel size, but got "
            f"padW = {pw}, padH = {ph}, kW = {kw}, kH = {kh}"
        )
    if wo < 1 or ho < 1:
        c, h, w = shape[-3:]
        raise RuntimeError(
            f"Given input size: ({c}x{h}x{w}). Calculated output size: ({c}x{ho}x{wo}). "
            "Output size is too small"
        )
    return (kh, kw, sh, sw, ph, pw, dh, dw), (ho, wo)


def _check_dtype(name: str, input: Tensor, supported: frozenset) -> None:
    if input.dtype.name not in supported:
        raise NotImplementedError(f"\"{name}\" not implemented for '{torch_name(input.dtype)}'")


def _is_channels_last_3d(a: Any) -> bool:
    """Whether torch would suggest channels_last_3d for a 5-D array with these strides (c10's
    ``is_channels_last_strides_3d_s5``)."""
    if a.ndim != 5 or a.strides[1] == 0:
        return False
    strides = [s // a.itemsize for s in a.strides]
    smallest = 0
    for d in (1, 4, 3, 2, 0):
        if a.shape[d] == 0 or strides[d] < smallest:
            return False
        if d == 0 and smallest == strides[1]:
            return False
        smallest = strides[d] * a.shape[d] if a.shape[d] > 1 else strides[d]
    return True


def _max_pool(
    function: str,
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: Any,
) -> tuple[Tensor, Tensor]:
    input = as_tensor(input)
    kernel_size, stride, padding, dilation, ceil_mode = _parse(
        function,
        6,
        [
            ("kernel_size", "ints", kernel_size),
            ("stride", "ints", [] if stride is None else stride),
            ("padding", "ints", padding),
            ("dilation", "ints", dilation),
            ("ceil_mode", "bool", ceil_mode),
        ],
    )
    kernel = _pair("max_pool2d", "kernel_size", kernel_size)
    stride = _pair("max_pool2d", "stride", stride, omissible=True)
    padding = _pair("max_pool2d", "padding", padding)
    dilation = _pair("max_pool2d", "dilation", dilation)
    if _is_channels_last_3d(input.data):
        raise RuntimeError("Unsupported memory format. Supports only ChannelsLast, Contiguous")
    if input.ndim not in (3, 4):
        raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
    geometry, size = _geometry(input.shape, kernel, stride, padding, dilation, ceil_mode)
    _check_dtype("max_pool2d", input, _MAX_POOL_DTYPES)
    return max_pool2d_and_indices(input, geometry, size)


def max_pool2d_with_indices(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> tuple[Tensor, Tensor]:
    """The maxima of 2-D windows and where they are (torch.nn.functional.max_pool2d_with_indices):
    ``input`` (N, C, H, W) or (C, H, W); indices are int64 positions ``h * W + w`` in each
    plane."""
    return _max_pool(
        "max_pool2d_with_indices", input, kernel_size, stride, padding, dilation, ceil_mode
    )


def max_pool2d(
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """2-D max pooling (torch.nn.functional.max_pool2d): ``input`` (N, C, H, W) or (C, H, W);
    padding counts as -inf; with ``return_indices`` also the maxima's indices."""
    if return_indices:
        return max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_pool("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)[0]


def _counting_positional(function: Any) -> Any:
    """``function(positional, *args, **kwargs)`` called as ``function(*args, **kwargs)``, with
    ``positional`` the number of arguments that came by position (the parser's messages say
    their positions); the public signature leaves ``positional`` out."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(len(args), *args, **kwargs)

    parameters = list(inspect.signature(function).parameters.values())[1:]
    wrapper.__signature__ = inspect.signature(function).replace(parameters=parameters)
    return wrapper


@_counting_positional
def avg_pool2d(
    positional: int,
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """2-D average pooling (torch.nn.functional.avg_pool2d): ``input`` (N, C, H, W) or
    (C, H, W); int64 input divides rounding toward zero."""
    input = as_tensor(input)
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor = _parse(
        "avg_pool2d",
        positional,
        [
            ("kernel_size", "ints", kernel_size),
            ("stride", "ints?", stride),
            ("padding", "ints", padding),
            ("ceil_mode", "bool", ceil_mode),
            ("count_include_pad", "bool", count_include_pad),
            ("divisor_override", "int?", divisor_override),
        ],
    )
    kernel = _pair("avg_pool2d", "kernel_size", kernel_size)
    stride = _pair("avg_pool2d", "stride", stride, omissible=True)
    padding = _pair("avg_pool2d", "padding", padding)
    if divisor == 0:
        raise RuntimeError("divisor must be not zero")
    if input.ndim < 3:  # torch reads input.size(-3)
        if input.ndim == 0:
            raise IndexError("Dimension specified as -3 but tensor has no dimensions")
        rank = input.ndim
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-rank}, {rank - 1}], but got -3)"
        )
    geometry, size = _geometry(input.shape, kernel, stride, padding, (1, 1), ceil_mode)
    _check_dtype("avg_pool2d", input, _AVG_POOL_DTYPES)
    return AvgPool2d.apply(input, geometry[:6], size, count_include_pad, divisor or 0)


def _list_with_default(out_size: Any, defaults: tuple) -> Any:
    """torch.nn.modules.utils._list_with_default: None in ``out_size`` takes the input's size."""
    if isinstance(out_size, int):
        return out_size
    if len(defaults) <= len(out_size):
        raise ValueError(f"Input dimension should be at least {len(out_size) + 1}")
    return [
        v if v is not None else d
        for v, d in zip(out_size, defaults[-len(out_size) :], strict=False)
    ]


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Tensor:
    """2-D adaptive average pooling (torch.nn.functional.adaptive_avg_pool2d): ``output_size``
    an int or a pair (None keeps the input's size); ``input`` (N, C, H, W) or (C, H, W), or, for
    an output of 1x1, any input of two or more dimensions (torch takes the mean there)."""
    input = as_tensor(input)
    output_size = _list_with_default(output_size, input.shape)
    (size,) = _parse("adaptive_avg_pool2d", 2, [("output_size", "ints", output_size)])
    if len(size) != 2:
        raise RuntimeError("adaptive_avg_pool2d: output_size must be 2")
    if size[0] < 0 or size[1] < 0:
        raise RuntimeError(
            "adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 "
            f"but received {{{size[0]}, {size[1]}}}"
        )
    if size == [1, 1]:
        if input.dtype.kind not in "fc":
            raise RuntimeError(
                "mean(): could not infer output dtype. Input dtype must be either a floating "
                f"point or complex dtype. Got: {torch_name(input.dtype)}"
            )
        if input.ndim < 2:
            raise IndexError(
                "Dimension out of range (expected to be in range of [-1, 0], but got -2)"
            )
        _check_dtype("adaptive_avg_pool2d", input, _FLOAT_DTYPES)
        return AdaptiveAvgPool2d.apply(input, (1, 1))
    ndim = input.ndim
    if ndim not in (3, 4):
        raise RuntimeError(
            f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {_shape(input.shape)}"
        )
    for i in (-2, -1):
        if input.shape[i] == 0:
            raise RuntimeError(
                "adaptive_avg_pool2d(): Expected input to have non-zero size for non-batch "
                f"dimensions, but input has sizes {_shape(input.shape)} with dimension {i + ndim} "
                "being empty"
            )
    shape = (*input.shape[:-2], *size)
    if prod(shape) == 0 and input.dtype.name not in _FLOAT_DTYPES:
        return Tensor(np.empty(shape, input.dtype))  # torch's kernel returns before its dispatch
    _check_dtype("adaptive_avg_pool2d", input, _FLOAT_DTYPES)
    return AdaptiveAvgPool2d.apply(input, tuple(size))
