"""InstanceNorm1d/2d/3d on hypothesis' shapes, memory layouts, dtypes and arguments, against an
independent float64 numpy reference (and torch, live, when it is installed).

Shapes: N in 0..3, C in 1..4, 1 to 3 spatial sizes in 0..4 (not a single spatial element, which
cannot give statistics: test_instance_norm_errors), batched or unbatched (one sample given
without its batch axis). Layouts: contiguous,
channels-last, and strided views (any axis order in memory, steps of 2, negative strides). Each
example runs two training steps and an evaluation step, forward and backward (with or without a
gradient for the input).

``test_instance_norm_fuzz`` is the long run, ``python -m pytest -m fuzz`` (the "fuzz" hypothesis
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

MODULES = {1: "InstanceNorm1d", 2: "InstanceNorm2d", 3: "InstanceNorm3d"}
STEPS = ("train", "train", "eval")


@st.composite
def scenarios(draw):
    sizes = st.integers(0, 4)
    spatial = draw(st.lists(sizes, min_size=1, max_size=3))
    unbatched = draw(st.booleans())
    n = 1 if unbatched else draw(st.integers(0, 3))
    shape = (n, draw(st.integers(1, 4)), *spatial)
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
        "unbatched": unbatched,
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
    """The step's input values (N, C, *spatial), stored in the scenario's layout (a view, never
    compacted)."""
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
    computed in it, and the running statistics rounded to the scenario's dtype after each step.
    An unbatched scenario gives the module its one sample without the batch axis."""
    shape = scenario["shape"]
    dtype = dtype or scenario["dtype"]
    module = getattr(lib.nn, MODULES[len(shape) - 2])(
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
    unbatch = (lambda a: a[0]) if scenario["unbatched"] else (lambda a: a)
    out = {}
    for step, mode in enumerate(STEPS):
        module.train(mode == "train")
        array = unbatch(make_input(scenario, scenario["seed"] + step).astype(dtype, copy=False))
        before = array.copy()
        # numbanorm gets the strided view itself; torch a contiguous copy (no negative strides).
        grad = scenario["input_grad"]
        if lib is NUMBANORM:
            x = numbanorm.Tensor(array, requires_grad=grad)
        else:
            x = lib.tensor(np.ascontiguousarray(array), requires_grad=grad)
        y = module(x)
        if grad or scenario["affine"]:
            y.backward(lib.tensor(unbatch(upstream(scenario, step)).astype(dtype)))
        if lib is NUMBANORM:
            np.testing.assert_array_equal(array, before, "the input was modified")
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
    """What ``run_module`` gives, computed in float64 with numpy, rounded to the dtype as torch
    rounds: each sample's copy of a running statistic, then their average."""
    shape, dtype = scenario["shape"], scenario["dtype"]
    n, channels = shape[:2]
    axes = tuple(range(2, len(shape)))
    count = prod(shape[2:])
    bshape = (1, channels) + (1,) * len(axes)
    given_params = parameters(scenario)
    weight = given_params.get("weight", np.ones(channels, dtype)).astype(np.float64)
    bias = given_params.get("bias", np.zeros(channels, dtype)).astype(np.float64)
    w = weight.reshape(bshape)
    momentum = scenario["momentum"] or 0.0
    running_mean, running_var = np.zeros(channels, dtype), np.ones(channels, dtype)
    unbatch = (lambda a: a[0]) if scenario["unbatched"] else (lambda a: a)
    out = {}
    for step, mode in enumerate(STEPS):
        x = make_input(scenario, scenario["seed"] + step).astype(np.float64)
        dy = upstream(scenario, step).astype(np.float64)
        own = mode == "train" or not scenario["track"]
        if own:
            mean = x.mean(axes, keepdims=True) if count else np.zeros((n, *bshape[1:]))
            var = ((x - mean) ** 2).mean(axes, keepdims=True) if count else np.ones_like(mean)
            if mode == "train" and scenario["track"]:
                new = []
                for running, stat in ((running_mean, mean), (running_var, var)):
                    if count == 0:
                        copies = np.broadcast_to(running, (n, channels))
                    else:
                        if stat is var:
                            stat = stat * count / (count - 1)
                        stat = stat.reshape(n, channels)
                        copies = (1 - momentum) * running.astype(np.float64) + momentum * stat
                    with np.errstate(invalid="ignore"):
                        average = copies.astype(dtype).astype(np.float64).sum(0) / n
                    new.append(average.astype(dtype))
                running_mean, running_var = new
        else:
            mean = running_mean.astype(np.float64).reshape(bshape)
            var = running_var.astype(np.float64).reshape(bshape)
        invstd = 1.0 / np.sqrt(var + scenario["eps"])
        xhat = (x - mean) * invstd
        out[f"y{step}"] = unbatch(xhat * w + bias.reshape(bshape))
        if own and count:
            g = dy - dy.mean(axes, keepdims=True) - xhat * (dy * xhat).mean(axes, keepdims=True)
            dx = w * invstd * g
        else:
            dx = w * invstd * dy
        if scenario["input_grad"]:
            out[f"dx{step}"] = unbatch(dx)
        if scenario["affine"]:
            out[f"dweight{step}"] = (dy * xhat).sum((0, *axes))
            if scenario["bias"]:
                out[f"dbias{step}"] = dy.sum((0, *axes))
        state = dict(given_params)
        if scenario["track"]:
            state |= {
                "running_mean": running_mean,
                "running_var": running_var,
                "num_batches_tracked": np.array(0, np.int64),
            }
        for key, value in state.items():
            out[f"{key}{step}"] = value
    return {
        k: np.asarray(v).astype(np.asarray(v).dtype if k.startswith("num") else dtype)
        for k, v in out.items()
    }


def check_scenario(scenario):
    shape = scenario["shape"]
    # One spatial element gives no statistics: an error, checked in test_instance_norm_errors;
    # so is an empty batch with affine parameters (torch reads weight[0] of no copies).
    assume(prod(shape[2:]) != 1)
    assume(not (shape[0] == 0 and scenario["affine"]))
    actual = run_module(NUMBANORM, scenario)
    expected = reference(scenario)
    assert sorted(actual) == sorted(expected)
    for key in expected:
        assert_close(actual[key], expected[key], f"{key} vs float64 reference")
    if TORCH_AVAILABLE:
        # torch's semantics on the same values, computed in float64 (its float16 and float32
        # kernels are less accurate than the table's tolerances where a row's values nearly
        # coincide; numbanorm is held to the float64 reference above).
        torch_result = run_module(Lib("torch"), scenario, "float64")
        dtype = scenario["dtype"]
        rounded = {
            k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in torch_result.items()
        }
        compare(actual, rounded, "vs torch")


@given(scenarios())
def test_instance_norm_matches_reference(scenario):
    check_scenario(scenario)


@pytest.mark.fuzz
def test_instance_norm_fuzz(pytestconfig):
    fuzz(pytestconfig, scenarios(), check_scenario)
