"""nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d and their functional forms against torch:
values, indices, gradients, dtypes, layouts (contiguous and channels-last), unbatched input,
reprs, and errors (exception types, messages and the order torch checks in)."""

import numpy as np
import pytest

import numbanorm
from numbanorm.kernels.cpu import pooling as kernels
from tests.oracle import Cases, channels_last, deterministic

CASES = Cases("nn_pooling")

NAN, INF = float("nan"), float("inf")
# Ties, NaNs (one and several in a window, before and after the maximum) and infinities.
SPECIAL = np.array(
    [[1.0, NAN, 3.0, 2.0, 2.0, 0.0],
     [NAN, 0.0, 5.0, INF, 2.0, 2.0],
     [-INF, -INF, 1.0, 1.0, -1.0, NAN],
     [-INF, -INF, 1.0, 1.0, -1.0, -1.0],
     [0.0, 7.0, NAN, -2.0, INF, -INF],
     [7.0, 0.0, 3.0, NAN, -INF, INF]],
    np.float32,
)  # fmt: skip


def _input(shape, dtype, layout, seed=1):
    if isinstance(shape, str):  # the special values, as (2, 2, 6, 6): ties across channels too
        x = np.stack([SPECIAL, SPECIAL[::-1], SPECIAL.T, SPECIAL[:, ::-1]]).reshape(2, 2, 6, 6)
        x = x.astype(dtype)
    elif np.dtype(dtype).kind == "f":
        x = deterministic(shape, seed, dtype)
    else:  # small integers: many ties, and negative sums for average pooling's rounding
        low = 0 if np.dtype(dtype).kind == "u" else -50
        x = deterministic(shape, seed, np.float64, low, 50).astype(dtype)
    return channels_last(x) if layout == "channels_last" else x


def _grad_case(function, shape, dtype="float32", layout="contiguous", grad=True, **kwargs):
    """``lib.F.<function>(x, **kwargs)``; its output (and indices), and the input's gradient
    for a fixed upstream gradient when the input is floating and ``grad``."""

    def case(lib):
        x = _input(shape, dtype, layout)
        differentiable = grad and np.dtype(dtype).kind == "f"
        t = lib.tensor(x, requires_grad=differentiable)
        y = getattr(lib.F, function)(t, **kwargs)
        out = {}
        if isinstance(y, tuple):
            y, out["indices"] = y[0], lib.numpy(y[1])
        out["y"] = lib.numpy(y)
        if differentiable:
            y.backward(lib.tensor(deterministic(tuple(y.shape), 4, lib.numpy(y).dtype)))
            out["dx"] = lib.numpy(t.grad)
        return out

    return case


X = (2, 3, 8, 7)
_MAX = {
    "basic": (X, {"kernel_size": 2}),
    "no_indices": (X, {"kernel_size": 2, "return_indices": False}),
    "stride_padding": (X, {"kernel_size": 3, "stride": 2, "padding": 1}),
    "overlapping": (X, {"kernel_size": 3, "stride": 1}),
    "tuples": (X, {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0)}),
    "one_element_tuples": (X, {"kernel_size": (3,), "stride": (2,), "padding": (1,)}),
    "lists": (X, {"kernel_size": [2, 3], "stride": [], "padding": [0, 1]}),
    "dilation": (X, {"kernel_size": 3, "dilation": 2, "padding": 2}),
    "dilation_tuple": (X, {"kernel_size": (2, 3), "dilation": (3, 1), "stride": (1, 2)}),
    "ceil_mode": ((2, 3, 7, 6), {"kernel_size": 2, "ceil_mode": True}),
    "ceil_mode_padding": ((1, 2, 5, 5), {"kernel_size": 3, "stride": 2, "padding": 1,
                                         "ceil_mode": True}),
    "ceil_mode_dropped_window": ((1, 2, 6, 6), {"kernel_size": 3, "stride": 3, "padding": 1,
                                                "ceil_mode": True}),
    "stride_over_kernel": (X, {"kernel_size": 2, "stride": 3}),
    "whole_plane": ((2, 3, 4, 5), {"kernel_size": (4, 5)}),
    "float64": (X, {"kernel_size": 3, "stride": 2, "padding": 1, "dtype": "float64"}),
    "unbatched": ((3, 8, 7), {"kernel_size": 2, "padding": 1, "stride": 3}),
    "channels_last": (X, {"kernel_size": 3, "stride": 2, "padding": 1,
                          "layout": "channels_last"}),
    "channels_last_dilation": (X, {"kernel_size": 2, "dilation": 2,
                                   "layout": "channels_last"}),
    "channels_last_float64": (X, {"kernel_size": 2, "layout": "channels_last",
                                  "dtype": "float64"}),
    "special_values": ("special", {"kernel_size": 2}),
    "special_values_overlapping": ("special", {"kernel_size": 3, "stride": 1, "padding": 1}),
    "special_values_channels_last": ("special", {"kernel_size": 2, "stride": 1,
                                                 "layout": "channels_last"}),
    # A window whose taps all fall outside the input: -inf (the integer minimum) and the index
    # of its first tap, past the plane. torch crashes on its backward, so no gradient here.
    "window_without_taps": ((1, 1, 2, 2), {"kernel_size": 2, "stride": 1, "padding": 1,
                                           "dilation": 3, "grad": False}),
    "window_without_taps_int64": ((1, 1, 2, 2), {"kernel_size": 2, "stride": 1, "padding": 1,
                                                 "dilation": 3, "dtype": "int64"}),
    "empty_batch": ((0, 3, 4, 4), {"kernel_size": 2}),
    "float16": (X, {"kernel_size": 2, "dtype": "float16"}),
    "int64": (X, {"kernel_size": 3, "stride": 2, "padding": 1, "dtype": "int64"}),
    "int8_padding": ((2, 2, 5, 5), {"kernel_size": 2, "padding": 1, "dtype": "int8"}),
    "uint8": ((2, 2, 5, 5), {"kernel_size": 3, "stride": 1, "dtype": "uint8"}),
}  # fmt: skip
for name, (shape, kwargs) in _MAX.items():
    kwargs = {"return_indices": True} | kwargs
    options = {k: kwargs.pop(k) for k in ("dtype", "layout", "grad") if k in kwargs}
    CASES.add(f"max_pool2d_{name}", _grad_case("max_pool2d", shape, **options, **kwargs))
CASES.add(
    "max_pool2d_with_indices", _grad_case("max_pool2d_with_indices", X, kernel_size=2, padding=1)
)

_AVG = {
    "basic": (X, {"kernel_size": 2}),
    "stride_padding": (X, {"kernel_size": 3, "stride": 2, "padding": 1}),
    "exclude_pad": (X, {"kernel_size": 3, "stride": 2, "padding": 1,
                        "count_include_pad": False}),
    "tuples": (X, {"kernel_size": (3, 2), "stride": (1, 2), "padding": (1, 1)}),
    "one_element_tuples": (X, {"kernel_size": (3,), "stride": (2,), "padding": (1,)}),
    "stride_none": (X, {"kernel_size": 3, "stride": None}),
    "overlapping": (X, {"kernel_size": 3, "stride": 1}),
    "ceil_mode": ((1, 2, 5, 5), {"kernel_size": 3, "stride": 2, "padding": 1,
                                 "ceil_mode": True}),
    "ceil_mode_exclude_pad": ((1, 2, 5, 5), {"kernel_size": 3, "stride": 2, "padding": 1,
                                             "ceil_mode": True, "count_include_pad": False}),
    "ceil_mode_no_padding": ((2, 3, 7, 6), {"kernel_size": 2, "ceil_mode": True}),
    "divisor_override": (X, {"kernel_size": 3, "padding": 1, "divisor_override": 5}),
    "divisor_negative": (X, {"kernel_size": 2, "divisor_override": -3}),
    "float64": (X, {"kernel_size": 3, "stride": 2, "padding": 1, "dtype": "float64"}),
    "unbatched": ((3, 8, 7), {"kernel_size": 2, "padding": 1, "stride": 3}),
    "channels_last": (X, {"kernel_size": 3, "stride": 2, "padding": 1,
                          "layout": "channels_last"}),
    "channels_last_exclude_pad": (X, {"kernel_size": 2, "padding": 1, "layout": "channels_last",
                                      "count_include_pad": False, "dtype": "float64"}),
    "empty_batch": ((0, 3, 4, 4), {"kernel_size": 2}),
    "float16": (X, {"kernel_size": 3, "padding": 1, "dtype": "float16"}),
    "int64": (X, {"kernel_size": 3, "stride": 2, "padding": 1, "dtype": "int64"}),
    "int64_exclude_pad_ceil": ((1, 2, 5, 5), {"kernel_size": 3, "stride": 2, "padding": 1,
                                              "ceil_mode": True, "count_include_pad": False,
                                              "dtype": "int64"}),
    "int64_divisor_negative": (X, {"kernel_size": 2, "divisor_override": -3, "dtype": "int64"}),
}  # fmt: skip
for name, (shape, kwargs) in _AVG.items():
    options = {k: kwargs.pop(k) for k in ("dtype", "layout") if k in kwargs}
    CASES.add(f"avg_pool2d_{name}", _grad_case("avg_pool2d", shape, **options, **kwargs))

_ADAPTIVE = {
    "even": (X, 2),
    "uneven": ((2, 3, 7, 9), (3, 5)),
    "none": ((2, 3, 5, 4), (None, 3)),
    "larger": ((1, 2, 4, 5), (9, 10)),
    "same_size": ((1, 2, 4, 5), (None, None)),
    "list": ((2, 3, 6, 5), [4, 2]),
    "unbatched": ((3, 5, 5), (2, 4)),
    "channels_last": ((2, 3, 7, 6), (3, 2), "channels_last"),
    "channels_last_float64": ((2, 3, 7, 6), (4, 4), "channels_last", "float64"),
    "float64": ((2, 3, 7, 6), (3, 4), "contiguous", "float64"),
    "float16": ((2, 3, 7, 6), (3, 4), "contiguous", "float16"),
    "empty_batch": ((0, 3, 4, 4), 2),
    "empty_channels": ((2, 0, 4, 4), 2),
    "zero_output": ((2, 3, 4, 4), (0, 2)),
    "zero_output_int64": ((2, 3, 4, 4), 0, "contiguous", "int64"),
    "empty_batch_int64": ((0, 3, 4, 4), 2, "contiguous", "int64"),
    # An output of 1x1 is torch's mean over the last two dimensions, on any input of 2 or more.
    "one": ((2, 3, 6, 5), 1),
    "one_pair": ((2, 3, 6, 5), (1, 1)),
    "one_from_none": ((2, 3, 1, 8), [None, 1]),
    "one_unbatched": ((3, 6, 5), 1),
    "one_2d": ((6, 5), 1),
    "one_5d": ((1, 2, 3, 4, 5), (1, 1)),
    "one_channels_last": ((2, 3, 6, 5), 1, "channels_last"),
    "one_empty_height": ((2, 3, 0, 5), 1),
    "one_float64": ((2, 3, 6, 5), 1, "contiguous", "float64"),
}
for name, (shape, size, *options) in _ADAPTIVE.items():
    layout, dtype = (options + ["contiguous", "float32"][len(options) :])[:2]
    CASES.add(
        f"adaptive_avg_pool2d_{name}",
        _grad_case("adaptive_avg_pool2d", shape, dtype, layout, output_size=size),
    )


def _call_case(function, shape, dtype, *args, layout="contiguous", **kwargs):
    """``lib.F.<function>(x, *args, **kwargs)``: its output, or its exception."""

    def case(lib):
        y = getattr(lib.F, function)(lib.tensor(_input(shape, dtype, layout)), *args, **kwargs)
        return {"y": lib.numpy(y[0] if isinstance(y, tuple) else y)}

    return case


F32 = "float32"
# (shape, dtype, positional arguments, keyword arguments) of each function's errors.
_ERRORS = {
    "max_pool2d": {
        "input_1d": ((8,), F32, (2,), {}),
        "input_2d": ((3, 8), F32, (2,), {}),
        "input_5d": ((1, 2, 3, 8, 8), F32, (2,), {}),
        "input_5d_channels_last_3d": ((1, 2, 3, 8, 8), F32, (2,), {"layout": "channels_last"}),
        "input_2d_before_kernel_zero": ((3, 8), F32, (0,), {}),
        "kernel_length_before_input": ((3, 8), F32, ((1, 2, 3),), {}),
        "kernel_length": (X, F32, ((1, 2, 3),), {}),
        "kernel_empty": (X, F32, ((),), {}),
        "stride_length": (X, F32, (2, (1, 1, 1)), {}),
        "padding_length": (X, F32, (2, 1, (1, 1, 1)), {}),
        "dilation_length": (X, F32, (2, 1, 0, (1, 1, 1)), {}),
        "kernel_length_before_stride_length": (X, F32, ((1, 2, 3), (1, 1, 1)), {}),
        "kernel_zero": (X, F32, (0,), {}),
        "kernel_zero_stride_one": (X, F32, (0, 1), {}),
        "kernel_negative": (X, F32, (-1,), {}),
        "kernel_negative_two": (X, F32, (-2, 1), {}),
        "stride_zero": (X, F32, (2, 0), {}),
        "stride_zero_width": (X, F32, (2, (1, 0)), {}),
        "stride_negative": (X, F32, (2, -1), {}),
        "padding_negative": (X, F32, (2, 1, -1), {}),
        "padding_height_before_stride_width": (X, F32, (2, (1, 0), (-1, 0)), {}),
        "padding_over_half": (X, F32, (2, 1, 2), {}),
        "padding_over_half_width": (X, F32, (2, 1, (1, 2)), {}),
        "padding_over_half_dilated": (X, F32, (3, 1, 2, 2), {}),
        "padding_over_half_dilation_zero": (X, F32, (2, 1, 5, 0), {}),
        "dilation_zero": (X, F32, (2, 1, 0, 0), {}),
        "dilation_zero_before_channels": ((2, 0, 8, 7), F32, (2, 1, 0, 0), {}),
        "kernel_over_input": (X, F32, (9,), {}),
        "kernel_over_padded_input": (X, F32, (20, 1, 5), {}),
        "zero_channels": ((2, 0, 8, 7), F32, (2,), {}),
        "zero_height": ((2, 3, 0, 7), F32, (2,), {}),
        "zero_width": ((2, 3, 8, 0), F32, (2,), {}),
        "unbatched_zero_channels": ((0, 8, 7), F32, (2,), {}),
        "kernel_overflow": (X, F32, (2**31,), {}),
        "kernel_overflow_before_padding": (X, F32, ((2**31, 1), 1, (1, 2**31)), {}),
        "dilation_overflow_before_sign": (X, F32, (2, 1, 0, (-1, 2**31)), {}),
        "bool": (X, "bool", (2,), {}),
        "bool_after_shape": (X, "bool", (9,), {}),
        "bool_empty_batch": ((0, 3, 4, 4), "bool", (2,), {}),
        "uint16": (X, "uint16", (2,), {}),
        "kernel_float": (X, F32, (2.0,), {}),
        "kernel_bool": (X, F32, (True,), {}),
        "kernel_none": (X, F32, (None,), {}),
        "kernel_float_first": (X, F32, ((2.0, 2),), {}),
        "kernel_bool_first": (X, F32, ((True, 2),), {}),
        "kernel_float_second": (X, F32, ([2, 2.0],), {}),
        "kernel_float_third": (X, F32, ([2, 2, 2.0],), {}),
        "kernel_array": (X, F32, (np.array([2, 2]),), {}),
        "stride_float": (X, F32, (2, 1.5), {}),
        "stride_str_second": (X, F32, (2, (1, "a")), {}),
        "padding_none": (X, F32, (2,), {"padding": None}),
        "dilation_str": (X, F32, (2,), {"dilation": "a"}),
        "ceil_mode_int": (X, F32, (2,), {"ceil_mode": 1}),
        "ceil_mode_numpy_bool": (X, F32, (2,), {"ceil_mode": np.True_}),
        "ceil_mode_before_unpacking": (X, F32, ([2, 2.0],), {"ceil_mode": 1}),
        "kernel_type_before_length": (X, F32, ((1, 2, 2.0),), {}),
        "with_indices_kernel_float": (X, F32, (2.0,), {"return_indices": True}),
        "with_indices_kernel_length": (X, F32, ((1, 2, 3),), {"return_indices": True}),
    },
    "avg_pool2d": {
        "input_0d": ((), F32, (1,), {}),
        "input_1d": ((8,), F32, (2,), {}),
        "input_2d": ((3, 8), F32, (2,), {}),
        "input_5d": ((1, 2, 3, 8, 8), F32, (2,), {}),
        "input_2d_after_divisor": ((3, 8), F32, (2,), {"divisor_override": 0}),
        "kernel_length": (X, F32, ((1, 2, 3),), {}),
        "stride_length": (X, F32, (2, (1, 1, 1)), {}),
        "padding_length": (X, F32, (2, 1, (1, 1, 1)), {}),
        "divisor_zero": (X, F32, (2,), {"divisor_override": 0}),
        "padding_length_before_divisor": (X, F32, (2, 1, (1, 1, 1)), {"divisor_override": 0}),
        "divisor_before_padding_sign": (X, F32, (2, 1, -1), {"divisor_override": 0}),
        "kernel_zero": (X, F32, (0,), {}),
        "kernel_zero_stride_one": (X, F32, (0, 1), {}),
        "kernel_negative": (X, F32, (-1,), {}),
        "stride_negative": (X, F32, (2, -1), {}),
        "padding_negative": (X, F32, (2, 1, -1), {}),
        "padding_over_half": (X, F32, (3, 1, 2), {}),
        "kernel_over_input": (X, F32, (9,), {}),
        "zero_height": ((2, 3, 0, 7), F32, (2,), {}),
        "zero_channels_unbatched": ((0, 8, 7), F32, (2,), {}),
        "kernel_overflow": (X, F32, (2**31,), {}),
        "padding_overflow_before_divisor": (X, F32, (2, 1, (1, 2**31)), {"divisor_override": 0}),
        "int32": (X, "int32", (2,), {}),
        "int32_empty_batch": ((0, 3, 4, 4), "int32", (2,), {}),
        "uint8": (X, "uint8", (2,), {}),
        "bool": (X, "bool", (2,), {}),
        "bool_after_shape": (X, "bool", (9,), {}),
        # The parser names a position only for arguments that came by position.
        "kernel_float_positional": (X, F32, (2.0,), {}),
        "kernel_float_keyword": (X, F32, (), {"kernel_size": 2.0}),
        "kernel_float_first_positional": (X, F32, ((2.0, 2),), {}),
        "kernel_float_first_keyword": (X, F32, (), {"kernel_size": (2.0, 2)}),
        "kernel_none_first_keyword": (X, F32, (), {"kernel_size": [None, 2]}),
        "kernel_none_second": (X, F32, ([2, None],), {}),
        "stride_float_positional": (X, F32, ([2, 2.0], 1.5), {}),
        "ceil_mode_positional": (X, F32, (2, None, 0, 1), {}),
        "ceil_mode_keyword": (X, F32, (2,), {"ceil_mode": 1}),
        "count_include_pad_keyword": (X, F32, (2,), {"count_include_pad": np.True_}),
        "divisor_float_positional": (X, F32, (2, None, 0, False, True, 1.5), {}),
        "divisor_bool": (X, F32, (2,), {"divisor_override": True}),
        "padding_none": (X, F32, (2,), {"padding": None}),
    },
    "adaptive_avg_pool2d": {
        "int64": (X, "int64", (2,), {}),
        "int32": (X, "int32", (2,), {}),
        "bool": (X, "bool", ((3, 2),), {}),
        "one_int64": (X, "int64", (1,), {}),
        "one_bool": (X, "bool", ((1, 1),), {}),
        "one_int64_1d": ((8,), "int64", (1,), {}),
        "one_1d": ((8,), F32, (1,), {}),
        "one_0d": ((), F32, (1,), {}),
        "input_2d": ((5, 6), F32, (2,), {}),
        "input_1d": ((8,), F32, (2,), {}),
        "input_0d": ((), F32, (2,), {}),
        "input_5d": ((1, 2, 3, 8, 8), F32, (2,), {}),
        "input_5d_before_zero_height": ((1, 2, 3, 0, 8), F32, (2,), {}),
        "zero_height": ((2, 3, 0, 8), F32, (2,), {}),
        "zero_width": ((2, 3, 8, 0), F32, ((2, 3),), {}),
        "zero_height_zero_output": ((2, 3, 0, 8), F32, (0,), {}),
        "zero_height_before_dtype": ((2, 3, 0, 8), "int64", (2,), {}),
        "size_length_1": (X, F32, ((3,),), {}),
        "size_length_3": (X, F32, ((1, 2, 3),), {}),
        "size_empty": (X, F32, ([],), {}),
        "size_none_1": (X, F32, ((None,),), {}),
        "size_length_over_input": ((3, 8, 8), F32, ((1, 2, 3),), {}),
        "size_pair_over_2d_input": ((5, 6), F32, ((1, 1),), {}),
        "size_negative": (X, F32, (-1,), {}),
        "size_negative_height": (X, F32, ((-1, 2),), {}),
        "size_negative_width": (X, F32, ((2, -3),), {}),
        "size_negative_before_dimensions": ((5,), F32, (-1,), {}),
        "size_float": (X, F32, (2.0,), {}),
        "size_numpy_int": (X, F32, (np.int64(2),), {}),
        "size_none": (X, F32, (None,), {}),
        "size_bool": (X, F32, (True,), {}),
        "size_bool_first": (X, F32, ((True, 2),), {}),
        "size_float_second": (X, F32, ((2, 2.0),), {}),
        "size_string": (X, F32, ("ab",), {}),
    },
}
for function, errors in _ERRORS.items():
    for name, (shape, dtype, args, kwargs) in errors.items():
        CASES.add(f"error_{function}_{name}", _call_case(function, shape, dtype, *args, **kwargs))

_ACCEPTED = {
    "max_pool2d": {
        "numpy_ints": (((np.int32(2), np.int64(2)),), {"stride": np.int64(1)}),
        "stride_empty": ((2,), {"stride": []}),
    },
    "avg_pool2d": {
        "numpy_ints": ((np.int64(2),), {"divisor_override": np.int64(3)}),
        "stride_empty": ((2,), {"stride": ()}),
    },
    "adaptive_avg_pool2d": {"numpy_int_in_pair": (((2, np.int64(3)),), {})},
}
for function, accepted in _ACCEPTED.items():
    for name, (args, kwargs) in accepted.items():
        CASES.add(f"accepted_{function}_{name}", _call_case(function, X, F32, *args, **kwargs))


def _tensor_arguments_case(lib):
    """One-element integer tensors are ints to torch's parser."""
    x = lib.tensor(_input(X, F32, "contiguous"))
    two = lib.tensor(np.array(2))
    return {
        "max": lib.numpy(lib.F.max_pool2d(x, two, (two, 1))),
        "avg": lib.numpy(lib.F.avg_pool2d(x, (3, two), divisor_override=two)),
        "adaptive": lib.numpy(lib.F.adaptive_avg_pool2d(x, (two, 3))),
    }


CASES.add("accepted_tensor_arguments", _tensor_arguments_case)


def _module_case(cls, args, kwargs, shape, dtype="float32", layout="contiguous"):
    """The module's repr and attributes, and, when it runs, its output (and indices) and the
    input's gradient."""

    def case(lib):
        m = getattr(lib.nn, cls)(*args, **kwargs)
        names = ["kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode",
                 "count_include_pad", "divisor_override", "output_size"]  # fmt: skip
        attributes = {name: getattr(m, name) for name in names if hasattr(m, name)}
        out = {"repr": np.array(repr(m)), "attributes": np.array(repr(attributes))}
        out["keys"] = np.array(list(m.state_dict()) + [n for n, _ in m.named_parameters()])
        x = lib.tensor(_input(shape, dtype, layout), requires_grad=True)
        try:
            y = m(x)
        except Exception as error:  # a module's forward error is a result too
            return out | {"error": np.array(f"{type(error).__name__}: {error}")}
        if isinstance(y, tuple):
            y, out["indices"] = y[0], lib.numpy(y[1])
        y.backward(lib.tensor(deterministic(tuple(y.shape), 4, dtype)))
        return out | {"y": lib.numpy(y), "dx": lib.numpy(x.grad)}

    return case


_MODULES = {
    "max_default": ("MaxPool2d", (2,), {}, X),
    "max_all_options": (
        "MaxPool2d", ((3, 2),),
        {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "return_indices": True,
         "ceil_mode": True},
        X,
    ),
    "max_positional": ("MaxPool2d", (3, 2, 1, 1, True, True), {}, X),
    "max_list": ("MaxPool2d", ([2, 3],), {"stride": [1, 2]}, X),
    "max_unbatched": ("MaxPool2d", (2,), {"return_indices": True}, (3, 8, 7)),
    "max_channels_last": ("MaxPool2d", (3,), {"stride": 2, "padding": 1}, X, "float32",
                          "channels_last"),
    "max_float64": ("MaxPool2d", (3,), {"stride": 1}, X, "float64"),
    "max_kernel_zero": ("MaxPool2d", (0,), {}, X),
    "max_kernel_float": ("MaxPool2d", (2.0,), {}, X),
    "max_ceil_mode_int": ("MaxPool2d", (2,), {"ceil_mode": 1}, X),
    "avg_default": ("AvgPool2d", (2,), {}, X),
    "avg_all_options": (
        "AvgPool2d", (3,),
        {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False,
         "divisor_override": 4},
        X,
    ),
    "avg_positional": ("AvgPool2d", ((3, 2), (2, 1), (1, 0), True, False, None), {}, X),
    "avg_unbatched": ("AvgPool2d", (2,), {"padding": 1}, (3, 8, 7)),
    "avg_channels_last": ("AvgPool2d", (3,), {"stride": 2, "padding": 1}, X, "float32",
                          "channels_last"),
    "avg_float64": ("AvgPool2d", ([2, 3],), {"stride": 1}, X, "float64"),
    "avg_divisor_zero": ("AvgPool2d", (2,), {"divisor_override": 0}, X),
    "avg_kernel_float": ("AvgPool2d", (2.0,), {}, X),
    "avg_ceil_mode_int": ("AvgPool2d", (2,), {"ceil_mode": 1}, X),
    "adaptive_int": ("AdaptiveAvgPool2d", (2,), {}, X),
    "adaptive_pair": ("AdaptiveAvgPool2d", ((3, 5),), {}, X),
    "adaptive_none": ("AdaptiveAvgPool2d", ((None, 3),), {}, X),
    "adaptive_one": ("AdaptiveAvgPool2d", (1,), {}, X),
    "adaptive_unbatched": ("AdaptiveAvgPool2d", ((2, 3),), {}, (3, 8, 7)),
    "adaptive_channels_last": ("AdaptiveAvgPool2d", (3,), {}, X, "float32", "channels_last"),
    "adaptive_float64": ("AdaptiveAvgPool2d", ((5, None),), {}, X, "float64"),
    "adaptive_negative": ("AdaptiveAvgPool2d", (-1,), {}, X),
    "adaptive_input_2d": ("AdaptiveAvgPool2d", ((2, 2),), {}, (8, 7)),
}  # fmt: skip
for name, (cls, args, kwargs, shape, *options) in _MODULES.items():
    CASES.add(f"module_{name}", _module_case(cls, args, kwargs, shape, *options))


@pytest.mark.parametrize("name", CASES.names())
def test_matches_torch(name):
    CASES.check(name)


def test_channels_last_keeps_its_layout():
    def is_channels_last(a):
        return a.transpose(0, 2, 3, 1).flags.c_contiguous and not a.flags.c_contiguous

    F = numbanorm.nn.functional
    x = numbanorm.tensor(_input(X, "float32", "channels_last"), requires_grad=True)
    for function in (
        lambda t: F.max_pool2d(t, 2, return_indices=True),
        lambda t: (F.avg_pool2d(t, 3, 1, 1),),
        lambda t: (F.adaptive_avg_pool2d(t, 3),),
    ):
        x.grad = None
        outputs = function(x)
        assert all(is_channels_last(out.data) for out in outputs)
        outputs[0].backward(numbanorm.tensor(np.ones(outputs[0].shape, np.float32)))
        assert is_channels_last(x.grad.data)


def test_window_without_taps_gets_no_gradient():
    """torch crashes here (its backward writes at the window's index, past the plane); numbanorm
    gives the window's gradient to nobody."""
    x = numbanorm.tensor(np.arange(4.0).reshape(1, 1, 2, 2), requires_grad=True)
    y, indices = numbanorm.nn.functional.max_pool2d(x, 2, 1, 1, 3, return_indices=True)
    assert y.item() == -np.inf and indices.item() == 6
    y.backward(numbanorm.tensor(np.ones((1, 1, 1, 1))))
    np.testing.assert_array_equal(x.grad.data, np.zeros((1, 1, 2, 2)))


def _kernel_arguments(name):
    x = channels_last(deterministic((2, 3, 9, 8), 1, np.float64))
    dy = deterministic((2, 3, 4, 3), 2, np.float64)
    indices = np.arange(dy.size).reshape(dy.shape) % 72
    geometry = (3, 3, 2, 3, 1, 1, 1, 1)
    if name == "max_pool2d":
        x[0, 1, 2, 3] = np.nan
        return (x, *geometry, -np.inf, np.empty(dy.shape), np.empty(dy.shape, np.int64))
    return {
        "max_pool2d_backward": (dy, indices, np.empty(x.shape)),
        "avg_pool2d": (x, *geometry[:6], False, 0, np.empty(dy.shape)),
        "avg_pool2d_int": (np.round(x * 10).astype(np.int64), *geometry[:6], True, -4,
                           np.empty(dy.shape, np.int64)),
        "avg_pool2d_backward": (dy, *geometry[:6], True, 0, np.empty(x.shape)),
        "adaptive_avg_pool2d": (x, np.empty(dy.shape)),
        "adaptive_avg_pool2d_backward": (dy, np.empty(x.shape)),
    }[name]  # fmt: skip


@pytest.mark.parametrize(
    "name",
    ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_int", "avg_pool2d_backward",
     "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward"],
)  # fmt: skip
def test_serial_twin_matches_parallel_kernel(name):
    arguments = _kernel_arguments(name)
    serial = [a.copy() if isinstance(a, np.ndarray) else a for a in arguments]
    kernel = getattr(kernels, name)
    kernel(*arguments)
    kernel.serial(*serial)
    for got, want in zip(serial, arguments, strict=True):
        if isinstance(want, np.ndarray):
            np.testing.assert_array_equal(got, want)
