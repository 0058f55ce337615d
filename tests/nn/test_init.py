"""numbanorm.nn.init against torch.nn.init: gains, fans and errors through the oracle; the random
fills against their formulas (bounds and moments), and the same seed giving the same numbers."""

import math
import warnings

import numpy as np
import pytest

import numbanorm
from numbanorm.nn import init
from tests.oracle import TORCH_AVAILABLE, Cases

CASES = Cases("nn_init")

GAINS = [
    ("linear", None),
    ("conv1d", None),
    ("conv2d", None),
    ("conv3d", None),
    ("conv_transpose1d", None),
    ("conv_transpose2d", None),
    ("conv_transpose3d", None),
    ("sigmoid", None),
    ("tanh", None),
    ("relu", None),
    ("leaky_relu", None),
    ("leaky_relu", 0.2),
    ("leaky_relu", 3),
    ("leaky_relu", 0),
    ("selu", None),
    ("leaky_relu", True),
    ("leaky_relu", "0.2"),
    ("gelu", None),
    ("Relu", None),
]


def _gain_case(nonlinearity, param):
    def case(lib):
        return {"gain": np.float64(lib.nn.init.calculate_gain(nonlinearity, param))}

    return case


for _name, _param in GAINS:
    CASES.add(f"gain_{_name}_{_param!r}", _gain_case(_name, _param))

FAN_SHAPES = [(3,), (), (5, 4), (0, 4), (6, 3, 5), (8, 4, 3, 3), (2, 3, 2, 2, 2), (7, 0, 3)]


def _fan_case(shape):
    def case(lib):
        fan_in, fan_out = lib.nn.init._calculate_fan_in_and_fan_out(
            lib.tensor(np.zeros(shape, np.float32))
        )
        return {"fan_in": np.int64(fan_in), "fan_out": np.int64(fan_out)}

    return case


for _shape in FAN_SHAPES:
    CASES.add(f"fan_{'x'.join(map(str, _shape)) or 'scalar'}", _fan_case(_shape))


def _fill_case(name, shape, dtype="float32", **kwargs):
    """A call whose result is deterministic: a degenerate distribution, a constant or an error."""

    def case(lib):
        tensor = lib.tensor(np.full(shape, 7, dtype))
        result = getattr(lib.nn.init, name)(tensor, **kwargs)
        assert result is tensor
        return {"out": lib.numpy(tensor)}

    return case


FILLS = {
    "uniform_degenerate": ("uniform_", (3, 4), "float32", {"a": 2.5, "b": 2.5}),
    "uniform_float64": ("uniform_", (5,), "float64", {"a": -1.25, "b": -1.25}),
    "normal_zero_std": ("normal_", (2, 3, 2), "float32", {"mean": -0.5, "std": 0.0}),
    "constant": ("constant_", (4, 2), "float32", {"val": 0.3}),
    "constant_float64": ("constant_", (3,), "float64", {"val": 0.1}),
    "constant_scalar": ("constant_", (), "float32", {"val": -2.0}),
    "ones": ("ones_", (2, 5), "float32", {}),
    "zeros": ("zeros_", (3, 3, 2), "float64", {}),
    "xavier_uniform_zero_gain": ("xavier_uniform_", (3, 4), "float32", {"gain": 0.0}),
    "xavier_normal_zero_gain": ("xavier_normal_", (3, 4, 2), "float32", {"gain": 0.0}),
    "xavier_uniform_1d": ("xavier_uniform_", (4,), "float32", {}),
    "xavier_normal_1d": ("xavier_normal_", (4,), "float32", {}),
    "kaiming_uniform_1d": ("kaiming_uniform_", (4,), "float32", {}),
    "kaiming_normal_scalar": ("kaiming_normal_", (), "float32", {}),
    "kaiming_uniform_bad_mode": ("kaiming_uniform_", (3, 4), "float32", {"mode": "fan_avg"}),
    "kaiming_normal_bad_mode_upper": ("kaiming_normal_", (3, 4), "float32", {"mode": "FAN_X"}),
    "kaiming_uniform_bad_nonlinearity": (
        "kaiming_uniform_",
        (3, 4),
        "float32",
        {"nonlinearity": "swish"},
    ),
    "kaiming_normal_bad_slope": ("kaiming_normal_", (3, 4), "float32", {"a": "0.1"}),
}


for _case_name, (_function, _shape, _dtype, _kwargs) in FILLS.items():
    CASES.add(_case_name, _fill_case(_function, _shape, _dtype, **_kwargs))


@pytest.mark.parametrize("name", CASES.names())
def test_matches_torch(name):
    CASES.check(name)


def _tensor(shape, dtype=np.float32):
    return numbanorm.tensor(np.zeros(shape, dtype), requires_grad=True)


def _bound_and_std(name, shape, **kwargs):
    """The uniform bound or normal std torch's formula gives ``name`` on ``shape``."""
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(_tensor(shape))
    if name.startswith("xavier"):
        std = kwargs.get("gain", 1.0) * math.sqrt(2.0 / (fan_in + fan_out))
    else:
        fan = fan_in if kwargs.get("mode", "fan_in").lower() == "fan_in" else fan_out
        gain = init.calculate_gain(kwargs.get("nonlinearity", "leaky_relu"), kwargs.get("a", 0))
        std = gain / math.sqrt(fan)
    return math.sqrt(3.0) * std, std


RANDOM = [
    ("kaiming_uniform_", (128, 64, 3, 3), {}),
    ("kaiming_uniform_", (256, 300), {"a": math.sqrt(5)}),
    ("kaiming_uniform_", (64, 32, 5), {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal_", (128, 64, 3, 3), {"nonlinearity": "relu"}),
    ("kaiming_normal_", (200, 300), {"mode": "Fan_Out", "a": 0.2}),
    ("xavier_uniform_", (300, 200), {}),
    ("xavier_uniform_", (64, 32, 3, 3), {"gain": init.calculate_gain("tanh")}),
    ("xavier_normal_", (300, 200), {"gain": 2.0}),
    ("xavier_normal_", (64, 32, 3, 3), {}),
]


@pytest.mark.parametrize("name, shape, kwargs", RANDOM)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_fills_follow_the_formulas(name, shape, kwargs, dtype):
    numbanorm.manual_seed(1234)
    tensor = _tensor(shape, dtype)
    before = tensor.data
    assert getattr(init, name)(tensor, **kwargs) is tensor
    values = tensor.data
    assert values is before and values.dtype == dtype and values.shape == shape  # in place
    assert tensor.grad is None and tensor.grad_fn is None and tensor.requires_grad
    bound, std = _bound_and_std(name, shape, **kwargs)
    n = values.size
    assert abs(values.mean()) < 5 * std / math.sqrt(n)
    # The sample standard deviation of n draws is within a few std/sqrt(2n) of the true one.
    assert abs(values.std() - std) < 5 * std / math.sqrt(2 * n) + 1e-6 * std
    if name.endswith("uniform_"):
        assert np.abs(values).max() <= np.float64(dtype(bound))
        assert np.abs(values).max() > 0.99 * bound
    else:
        assert np.abs(values).max() > 3 * std  # a normal's tails, not a uniform's box


def test_uniform_and_normal_statistics():
    numbanorm.manual_seed(7)
    tensor = _tensor((100_000,), np.float64)
    init.uniform_(tensor, -3.0, 5.0)
    assert tensor.data.min() >= -3.0 and tensor.data.max() < 5.0
    assert abs(tensor.data.mean() - 1.0) < 0.05
    assert abs(tensor.data.var() - 64 / 12) < 0.1
    init.uniform_(tensor)
    assert tensor.data.min() >= 0.0 and tensor.data.max() < 1.0
    init.normal_(tensor, 2.0, 0.5)
    assert abs(tensor.data.mean() - 2.0) < 0.01 and abs(tensor.data.std() - 0.5) < 0.01
    init.normal_(tensor)
    assert abs(tensor.data.mean()) < 0.02 and abs(tensor.data.std() - 1.0) < 0.02


@pytest.mark.parametrize("name, shape, kwargs", RANDOM[:1] + RANDOM[3:4] + RANDOM[5:6])
def test_same_seed_same_numbers(name, shape, kwargs):
    numbanorm.manual_seed(0)
    first = getattr(init, name)(_tensor(shape), **kwargs).data.copy()
    again = getattr(init, name)(_tensor(shape), **kwargs).data.copy()
    numbanorm.manual_seed(0)
    repeated = getattr(init, name)(_tensor(shape), **kwargs).data
    np.testing.assert_array_equal(first, repeated)
    assert not np.array_equal(first, again)  # the stream moves on between calls
    numbanorm.manual_seed(1)
    assert not np.array_equal(first, getattr(init, name)(_tensor(shape), **kwargs).data)


def test_explicit_generator_is_used_and_module_generator_left_alone():
    numbanorm.manual_seed(3)
    expected_next = numbanorm.random.default_generator().bit_generator.state
    a = init.kaiming_uniform_(_tensor((4, 5)), generator=np.random.default_rng(11)).data
    b = init.kaiming_uniform_(_tensor((4, 5)), generator=np.random.default_rng(11)).data
    np.testing.assert_array_equal(a, b)
    assert numbanorm.random.default_generator().bit_generator.state == expected_next
    c = init.normal_(_tensor((3,)), generator=np.random.default_rng(5)).data
    np.testing.assert_array_equal(c, np.random.default_rng(5).normal(0, 1, 3).astype(np.float32))


def test_works_on_parameters_of_a_module():
    module = numbanorm.nn.BatchNorm2d(4)
    weight = init.uniform_(module.weight, 0.5, 0.75)
    assert weight is module.weight
    assert np.all((weight.data >= 0.5) & (weight.data < 0.75))
    init.zeros_(module.bias)
    np.testing.assert_array_equal(module.state_dict()["bias"], np.zeros(4, np.float32))


@pytest.mark.parametrize("name", ["kaiming_uniform_", "kaiming_normal_"])
def test_zero_element_tensor_warns_and_is_left_alone(name):
    tensor = _tensor((0, 3))
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        assert getattr(init, name)(tensor) is tensor
    if TORCH_AVAILABLE:
        import torch

        with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
            getattr(torch.nn.init, name)(torch.zeros(0, 3))


def test_zero_element_tensor_for_other_fills_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ["uniform_", "normal_", "ones_", "zeros_"]:
            assert getattr(init, name)(_tensor((0, 3))).data.shape == (0, 3)
