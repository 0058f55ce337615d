"""nn.Conv2d and F.conv2d against torch: values, gradients, layouts, padding modes, reprs, init,
and errors (exception types, messages and the order torch checks in)."""

import math
import re

import numpy as np
import pytest

import numbanorm
from numbanorm.nn.functional import conv as conv_functional
from numbanorm.nn.functional.conv import _onednn_dtypes
from tests.oracle import GOLDEN_DIR, NUMBANORM, Cases, channels_last, compare, deterministic, run

CASES = Cases("nn_conv")


def _sorted_sets(message: str) -> str:
    """torch prints Python sets, whose order changes with the hash seed: sort their items."""
    return re.sub(
        r"\{([^{}]*)\}", lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", message
    )


def _backward(lib, y, tensors, seed):
    """Back-propagate a fixed upstream gradient; the gradients of ``tensors`` by name."""
    y.backward(lib.tensor(deterministic(tuple(y.shape), seed, lib.numpy(y).dtype)))
    return {f"d{name}": lib.numpy(t.grad) for name, t in tensors.items() if t.requires_grad}


def _functional_case(
    x_shape, w_shape, bias=True, dtype="float32", layout="contiguous", grad=(1, 1, 1), **kwargs
):
    def case(lib):
        x = deterministic(x_shape, 1, dtype)
        x = channels_last(x) if layout == "channels_last" else x
        w = deterministic(w_shape, 2, dtype)
        w = channels_last(w) if layout == "channels_last_weight" else w
        floating = np.dtype(dtype).kind == "f"
        tensors = {
            "x": lib.tensor(x, requires_grad=floating and bool(grad[0])),
            "w": lib.tensor(w, requires_grad=floating and bool(grad[1])),
        }
        if bias:
            b = deterministic((w_shape[0],), 3, dtype)
            tensors["b"] = lib.tensor(b, requires_grad=floating and bool(grad[2]))
        y = lib.F.conv2d(tensors["x"], tensors["w"], tensors.get("b"), **kwargs)
        out = {"y": lib.numpy(y)}
        if y.requires_grad:
            out |= _backward(lib, y, tensors, 4)
        return out

    return case


_FUNCTIONAL = {
    "basic": ((2, 3, 7, 6), (4, 3, 3, 3), {}),
    "nobias": ((2, 3, 7, 6), (4, 3, 3, 3), {"bias": False}),
    "stride_padding": ((2, 3, 8, 7), (5, 3, 3, 2), {"stride": 2, "padding": 1}),
    "tuples": ((1, 2, 9, 8), (3, 2, 3, 2), {"stride": (2, 1), "padding": (1, 2)}),
    "dilation": ((2, 2, 9, 9), (3, 2, 3, 3), {"dilation": 2, "padding": 2}),
    "dilation_tuple": ((1, 3, 8, 9), (2, 3, 2, 3), {"dilation": (3, 1), "stride": (1, 2)}),
    "one_element_tuples": ((1, 2, 6, 6), (2, 2, 3, 3), {"stride": (2,), "padding": (1,)}),
    "groups": ((2, 4, 6, 5), (6, 2, 3, 3), {"groups": 2, "padding": 1}),
    "depthwise": ((2, 3, 5, 5), (6, 1, 3, 3), {"groups": 3, "stride": 2}),
    "kernel_1x1": ((2, 5, 4, 3), (3, 5, 1, 1), {}),
    "kernel_whole": ((2, 2, 3, 4), (3, 2, 3, 4), {}),
    "kernel_over_padding": ((1, 1, 2, 2), (2, 1, 4, 4), {"padding": 1}),
    "stride_over_kernel": ((2, 2, 9, 9), (2, 2, 2, 2), {"stride": 4, "padding": 1}),
    "float64": ((2, 3, 6, 5), (4, 3, 3, 3), {"dtype": "float64", "stride": 2, "padding": 1}),
    "unbatched": ((3, 6, 5), (4, 3, 3, 2), {"padding": 1}),
    "channels_last": ((2, 3, 7, 6), (4, 3, 3, 3), {"layout": "channels_last", "padding": 1}),
    "channels_last_strided": (
        (2, 3, 9, 8), (4, 3, 3, 2), {"layout": "channels_last", "stride": (2, 3), "dilation": 2},
    ),
    "channels_last_groups": (
        (2, 4, 6, 6), (4, 2, 3, 3), {"layout": "channels_last", "groups": 2},
    ),
    "channels_last_weight": ((2, 3, 6, 6), (4, 3, 3, 3), {"layout": "channels_last_weight"}),
    "same_odd": ((2, 3, 6, 5), (4, 3, 3, 3), {"padding": "same"}),
    "same_even": ((2, 3, 6, 5), (4, 3, 2, 4), {"padding": "same"}),
    "same_dilation": ((1, 2, 7, 6), (3, 2, 2, 3), {"padding": "same", "dilation": (3, 2)}),
    "same_channels_last": (
        (2, 3, 5, 6), (4, 3, 2, 3), {"padding": "same", "layout": "channels_last"},
    ),
    "valid": ((2, 3, 6, 5), (4, 3, 3, 3), {"padding": "valid"}),
    "only_weight": ((2, 3, 5, 5), (2, 3, 3, 3), {"grad": (0, 1, 0), "padding": 1}),
    "only_input": ((2, 3, 5, 5), (2, 3, 3, 3), {"grad": (1, 0, 0), "stride": 2}),
    "no_grad": ((2, 3, 5, 5), (2, 3, 3, 3), {"grad": (0, 0, 0)}),
    "empty_batch": ((0, 3, 5, 5), (2, 3, 3, 3), {}),
    "float16": ((2, 3, 5, 5), (2, 3, 3, 3), {"dtype": "float16", "grad": (0, 0, 0)}),
    "int64": ((2, 3, 5, 5), (2, 3, 3, 3), {"dtype": "int64", "padding": 1}),
    "int32_groups": ((1, 4, 4, 4), (2, 2, 2, 2), {"dtype": "int32", "groups": 2}),
}  # fmt: skip
for name, (x_shape, w_shape, kwargs) in _FUNCTIONAL.items():
    CASES.add(f"conv2d_{name}", _functional_case(x_shape, w_shape, **kwargs))


def _error_case(x_shape, w_shape, b_shape=None, dtypes=("float32",) * 3, **kwargs):
    def case(lib):
        x = lib.tensor(deterministic(x_shape, 1, dtypes[0]))
        w = lib.tensor(deterministic(w_shape, 2, dtypes[1]))
        b = None if b_shape is None else lib.tensor(deterministic(b_shape, 3, dtypes[2]))
        return {"y": lib.numpy(lib.F.conv2d(x, w, b, **kwargs))}

    return case


X, W = (2, 3, 8, 8), (4, 3, 3, 3)
_ERRORS = {
    "input_2d": ((2, 3), W, None, {}),
    "input_5d": ((1, *X), W, None, {}),
    "input_2d_same": ((2, 3), W, None, {"padding": "same"}),
    "channels": ((2, 4, 8, 8), W, None, {}),
    "channels_unbatched": ((4, 8, 8), W, None, {}),
    "channels_before_bias": ((2, 4, 8, 8), W, (5,), {}),
    "bias_size": (X, W, (5,), {}),
    "bias_2d": (X, W, (2, 2), {}),
    "bias_before_kernel_size": ((2, 3, 2, 2), W, (5,), {}),
    "kernel_size": ((2, 3, 2, 2), W, None, {}),
    "kernel_size_padded": ((2, 3, 2, 2), W, None, {"dilation": 2, "padding": 1}),
    "zero_height": ((2, 3, 0, 8), W, None, {}),
    "stride_zero": (X, W, None, {"stride": 0}),
    "stride_negative": (X, W, None, {"stride": (1, -1)}),
    "padding_negative": (X, W, None, {"padding": -1}),
    "padding_before_stride": (X, W, None, {"padding": -1, "stride": 0}),
    "dilation_zero": (X, W, None, {"dilation": 0}),
    "stride_before_dilation": (X, W, None, {"stride": 0, "dilation": 0}),
    "groups_zero": (X, W, None, {"groups": 0}),
    "groups_negative_same": (X, W, None, {"groups": -1, "padding": "same"}),
    "groups_over_weight": (X, W, None, {"groups": 5}),
    "groups_before_dilation": (X, W, None, {"groups": 5, "dilation": 0}),
    "groups_channels": (X, W, None, {"groups": 2}),
    "groups_divisible": ((2, 6, 8, 8), (3, 3, 3, 3), None, {"groups": 2}),
    "groups_before_stride_length": (X, W, None, {"groups": 0, "stride": (1, 1, 1)}),
    "stride_length": (X, W, None, {"stride": (1, 1, 1)}),
    "stride_length_before_padding": (X, W, None, {"stride": (1, 1, 1), "padding": -1}),
    "padding_length": (X, W, None, {"padding": (1, 1, 1)}),
    "dilation_length": (X, W, None, {"dilation": (1, 1, 1)}),
    "weight_2d": (X, (4, 3), None, {}),
    "weight_2d_before_groups": (X, (4, 3), None, {"groups": 0}),
    "weight_3d": (X, (4, 3, 3), None, {}),
    "weight_3d_one_element_tuples": (X, (4, 3, 3), None, {"stride": (1,), "padding": (0,)}),
    "weight_5d": (X, (4, 3, 3, 3, 3), None, {}),
    "weight_empty": (X, (0, 3, 3, 3), None, {}),
    "same_strided": (X, W, None, {"padding": "same", "stride": 2}),
    "same_stride_length": (X, W, None, {"padding": "same", "stride": (1, 1, 1)}),
    "same_dilation_length": (X, W, None, {"padding": "same", "dilation": (1, 1, 1)}),
    "same_weight_3d": (X, (4, 3, 3), None, {"padding": "same"}),
    "same_weight_2d": (X, (4, 3), None, {"padding": "same"}),
    "same_dilation_zero": (X, W, None, {"padding": "same", "dilation": 0}),
    "same_even_channels_padded": ((1, 4, 2, 2), (4, 3, 2, 2), None, {"padding": "same"}),
    "valid_dilation_zero": (X, W, None, {"padding": "valid", "dilation": 0}),
    "padding_string": (X, W, None, {"padding": "foo"}),
    "padding_string_2d": ((2, 3), W, None, {"padding": "foo"}),
    "dilation_negative": (X, W, None, {"dilation": -1}),
    "dilation_negative_before_groups": (X, W, None, {"dilation": -1, "groups": 5}),
    "dilation_zero_after_channels": ((2, 2, 8, 8), W, None, {"dilation": 0}),
    "dilation_zero_float64": (X, W, None, {"dilation": 0, "dtypes": ("float64",) * 3}),
    "dilation_zero_int64": (X, W, None, {"dilation": 0, "dtypes": ("int64",) * 3}),
    "dilation_zero_before_dtype_float64": (
        X, W, None, {"dilation": 0, "dtypes": ("float64", "float32", "float32")},
    ),
    "dtype_before_dilation_zero_float32": (
        X, W, None, {"dilation": 0, "dtypes": ("float32", "float64", "float32")},
    ),
    "kernel_zero_float32": (X, (4, 3, 0, 3), None, {}),
    "kernel_zero_float64": (X, (4, 3, 0, 3), None, {"dtypes": ("float64",) * 3}),
    "kernel_zero_dilated_float64": (
        X, (4, 3, 0, 3), None, {"dilation": 2, "dtypes": ("float64",) * 3},
    ),
    "kernel_zero_before_dilation_zero": (
        X, (4, 3, 3, 0), None, {"dilation": 0, "dtypes": ("float64",) * 3},
    ),
    "kernel_zero_before_dtype": (X, (4, 3, 0, 3), None, {"dtypes": ("int64", "float32", "")}),
    "bool_dilated": (X, W, None, {"dilation": 2, "dtypes": ("bool", "bool", "")}),
    "bool_before_dtype": (X, W, None, {"dtypes": ("bool", "float32", "")}),
    "empty_batch_skips_kernel_checks": (
        (0, 3, 8, 8), W, None, {"dilation": 0, "dtypes": ("float64", "float32", "")},
    ),
}  # fmt: skip
for name, (x_shape, w_shape, b_shape, kwargs) in _ERRORS.items():
    CASES.add(f"error_{name}", _error_case(x_shape, w_shape, b_shape, **kwargs))

_DTYPE_ERRORS = {
    "input_float64_weight_float32": ("float64", "float32", None),
    "input_float32_weight_float64": ("float32", "float64", None),
    "input_float16_weight_float32": ("float16", "float32", None),
    "input_int64_weight_float32": ("int64", "float32", None),
    "bias_float64": ("float32", "float32", "float64"),
    "bias_float32_input_float64": ("float64", "float64", "float32"),
    "bias_float32_input_float16": ("float16", "float16", "float32"),
    "bias_before_weight": ("float32", "float64", "float64"),
    "bias_int32": ("float32", "float32", "int32"),
    "bool": ("bool", "bool", None),
}
# float16 input with a float32 weight, or a float32 bias on the string-padding road, takes the
# kernel torch picks by processor: oneDNN's (an error) with AVX512-FP16 or AMX-FP16, else the
# reference kernel's (a different error, or a result). Each road has its own golden file, made
# by torch on a processor that takes it; this processor's road is tested.
FLOAT16_ROAD = "onednn" if np.dtype(np.float16) in _onednn_dtypes() else "reference"
FLOAT16_CASES = Cases(f"nn_conv_float16_{FLOAT16_ROAD}")
for name, (xd, wd, bd) in _DTYPE_ERRORS.items():
    cases = FLOAT16_CASES if (xd, wd, bd) == ("float16", "float32", None) else CASES
    cases.add(f"error_dtype_{name}", _error_case(X, W, None if bd is None else (4,), (xd, wd, bd)))
    if bd is not None:  # the string-padding road checks the bias elsewhere, or converts it
        cases = FLOAT16_CASES if xd == "float16" else CASES
        cases.add(
            f"error_dtype_{name}_valid",
            _error_case(X, W, (4,), (xd, wd, bd), padding="valid"),
        )
CASES.add("error_dtype_before_shape", _error_case((2, 2, 8, 8), W, None, ("float64", "float32")))


def _module_case(kwargs, x_shape, dtype="float32", layout="contiguous"):
    def case(lib):
        m = lib.nn.Conv2d(**kwargs, dtype=lib.dtype(dtype))
        state = {"weight": lib.tensor(deterministic(tuple(m.weight.shape), 1, dtype))}
        if m.bias is not None:
            state["bias"] = lib.tensor(deterministic(tuple(m.bias.shape), 2, dtype))
        m.load_state_dict(state)
        x = deterministic(x_shape, 3, dtype)
        x = lib.tensor(channels_last(x) if layout == "channels_last" else x, requires_grad=True)
        y = m(x)
        out = {"y": lib.numpy(y), "repr": np.array(repr(m)), "keys": np.array(list(m.state_dict()))}
        tensors = {"x": x, "w": m.weight} | ({"b": m.bias} if m.bias is not None else {})
        return out | _backward(lib, y, tensors, 4)

    return case


_MODULES = {
    "basic": ({"in_channels": 3, "out_channels": 4, "kernel_size": 3}, (2, 3, 6, 6)),
    "all_options": (
        {"in_channels": 4, "out_channels": 6, "kernel_size": (3, 2), "stride": (2, 1),
         "padding": (1, 2), "dilation": (1, 2), "groups": 2, "bias": False},
        (2, 4, 7, 7),
    ),
    "same": (
        {"in_channels": 2, "out_channels": 3, "kernel_size": 4, "padding": "same"}, (1, 2, 5, 6),
    ),
    "valid": (
        {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": "valid"}, (1, 2, 5, 6),
    ),
    "unbatched": ({"in_channels": 2, "out_channels": 3, "kernel_size": 2, "padding": 1}, (2, 4, 3)),
    "reflect": (
        {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": (1, 2),
         "padding_mode": "reflect"},
        (2, 2, 4, 5),
    ),
    "replicate": (
        {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": (3, 1),
         "padding_mode": "replicate"},
        (2, 2, 4, 5),
    ),
    "circular": (
        {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": (2, 5),
         "padding_mode": "circular", "stride": 2},
        (2, 2, 4, 5),
    ),
    "reflect_same_even": (
        {"in_channels": 2, "out_channels": 3, "kernel_size": (2, 4), "padding": "same",
         "padding_mode": "reflect"},
        (1, 2, 4, 5),
    ),
    "circular_unbatched": (
        {"in_channels": 2, "out_channels": 3, "kernel_size": 2, "padding": 1,
         "padding_mode": "circular"},
        (2, 3, 3),
    ),
    "float64": ({"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2}, (2, 2, 5, 5)),
}  # fmt: skip
for name, (kwargs, x_shape) in _MODULES.items():
    dtype = "float64" if name == "float64" else "float32"
    CASES.add(f"module_{name}", _module_case(kwargs, x_shape, dtype))
CASES.add(
    "module_channels_last",
    _module_case({"in_channels": 3, "out_channels": 2, "kernel_size": 3}, (2, 3, 5, 5),
                 layout="channels_last"),
)  # fmt: skip


def _repr_case(*args, **kwargs):
    def case(lib):
        try:
            m = lib.nn.Conv2d(*args, **kwargs)
        except ValueError as error:  # messages with sets: compare them sorted
            return {"error": np.array(f"ValueError: {_sorted_sets(str(error))}")}
        return {"repr": np.array(repr(m)), "shape": np.array(tuple(m.weight.shape))}

    return case


_REPRS = {
    "default": ((3, 4, 3), {}),
    "stride": ((3, 4, 3), {"stride": 2}),
    "padding": ((3, 4, 3), {"padding": 1}),
    "padding_pair": ((3, 4, 3), {"padding": (1, 2)}),
    "padding_list": ((3, 4, 3), {"padding": [1, 0]}),
    "dilation": ((3, 4, 3), {"dilation": 2}),
    "dilation_one_tuple": ((3, 4, 3), {"dilation": (2,)}),
    "groups": ((3, 6, 3), {"groups": 3}),
    "no_bias": ((3, 4, 3), {"bias": False}),
    "padding_mode_reflect": ((3, 4, 3), {"padding": 1, "padding_mode": "reflect"}),
    "same": ((3, 4, 3), {"padding": "same"}),
    "valid": ((3, 4, 3), {"padding": "valid"}),
    "kernel_pair": ((3, 4, (3, 5)), {}),
    "kernel_zero": ((3, 4, 0), {}),
    "out_zero": ((3, 0, 3), {}),
    "groups_zero": ((3, 4, 3), {"groups": 0}),
    "groups_negative": ((3, 4, 3), {"groups": -1}),
    "in_not_divisible": ((3, 4, 3), {"groups": 2}),
    "out_not_divisible": ((4, 3, 3), {"groups": 2}),
    "both_not_divisible": ((3, 3, 3), {"groups": 2}),
    "padding_string": ((3, 4, 3), {"padding": "foo"}),
    "same_strided": ((3, 4, 3), {"padding": "same", "stride": (1, 2)}),
    "padding_mode": ((3, 4, 3), {"padding_mode": "foo"}),
    "groups_before_padding_mode": ((3, 4, 3), {"padding_mode": "foo", "groups": 0}),
    "padding_string_before_mode": ((3, 4, 3), {"padding": "foo", "padding_mode": "bar"}),
}
for name, (args, kwargs) in _REPRS.items():
    CASES.add(f"construct_{name}", _repr_case(*args, **kwargs))


def _padding_mode_error_case(mode, padding, x_shape):
    def case(lib):
        m = lib.nn.Conv2d(3, 2, 1, padding=padding, padding_mode=mode, bias=False)
        m.load_state_dict({"weight": lib.tensor(deterministic((2, 3, 1, 1), 2))})
        return {"y": lib.numpy(m(lib.tensor(deterministic(x_shape, 1))))}

    return case


for mode in ("reflect", "replicate", "circular"):
    for name, padding, x_shape in [
        ("width", (1, 5), (2, 3, 4, 5)),
        ("height", (4, 1), (2, 3, 4, 5)),
        ("both", (5, 6), (2, 3, 4, 5)),
        ("unbatched", (4, 1), (3, 4, 5)),
        ("input_2d", (1, 1), (4, 5)),
        ("input_5d", (1, 1), (1, 2, 3, 4, 5)),
        ("zero_height", (1, 1), (2, 3, 0, 5)),
        ("zero_height_no_padding", 0, (2, 3, 0, 5)),
        ("empty_batch", (1, 1), (0, 3, 4, 5)),
        ("channels", (1, 1), (2, 2, 4, 5)),
    ]:
        CASES.add(f"padding_mode_{mode}_{name}", _padding_mode_error_case(mode, padding, x_shape))


@pytest.mark.parametrize("name", CASES.names())
def test_matches_torch(name):
    CASES.check(name)


@pytest.mark.parametrize("name", FLOAT16_CASES.names())
def test_float16_kernel_choice_matches_torch(name):
    FLOAT16_CASES.check(name)


@pytest.mark.parametrize("name", FLOAT16_CASES.names())
def test_float16_other_processors_road(name, monkeypatch):
    """On a processor of the other kind, numbanorm takes the other road: its golden values."""
    other = "reference" if FLOAT16_ROAD == "onednn" else "onednn"
    dtypes = {"onednn": (np.dtype(np.float32), np.dtype(np.float16))}
    monkeypatch.setattr(
        conv_functional, "_onednn_dtypes", lambda: dtypes.get(other, (np.dtype(np.float32),))
    )
    with np.load(GOLDEN_DIR / f"nn_conv_float16_{other}.npz") as stored:
        expected = {k.split("/")[1]: stored[k] for k in stored.files if k.startswith(f"{name}/")}
    compare(run(FLOAT16_CASES.cases[name], NUMBANORM), expected, f"{name} ({other})")


def test_init_follows_torch_formulas_and_seed():
    numbanorm.manual_seed(3)
    m = numbanorm.nn.Conv2d(8, 300, (3, 2), groups=2)
    fan_in = 8 // 2 * 3 * 2  # kaiming_uniform_(a=sqrt(5)): bound 1/sqrt(fan_in), bias the same
    bound = 1 / math.sqrt(fan_in)
    w, b = m.weight.data, m.bias.data
    assert w.shape == (300, 4, 3, 2) and w.dtype == np.float32 and b.shape == (300,)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.var() / (bound**2 / 3) - 1) < 0.05
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    numbanorm.manual_seed(3)
    again = numbanorm.nn.Conv2d(8, 300, (3, 2), groups=2)
    np.testing.assert_array_equal(again.weight.data, w)
    np.testing.assert_array_equal(again.bias.data, b)
    assert m.weight.requires_grad and m.bias.requires_grad


def test_options_dtype_and_attributes():
    m = numbanorm.nn.Conv2d(2, 4, 3, bias=False, dtype="float64", padding="same", dilation=2)
    assert m.bias is None and m.weight.dtype == np.float64
    assert [k for k, _ in m.named_parameters()] == ["weight"]
    assert m.kernel_size == (3, 3) and m.stride == (1, 1) and m.dilation == (2, 2)
    assert m._reversed_padding_repeated_twice == (2, 2, 2, 2)
    even = numbanorm.nn.Conv2d(2, 4, (2, 4), padding="same")
    assert even._reversed_padding_repeated_twice == (1, 2, 0, 1)


def test_failed_call_changes_nothing():
    m = numbanorm.nn.Conv2d(3, 2, 3)
    before = {k: v.copy() for k, v in m.state_dict().items()}
    with pytest.raises(RuntimeError, match="expected input"):
        m(numbanorm.tensor(np.zeros((1, 4, 5, 5), np.float32), requires_grad=True))
    for key, value in m.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    assert m.weight.grad is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stride": 1.5}, "argument 'stride' must be tuple of ints, not float"),
        ({"padding": (1, "a")}, "argument 'padding' must be tuple of ints, not tuple"),
        ({"dilation": True}, "argument 'dilation' must be tuple of ints, not bool"),
        ({"groups": 1.0}, "argument 'groups' must be int, not float"),
    ],
)
def test_argument_types(kwargs, message):
    x = numbanorm.tensor(np.zeros((1, 3, 5, 5), np.float32))
    w = numbanorm.tensor(np.zeros((2, 3, 3, 3), np.float32))
    with pytest.raises(TypeError, match=re.escape(message)):
        numbanorm.nn.functional.conv2d(x, w, **kwargs)


def test_channels_last_keeps_its_layout():
    x = numbanorm.tensor(channels_last(deterministic((2, 3, 6, 6), 1)), requires_grad=True)
    w = numbanorm.tensor(deterministic((4, 3, 3, 3), 2), requires_grad=True)
    y = numbanorm.nn.functional.conv2d(x, w, padding=1)
    assert y.data.transpose(0, 2, 3, 1).flags.c_contiguous
    y.backward(numbanorm.tensor(channels_last(deterministic(y.shape, 3))))
    assert x.grad.data.transpose(0, 2, 3, 1).flags.c_contiguous
    assert w.grad.data.flags.c_contiguous
