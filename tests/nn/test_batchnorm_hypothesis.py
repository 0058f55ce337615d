"""BatchNorm1d/2d/3d on hypothesis' shapes, memory layouts, dtypes and arguments, against an
independent float64 numpy reference (and torch, live, when it is installed).

Shapes: N and the 0 to 3 spatial sizes in 0..4 (so 1 and empty batches), C in 1..4. Layouts:
contiguous, channels-last, and strided views (any axis order in memory, steps of 2, negative
strides). Each example runs two training steps and an evaluation step, forward and backward
(with or without a gradient for the input).

``test_batchnorm_fuzz`` is the long run, ``python -m pytest -m fuzz`` (the "fuzz" hypothesis
profile); in a run that does not ask for fuzz tests it runs the loaded profile's few examples.
"""

from math import prod

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import numbanorm
from tests.fuzz import fuzz
from tests.oracle import NUMBANORM, TORCH_AVAILABLE, Lib, channels_last, compare, deterministic
from tests.tolerances import assert_close

MODULES = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}
STEPS = ("train", "train", "eval")


@st.composite
def scenarios(draw):
    sizes = st.integers(0, 4)
    spatial = draw(st.lists(sizes, min_size=0, max_size=3))
    shape = (draw(sizes), draw(st.integers(1, 4)), *spatial)
    ndim = len(shape)
    layout = draw(st.sampled_from(["contiguous", "channels_last", "strided"]))
    strides = None
    if layout == "strided":
        order = draw(st.permutations(range(ndim)))
        steps = draw(st.lists(st.sampled_from([1, 2, -1, -2]), min_size=ndim, max_size=ndim))
        strides = (tuple(order), tuple(steps))
    affine = draw(st.booleans())
    return {
        "shape": shape,
        "layout": layout,
        "strides": strides,
        "dtype": draw(st.sampled_from(["float16", "float32", "float64"])),
        "affine": affine,
        "bias": affine and draw(st.booleans()),
        "track": draw(st.booleans()),
        "momentum": draw(st.sampled_from([0.1, 0.0, 1.0, None])),
        "eps": draw(st.sampled_from([1e-5, 0.1])),
        "input_grad": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def make_input(scenario, seed):
    """The step's input values, stored in the scenario's layout (a view, never compacted)."""
    values = deterministic(scenario["shape"], seed, scenario["dtype"], -2.0, 4.0)
    if scenario["layout"] == "contiguous":
        return values
    if scenario["layout"] == "channels_last":
        return channels_last(values)
    order, steps = scenario["strides"]
    stored = np.transpose(values, order)
    sizes = [size * abs(step) for size, step in zip(stored.shape, steps, strict=True)]
    base = np.zeros(sizes, values.dtype)
    view = base[tuple(slice(None, None, step) for step in steps)]
    view[...] = stored
    return np.transpose(view, np.argsort(order))


def parameters(scenario):
    channels = scenario["shape"][1]
    dtype = scenario["dtype"]
    values = {}
    if scenario["affine"]:
        values["weight"] = deterministic((channels,), scenario["seed"] + 10, dtype, 0.5, 1.5)
        if scenario["bias"]:
            values["bias"] = deterministic((channels,), scenario["seed"] + 11, dtype)
    return values


def upstream(scenario, step):
    return deterministic(scenario["shape"], scenario["seed"] + 20 + step, scenario["dtype"])


def run_module(lib, scenario, dtype=None):
    """The three steps on ``lib``: outputs, gradients and the state after each step. With
    ``dtype`` (torch only), the scenario's values (still drawn in the scenario's dtype) are
    computed in it, and the running statistics rounded to the scenario's dtype after each step."""
    shape = scenario["shape"]
    dtype = dtype or scenario["dtype"]
    module = getattr(lib.nn, MODULES[len(shape)])(
        shape[1],
        eps=scenario["eps"],
        momentum=scenario["momentum"],
        affine=scenario["affine"],
        track_running_stats=scenario["track"],
        dtype=lib.dtype(dtype),
        bias=scenario["bias"],
    )
    module.load_state_dict(
        {k: lib.tensor(v.astype(dtype)) for k, v in parameters(scenario).items()}, strict=False
    )
    out = {}
    for step, mode in enumerate(STEPS):
        module.train(mode == "train")
        array = make_input(scenario, scenario["seed"] + step).astype(dtype, copy=False)
        before = array.copy()
        # numbanorm gets the strided view itself; torch a contiguous copy: it takes no negative
        # strides, and torch 2.13 gets the input gradient wrong for some size-1-axis layouts
        # (shape (1, 2, 1, 2), strides (1, 1, 2, 2), a contiguous upstream gradient).
        grad = scenario["input_grad"]
        if lib is NUMBANORM:
            x = numbanorm.Tensor(array, requires_grad=grad)
        else:
            x = lib.tensor(np.ascontiguousarray(array), requires_grad=grad)
        y = module(x)
        if grad or scenario["affine"]:
            y.backward(lib.tensor(upstream(scenario, step).astype(dtype)))
        if lib is NUMBANORM:
            np.testing.assert_array_equal(array, before, "the input was modified")
            if scenario["layout"] == "channels_last":
                assert np.moveaxis(y.data, 1, -1).flags.c_contiguous, "y is not channels-last"
        out[f"y{step}"] = lib.numpy(y)
        if grad:
            out[f"dx{step}"] = lib.numpy(x.grad)
        for name, param in module.named_parameters():
            out[f"d{name}{step}"] = lib.numpy(param.grad)
        module.zero_grad()
        if dtype != scenario["dtype"]:  # torch's buffers hold the scenario's dtype's values
            for buffer in module.buffers():
                if buffer.is_floating_point():
                    buffer.copy_(buffer.to(lib.dtype(scenario["dtype"])))
        for key, value in module.state_dict().items():
            out[f"{key}{step}"] = np.array(np.asarray(value))
    return out


def reference(scenario):
    """What ``run_module`` gives, computed in float64 with numpy, rounded to the dtype."""
    shape, dtype = scenario["shape"], scenario["dtype"]
    channels = shape[1]
    axes = (0, *range(2, len(shape)))
    bshape = (1, channels) + (1,) * (len(shape) - 2)
    count = prod(shape) // channels
    given_params = parameters(scenario)
    weight = given_params.get("weight", np.ones(channels, dtype)).astype(np.float64)
    bias = given_params.get("bias", np.zeros(channels, dtype)).astype(np.float64)
    running_mean, running_var, tracked = np.zeros(channels), np.ones(channels), 0
    out = {}
    for step, mode in enumerate(STEPS):
        x = make_input(scenario, scenario["seed"] + step).astype(np.float64)
        dy = upstream(scenario, step).astype(np.float64)
        training = mode == "train"
        if training and scenario["track"]:
            tracked += 1
        if training or not scenario["track"]:
            mean = x.mean(axes) if count else np.zeros(channels)
            var = ((x - mean.reshape(bshape)) ** 2).mean(axes) if count else np.ones(channels)
            if training and scenario["track"] and count:
                m = 1.0 / tracked if scenario["momentum"] is None else scenario["momentum"]
                running_mean = ((1 - m) * running_mean + m * mean).astype(dtype)
                running_var = (1 - m) * running_var + m * var * count / (count - 1)
                running_var = running_var.astype(dtype)
        else:
            mean, var = running_mean, running_var
        invstd = (1.0 / np.sqrt(np.asarray(var, np.float64) + scenario["eps"])).reshape(bshape)
        xhat = (x - np.asarray(mean, np.float64).reshape(bshape)) * invstd
        w = weight.reshape(bshape)
        out[f"y{step}"] = xhat * w + bias.reshape(bshape)
        dbias = dy.sum(axes)
        dweight = (dy * xhat).sum(axes)
        if training or not scenario["track"]:
            dx = (
                w
                * invstd
                * (dy - (dbias.reshape(bshape) + xhat * dweight.reshape(bshape)) / max(count, 1))
            )
        else:
            dx = w * invstd * dy
        if scenario["input_grad"]:
            out[f"dx{step}"] = dx
        if scenario["affine"]:
            out[f"dweight{step}"] = dweight
            if scenario["bias"]:
                out[f"dbias{step}"] = dbias
        state = dict(given_params)
        if scenario["track"]:
            state |= {"running_mean": running_mean, "running_var": running_var}
        for key, value in state.items():
            out[f"{key}{step}"] = value
        if scenario["track"]:
            out[f"num_batches_tracked{step}"] = np.array(tracked, np.int64)
    rounded = {
        k: np.asarray(v).astype(np.asarray(v).dtype if k.startswith("num") else dtype)
        for k, v in out.items()
    }
    return rounded


def check_scenario(scenario):
    shape = scenario["shape"]
    # One value per channel cannot train: an error, checked elsewhere (test_batchnorm_errors).
    assume(shape[0] * prod(shape[2:]) != 1)
    actual = run_module(NUMBANORM, scenario)
    expected = reference(scenario)
    assert sorted(actual) == sorted(expected)
    for key in expected:
        assert_close(actual[key], expected[key], f"{key} vs float64 reference")
    if TORCH_AVAILABLE:
        # torch's semantics on the same values, computed in float64: in float16 and float32 its
        # CPU kernels are less accurate than the table's tolerances where a channel's values
        # nearly coincide (numbanorm is held to the float64 reference above).
        torch_result = run_module(Lib("torch"), scenario, "float64")
        dtype = scenario["dtype"]
        rounded = {
            k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in torch_result.items()
        }
        compare(actual, rounded, "vs torch")


@given(scenarios())
def test_batchnorm_matches_reference(scenario):
    check_scenario(scenario)


@pytest.mark.fuzz
def test_batchnorm_fuzz(pytestconfig):
    fuzz(pytestconfig, scenarios(), check_scenario)
