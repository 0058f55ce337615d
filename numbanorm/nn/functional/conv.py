"""torch.nn.functional.conv2d: torch 2.13's checks in its order, then one fused Function.

torch reaches a convolution by two roads: a numeric ``padding`` checks the bias's dtype first,
a string one (``'same'``, ``'valid'``) does not, and ``'same'`` with an even kernel pads the
input before the convolution's own checks, which then speak of the padded size. The checks
after the shape checks are those of torch's CPU kernels: oneDNN's for float32 input, and for
float16 input on processors with AVX512-FP16 or AMX-FP16 (torch's ``mkldnn_fp16_device_check``),
the reference kernel's for the others.
"""

from __future__ import annotations

from functools import cache
from math import prod
from typing import Any

import numpy as np

from numbanorm.functions.conv import Conv2d, Pad2d
from numbanorm.nn.functional.checks import as_tensor, check_same_device
from numbanorm.tensor import _C_NAMES, Tensor
from numbanorm.types import torch_name


@cache
def _onednn_dtypes() -> tuple[np.dtype, ...]:
    """The input dtypes torch convolves with oneDNN on this processor (llvmlite, numba's own
    dependency, reads the host's features; imported only for a convolution)."""
    from llvmlite.binding import get_host_cpu_features

    features = get_host_cpu_features()
    if features.get("avx512fp16") or features.get("amx-fp16"):
        return (np.dtype(np.float32), np.dtype(np.float16))
    return (np.dtype(np.float32),)


def _shape(shape: tuple) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _c_name(dtype: np.dtype) -> str:
    return _C_NAMES.get(dtype.name, dtype.name)


def _tensor_type(dtype: np.dtype) -> str:
    return f"torch.{torch_name(dtype)}Tensor"


def int_list(function: str, name: str, value: Any, size: int = 2) -> list[int]:
    """torch's argument parser on a ``SymInt[size]`` argument: an int repeats ``size`` times,
    a sequence of ints is taken as it is."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return [int(value)] * size
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in value
    ):
        return [int(v) for v in value]
    raise TypeError(
        f"{function}(): argument '{name}' must be tuple of ints, not {type(value).__name__}"
    )


def _check_int(function: str, name: str, value: Any) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    raise TypeError(f"{function}(): argument '{name}' must be int, not {type(value).__name__}")


def _expand(name: str, values: list[int], dim: int) -> list[int]:
    """torch's ``expand_param_if_needed``: one value serves every spatial dimension."""
    if len(values) == 1:
        return values * dim
    if len(values) != dim:
        raise RuntimeError(
            f"expected {name} to be a single integer value or a list of {dim} values to match "
            f"the convolution dimensions, but got {name}={_shape(values)}"
        )
    return values


def _trunc_half(value: int) -> int:
    """``value / 2`` rounded toward zero, as C++ divides."""
    return -(-value // 2) if value < 0 else value // 2


def _check_convolution(
    shape: tuple,
    dtype: np.dtype,
    weight: Tensor,
    bias: Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    string_padding: bool,
) -> tuple[list[int], list[int], list[int]]:
    """torch's ``_convolution`` on a batched input of ``shape``: parameter expansion, the shape
    checks, then the CPU kernels' own. Returns the expanded stride, padding and dilation."""
    if weight.ndim <= 2:
        raise RuntimeError("weight should have at least three dimensions")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    dim = weight.ndim - 2
    stride = _expand("stride", stride, dim)
    padding = _expand("padding", padding, dim)
    dilation = _expand("dilation", dilation, dim)
    _expand("output_padding", [0, 0], dim)
    if any(p < 0 for p in padding):
        raise RuntimeError("negative padding is not supported")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d < 0 for d in dilation):
        raise RuntimeError("dilation should be greater than zero")
    wshape = weight.shape
    if wshape[0] < groups:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be at least {groups} at dimension 0, "
            f"but got weight of size {_shape(wshape)} instead"
        )
    if wshape[0] % groups:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
            f"but got weight of size [{_shape(wshape)}] instead"
        )
    if shape[1] != wshape[1] * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {_shape(wshape)}, expected input"
            f"{_shape(shape)} to have {wshape[1] * groups} channels, but got {shape[1]} "
            "channels instead"
        )
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != wshape[0]):
        raise RuntimeError(
            f"Given weight of size {_shape(wshape)}, expected bias to be 1-dimensional with "
            f"{wshape[0]} elements, but got bias of size {_shape(bias.shape)} instead"
        )
    padded = [shape[i + 2] + 2 * padding[i] for i in range(2)]
    effective = [dilation[i] * (wshape[i + 2] - 1) + 1 for i in range(2)]
    if any(p < k for p, k in zip(padded, effective, strict=True)):
        raise RuntimeError(
            f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). "
            f"Kernel size: ({' x '.join(map(str, effective))}). Kernel size can't be greater "
            "than actual input size"
        )
    if prod(shape) > 0:  # torch's road for an empty input skips the kernels' checks
        _check_kernel(dtype, weight, bias, dilation, string_padding)
    return stride, padding, dilation


def _check_kernel(
    dtype: np.dtype, weight: Tensor, bias: Tensor | None, dilation: list[int], string_padding: bool
) -> None:
    """The checks of the CPU kernel torch picks: oneDNN for the dtypes it takes, the reference
    kernels (a dilated variant when a dilation is not 1) for the others."""
    kh, kw = weight.shape[2:]
    if dtype in _onednn_dtypes():
        for name, parameter in (("weight", weight), ("bias", bias if string_padding else None)):
            if parameter is not None and parameter.dtype != dtype:
                raise RuntimeError(
                    f"Input type ({_tensor_type(dtype)}) and {name} type "
                    f"({_tensor_type(parameter.dtype)}) should be the same or input should be a "
                    f"MKLDNN tensor and {name} is a dense tensor"
                )
        if any(d <= 0 for d in dilation):
            raise RuntimeError("non-positive dilation is not supported")
        if kh == 0 or kw == 0:
            raise RuntimeError(
                "could not create a primitive descriptor for the convolution forward propagation "
                "primitive. Run workload with environment variable ONEDNN_VERBOSE=all to get "
                "additional diagnostic information."
            )
        return
    if any(d != 1 for d in dilation):
        kernel = "slow_conv_dilated<>"
        if kh <= 0 or kw <= 0:
            raise RuntimeError(f"kernel size should be greater than zero, but got [{kh}, {kw}]")
        if any(d <= 0 for d in dilation):
            raise RuntimeError(f"dilation should be greater than zero, but got {_shape(dilation)}")
    else:
        kernel = "slow_conv2d_cpu"
        if kh <= 0 or kw <= 0:
            raise RuntimeError(
                f"kernel size should be greater than zero, but got kernel_height: {kh} "
                f"kernel_width: {kw}"
            )
    if dtype.kind not in "fiu":
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{torch_name(dtype)}'")
    if weight.dtype != dtype:
        raise RuntimeError(
            f"expected scalar type {torch_name(dtype)} but found {torch_name(weight.dtype)}"
        )


def _same_padding(
    shape: tuple, weight: Tensor, stride: list[int], dilation: list[int], groups: int
) -> tuple[list[int], list[int]]:
    """torch's ``convolution_same`` checks; the (before, after) padding of each spatial axis."""
    if weight.ndim <= 2:
        raise RuntimeError("weight should have at least three dimensions")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    k = weight.ndim
    if k != len(shape):
        raise RuntimeError(
            f"Expected {k}-dimensional input for {k}-dimensional weight{_shape(weight.shape)}, "
            f"but got {len(shape)}-dimensional input of size {_shape(shape)} instead"
        )
    for name, values in (("stride", stride), ("dilation", dilation)):
        if len(values) not in (1, 2):
            raise RuntimeError(f"{name} cannot broadcast to 2 dimensions")
    if any(s != 1 for s in stride):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    before, after = [], []
    for i in range(2):
        total = (dilation[0] if len(dilation) == 1 else dilation[i]) * (weight.shape[i + 2] - 1)
        before.append(_trunc_half(total))
        after.append(total - before[-1])
    return before, after


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (torch.nn.functional.conv2d): ``input`` (N, C, H, W) or (C, H, W),
    ``weight`` (O, C/groups, kh, kw); ``padding`` an int, a pair, ``'valid'`` or ``'same'``."""
    input, weight, bias = map(as_tensor, (input, weight, bias))
    string_padding = isinstance(padding, str)
    stride = int_list("conv2d", "stride", stride)
    dilation = int_list("conv2d", "dilation", dilation)
    groups = _check_int("conv2d", "groups", groups)
    if not string_padding:
        padding = int_list("conv2d", "padding", padding)
        if bias is not None and bias.dtype != input.dtype:
            raise RuntimeError(
                f"Input type ({_c_name(input.dtype)}) and bias type ({_c_name(bias.dtype)}) "
                "should be the same"
            )
    if input.ndim not in (3, 4):
        raise RuntimeError(
            "Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: "
            f"{_shape(input.shape)}"
        )
    shape = input.shape if input.ndim == 4 else (1, *input.shape)
    extra = [0, 0]
    if padding == "same":
        before, after = _same_padding(shape, weight, stride, dilation, groups)
        extra = [after[i] - before[i] for i in range(2)]
        shape = (*shape[:2], shape[2] + extra[0], shape[3] + extra[1])
        padding = before
    elif padding == "valid":
        padding = [0]
    elif string_padding:
        raise RuntimeError(f"Invalid padding string: '{padding}'")
    stride, padding, dilation = _check_convolution(
        shape, input.dtype, weight, bias, stride, padding, dilation, groups, string_padding
    )
    check_same_device(input, weight, bias)
    if bias is not None and bias.dtype != input.dtype:
        bias = bias.to(input.dtype)  # torch's reference kernel converts it
    pads = (padding[0], padding[0] + extra[0], padding[1], padding[1] + extra[1])
    return Conv2d.apply(input, weight, bias, tuple(stride), pads, tuple(dilation), groups)


def conv_padding(input: Tensor, pad: tuple, mode: str) -> Tensor:
    """``F.pad(input, pad, mode)`` for Conv2d's ``reflect``, ``replicate`` and ``circular``
    padding modes, with F.pad's checks; ``pad`` is ``(left, right, top, bottom)``."""
    input = as_tensor(input)
    ndim = input.ndim
    if len(pad) > 2 * ndim:
        raise RuntimeError(
            "Padding length should be less than or equal to two times the input dimension but "
            f"got padding length {len(pad)} and input of dimension {ndim}"
        )
    if ndim not in (3, 4):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {ndim}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)"
        )
    shape = input.shape
    if mode == "circular":
        sizes = (shape[-1], shape[-1], shape[-2], shape[-2])
        if any(p > size for p, size in zip(pad, sizes, strict=True)):
            raise RuntimeError("Padding value causes wrapping around more than once.")
    elif 0 in shape[ndim - 3 :]:
        raise RuntimeError(
            "Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other non-zero "
            f"dimensions for input, but got: {_shape(shape)}"
        )
    elif mode == "reflect":
        for argument, dim, pair in ((4, ndim - 1, pad[:2]), (6, ndim - 2, pad[2:])):
            if pair[0] >= shape[dim] or pair[1] >= shape[dim]:
                raise RuntimeError(
                    f"Argument #{argument}: Padding size should be less than the corresponding "
                    f"input dimension, but got: padding ({pair[0]}, {pair[1]}) at dimension "
                    f"{dim} of input {_shape(shape)}"
                )
    return Pad2d.apply(input, tuple(pad), mode)
