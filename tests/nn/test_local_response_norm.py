"""LocalResponseNorm and F.local_response_norm against torch 2.13: values and input gradients
over ranks 3 to 6, memory layouts, dtypes, window sizes and parameters; torch's result for an
empty input (the input itself); torch's errors in torch's order, including those its composite
ops raise (pad, avg_pool, view, mul/add/pow); the module's repr and state. Then hypothesis over
shapes, layouts, dtypes and parameters against a float64 numpy reference (and torch, live).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numbanorm
from tests.fuzz import fuzz
from tests.oracle import NUMBANORM, TORCH_AVAILABLE, Cases, Lib, channels_last, deterministic
from tests.tolerances import assert_close

CASES = Cases("local_response_norm")


def make_array(shape, dtype, layout, seed, low=-2.0, high=2.0):
    """Values of ``shape`` stored as ``layout`` says: contiguous; channels_last; transposed (the
    last two axes swapped in memory); strided (every other element along the last axis);
    channels_first (the channel axis outermost in memory)."""
    values = deterministic(shape, seed, np.float64, low, high).astype(dtype)
    if layout == "contiguous":
        return values
    if layout == "channels_last":
        return channels_last(values)
    if layout == "transposed":
        return np.swapaxes(np.ascontiguousarray(np.swapaxes(values, -1, -2)), -1, -2)
    if layout == "channels_first":
        return np.swapaxes(np.ascontiguousarray(np.swapaxes(values, 0, 1)), 0, 1)
    assert layout == "strided", layout
    wide = np.zeros((*shape[:-1], 2 * shape[-1]), dtype)
    wide[..., ::2] = values
    return wide[..., ::2]


def wrap(lib, array, requires_grad=False):
    """A tensor viewing ``array`` with its strides (lib.tensor would compact a slice)."""
    if lib.name == "torch":
        return lib.torch.from_numpy(array).requires_grad_(requires_grad)
    return numbanorm.Tensor(array, requires_grad)


def lrn_case(
    lib,
    shape=(2, 5, 3, 2),
    dtype="float32",
    layout="contiguous",
    size=3,
    alpha=1e-4,
    beta=0.75,
    k=1.0,
    module=False,
    grad=True,
    low=-2.0,
    high=2.0,
):
    """One call (module or functional) on a tiny input: the output and the input's gradient."""
    x = wrap(lib, make_array(shape, dtype, layout, 1, low, high), grad)
    if module:
        y = lib.nn.LocalResponseNorm(size, alpha, beta, k)(x)
    else:
        y = lib.F.local_response_norm(x, size, alpha, beta, k)
    out = {"y": lib.numpy(y)}
    if grad:
        y.backward(lib.tensor(deterministic(shape, 2, dtype)))
        out["dx"] = lib.numpy(x.grad)
    return out


def add(name, **arguments):
    CASES.add(name, lambda lib, a=arguments: lrn_case(lib, **a))


# Ranks, layouts and dtypes.
_SHAPES = {3: (2, 5, 4), 4: (2, 5, 3, 2), 5: (2, 4, 2, 3, 2), 6: (1, 4, 2, 1, 2, 3)}
for _rank, _shape in _SHAPES.items():
    for _dtype in ("float32", "float64"):
        add(f"rank{_rank}-{_dtype}", shape=_shape, dtype=_dtype)
    for _layout in ("channels_last", "transposed", "strided", "channels_first"):
        if _rank == 3 and _layout == "transposed":
            continue  # for 3-D input, transposed is channels-last
        add(f"rank{_rank}-{_layout}", shape=_shape, layout=_layout, dtype="float64")
add("rank5-channels_last-float32", shape=_SHAPES[5], layout="channels_last")
add("rank3-float16", shape=(2, 5, 4), dtype="float16", alpha=0.5)
add("rank3-float16-channels_last", shape=(2, 5, 4), dtype="float16", layout="channels_last")
add("module", module=True, size=2, alpha=0.3, beta=0.5, k=2.0)
add("one-position", shape=(1, 6, 1))

# Window sizes: 1, even and odd, as large as C, beyond it; one channel.
for _size in (1, 2, 4, 5, 6, 7, 100):
    add(f"size{_size}", size=_size, alpha=0.5, dtype="float64")
add("one-channel", shape=(3, 1, 2, 2), size=3, alpha=0.5)

# Parameters: beta 0 (the input itself), alpha 0, k 0, negative beta, large alpha, and the
# NaN/inf torch gives where the base is 0 or negative.
add("beta0", beta=0.0, alpha=0.5)
add("alpha0", alpha=0.0, k=2.0)
add("k0", k=0.0, alpha=1.0)
add("negative-beta", beta=-0.5, alpha=0.5)
add("large-alpha", alpha=10.0, beta=2.0, dtype="float64")
add("negative-k", k=-1.0, alpha=0.1, grad=False)
add("zero-base", k=0.0, alpha=1.0, low=0.0, high=0.0, grad=False)
add("large-values", alpha=1.0, low=100.0, high=1000.0)


def int_case(lib, shape, size, alpha=1e-4, beta=0.75, k=1.0):
    """int64 input: torch floors the mean of the squares and returns a float tensor."""
    x = lib.tensor(np.arange(np.prod(shape)).reshape(shape) % 7 - 3)
    y = lib.F.local_response_norm(x, size, alpha, beta, k)
    return {"y": lib.numpy(y), "dtype": np.array(str(y.dtype).replace("torch.", ""))}


CASES.add("int64-rank3", lambda lib: int_case(lib, (2, 5, 3), 3, alpha=1.0))
CASES.add("int64-rank4", lambda lib: int_case(lib, (2, 5, 3, 1), 2, alpha=0.5, k=2.0))
CASES.add("int64-int-arguments", lambda lib: int_case(lib, (1, 4, 2), 3, 1, 2, 1))
CASES.add("int64-bool-arguments", lambda lib: int_case(lib, (1, 4, 2), 3, True, True, False))
CASES.add(
    "int64-float64-alpha",
    lambda lib: int_case(lib, (1, 4, 2), 3, lib.tensor(np.array(0.5))),
)
CASES.add("int64-negative-int-beta", lambda lib: int_case(lib, (1, 4, 2), 3, 1, -1, 1))
CASES.add("int64-negative-float-beta", lambda lib: int_case(lib, (1, 4, 2), 3, 1, -1.0, 1))


# Arguments of other types: numpy numbers, bools, 0-d tensors.
def arguments_case(lib, size, alpha=1e-4, beta=0.75, k=1.0, shape=(2, 5, 3)):
    x = lib.tensor(deterministic(shape, 3, np.float32))
    return {"y": lib.numpy(lib.F.local_response_norm(x, size, alpha, beta, k))}


CASES.add("size-numpy-int", lambda lib: arguments_case(lib, np.int32(3)))
CASES.add("size-tensor", lambda lib: arguments_case(lib, lib.tensor(np.array(3))))
CASES.add("alpha-bool", lambda lib: arguments_case(lib, 3, alpha=True))
CASES.add("alpha-numpy", lambda lib: arguments_case(lib, 3, alpha=np.float32(0.5)))
CASES.add("alpha-tensor", lambda lib: arguments_case(lib, 3, alpha=lib.tensor(np.array(0.5))))
CASES.add("beta-tensor", lambda lib: arguments_case(lib, 3, beta=lib.tensor(np.array(0.5))))
CASES.add("k-int", lambda lib: arguments_case(lib, 3, k=2, alpha=1))


# Errors, in torch's order: rank, view, size (Python's //, pad, narrow, the pool's argument
# parser and shape checks), dtype, then alpha (mul), k (add), beta (pow).
def error_case(lib, size=3, alpha=1e-4, beta=0.75, k=1.0, shape=(2, 3, 4), dtype="float32",
               layout="contiguous"):  # fmt: skip
    x = wrap(lib, make_array(shape, dtype, layout, 4))
    return {"y": lib.numpy(lib.F.local_response_norm(x, size, alpha, beta, k))}


def add_error(name, **arguments):
    CASES.add(f"error-{name}", lambda lib, a=arguments: error_case(lib, **a))


for _rank in (0, 1, 2):
    add_error(f"rank{_rank}", shape=(2, 3, 4)[:_rank])
add_error("rank2-empty", shape=(0, 3))
add_error("rank2-bad-size", shape=(2, 3), size=None)
_BAD_SIZES = {
    "none": None, "str": "3", "float": 3.0, "numpy-float": np.float64(3), "bool": True,
    "numpy-bool": np.bool_(True), "zero": 0, "minus1": -1, "minus2": -2, "minus3": -3,
    "minus4": -4,
}  # fmt: skip
_BAD_DTYPES = ("int32", "int16", "int8", "uint8", "bool", "complex64")
for _rank in (3, 4):
    _shape = (2, 3, 4, 2)[:_rank]
    for _name, _size in _BAD_SIZES.items():
        add_error(f"rank{_rank}-size-{_name}", shape=_shape, size=_size)
    for _dtype in _BAD_DTYPES + ("float16",) * (_rank > 3):
        add_error(f"rank{_rank}-{_dtype}", shape=_shape, dtype=_dtype)
add_error("size-minus2-two-channels", shape=(2, 2, 4), size=-2)
add_error("size-minus1-one-channel", shape=(2, 1, 4), size=-1)
add_error("size-zero-before-dtype", shape=(2, 3, 4, 2), size=0, dtype="int32")
add_error("size-float-before-dtype", size=2.5, dtype="int32")
add_error("dtype-before-alpha", dtype="int32", alpha=None)
add_error("rank5-float16", shape=(2, 3, 2, 2, 2), dtype="float16")
add_error("rank6-int32", shape=(1, 3, 2, 1, 2, 2), dtype="int32")
CASES.add(
    "error-size-float-tensor",
    lambda lib: error_case(lib, size=lib.tensor(np.array(3.0))),
)
CASES.add(
    "error-size-bool-tensor",
    lambda lib: error_case(lib, size=lib.tensor(np.array(True))),
)
for _name, _value in [("none", None), ("str", "a"), ("list", [1.0])]:
    add_error(f"alpha-{_name}", alpha=_value)
    add_error(f"k-{_name}", k=_value)
    add_error(f"beta-{_name}", beta=_value)
add_error("beta-tuple", beta=(1.0,))
add_error("alpha-before-k-and-beta", alpha=None, k=None, beta=None)
add_error("k-before-beta", k="a", beta="b")
# torch views input*input as (N, 1, C, D, -1): axes after the third that do not merge in that
# product's memory order (it keeps the input's permutation) raise; others do not.
add_error("rank5-transposed", shape=(2, 3, 2, 3, 4), layout="transposed")
add_error("rank5-transposed-size-none", shape=(2, 3, 2, 3, 4), layout="transposed", size=None)
add_error("rank6-transposed", shape=(1, 3, 2, 2, 3, 2), layout="transposed")
add_error("rank5-channels-last", shape=(2, 3, 2, 3, 4), layout="channels_last")
add_error("rank5-strided", shape=(2, 3, 2, 3, 4), layout="strided")
add_error("rank5-channels-first", shape=(2, 3, 2, 3, 4), layout="channels_first")
add_error("rank5-transposed-size-one-axis", shape=(2, 3, 2, 1, 4), layout="transposed")


def permuted_case(lib, shape, order):
    """A dense input whose memory holds its axes in ``order``: some ranks-5/6 orders view."""
    stored = np.ascontiguousarray(np.transpose(deterministic(shape, 5, np.float32), order))
    x = wrap(lib, np.transpose(stored, np.argsort(order)))
    return {"y": lib.numpy(lib.F.local_response_norm(x, 2, 0.5))}


for _order in [(0, 2, 1, 3, 4), (0, 3, 4, 2, 1), (2, 0, 1, 3, 4), (0, 1, 2, 4, 3), (4, 3, 2, 1, 0)]:
    CASES.add(
        f"permuted{''.join(map(str, _order))}",
        lambda lib, o=_order: permuted_case(lib, (2, 3, 2, 3, 2), o),
    )
CASES.add("permuted-rank6", lambda lib: permuted_case(lib, (1, 3, 2, 2, 2, 3), (0, 2, 1, 3, 4, 5)))


def empty_case(lib, shape, dtype="float32", size=3, requires_grad=False):
    """torch returns an empty input itself, before looking at the other arguments."""
    x = lib.tensor(np.zeros(shape, dtype), requires_grad)
    y = lib.F.local_response_norm(x, size)
    return {"same": np.array(y is x), "y": lib.numpy(y)}


CASES.add("empty-batch", lambda lib: empty_case(lib, (0, 3, 4)))
CASES.add("empty-channels", lambda lib: empty_case(lib, (2, 0, 4, 2)))
CASES.add("empty-spatial", lambda lib: empty_case(lib, (2, 3, 0, 2, 2), "float64"))
CASES.add("empty-int32", lambda lib: empty_case(lib, (0, 3, 4), "int32"))
CASES.add("empty-bad-size", lambda lib: empty_case(lib, (0, 3, 4), size=None))
CASES.add("empty-requires-grad", lambda lib: empty_case(lib, (0, 3, 4), requires_grad=True))


def module_case(lib):
    modules = [lib.nn.LocalResponseNorm(5), lib.nn.LocalResponseNorm(2, 0.5, 1, k=2)]
    out = {f"repr{i}": np.array(repr(m)) for i, m in enumerate(modules)}
    m = modules[0]
    out["state"] = np.array(len(m.state_dict()) + len(list(m.parameters())))
    x = lib.tensor(deterministic((2, 6, 3), 6, np.float32))
    out["train"] = lib.numpy(m(x))
    out["eval"] = lib.numpy(m.eval()(x))
    return out


CASES.add("module-repr-state-modes", module_case)


@pytest.mark.parametrize("name", CASES.names())
def test_local_response_norm(name):
    CASES.check(name)


def test_failed_call_leaves_input_alone():
    array = deterministic((2, 3, 4), 7, np.float32)
    x = numbanorm.Tensor(array.copy(), requires_grad=True)
    with pytest.raises(TypeError):
        numbanorm.nn.functional.local_response_norm(x, 3, beta=None)
    np.testing.assert_array_equal(x.data, array)
    assert x.grad is None


def test_channels_last_output_stays_channels_last():
    x = numbanorm.Tensor(channels_last(deterministic((2, 5, 3, 4), 8, np.float32)), True)
    y = numbanorm.nn.LocalResponseNorm(3)(x)
    y.backward(numbanorm.Tensor(np.ones(y.shape, np.float32)))
    for array in (y.data, x.grad.data):
        assert np.moveaxis(array, 1, -1).flags.c_contiguous


# Hypothesis: shapes, layouts, dtypes and parameters against a float64 numpy reference.


def reference(x, dy, size, alpha, beta, k):
    """y and dx in float64, each window summed directly."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    channels = x.shape[1]
    squares = x * x
    d = np.empty_like(x)
    for c in range(channels):
        window = squares[:, max(0, c - size // 2) : c + (size - 1) // 2 + 1]
        d[:, c] = k + alpha / size * window.sum(axis=1)
    with np.errstate(all="ignore"):
        s = d**-beta
        y = x * s
        t = dy * x * s / d
        dx = dy * s
        if alpha * beta != 0:
            for j in range(channels):
                outputs = t[:, max(0, j - (size - 1) // 2) : j + size // 2 + 1]
                dx[:, j] -= 2 * alpha * beta / size * x[:, j] * outputs.sum(axis=1)
    return y, dx


@st.composite
def scenarios(draw):
    spatial = draw(st.lists(st.integers(0, 3), min_size=1, max_size=4))
    shape = (draw(st.integers(0, 3)), draw(st.integers(1, 6)), *spatial)
    ndim = len(shape)
    layout = draw(st.sampled_from(["contiguous", "channels_last", "strided"]))
    strides = None
    if layout == "strided":
        order = draw(st.permutations(range(ndim)))
        steps = draw(st.lists(st.sampled_from([1, 2, -1, -2]), min_size=ndim, max_size=ndim))
        strides = (tuple(order), tuple(steps))
    dtypes = ["float32", "float64"] + (["float16"] if ndim == 3 else [])
    alpha = draw(st.sampled_from([0.0, 1e-4, 0.5, 2.0]))
    return {
        "shape": shape,
        "layout": layout,
        "strides": strides,
        "dtype": draw(st.sampled_from(dtypes)),
        "size": draw(st.integers(1, shape[1] + 2)),
        "alpha": alpha,
        "beta": draw(st.sampled_from([0.0, 0.5, 0.75, 1.0, 2.5])),
        "k": draw(st.sampled_from([0.5, 1.0, 2.0] + ([0.0] if alpha else []))),
        "input_grad": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def stored(scenario, values):
    """``values`` in the scenario's memory layout (a view, never compacted)."""
    if scenario["layout"] == "contiguous":
        return values
    if scenario["layout"] == "channels_last":
        return channels_last(values)
    order, steps = scenario["strides"]
    moved = np.transpose(values, order)
    sizes = [n * abs(step) for n, step in zip(moved.shape, steps, strict=True)]
    base = np.zeros(sizes, values.dtype)
    view = base[tuple(slice(None, None, step) for step in steps)]
    view[...] = moved
    return np.transpose(view, np.argsort(order))


def run(lib, scenario, dtype):
    """y and dx (when asked for), or the error; values drawn in the scenario's dtype."""
    values = deterministic(scenario["shape"], scenario["seed"], scenario["dtype"], -3.0, 3.0)
    array = stored(scenario, values.astype(dtype))
    x = wrap(lib, array, scenario["input_grad"])
    args = (scenario[key] for key in ("size", "alpha", "beta", "k"))
    try:
        y = lib.F.local_response_norm(x, *args)
    except RuntimeError as error:
        return {"error": np.array(str(error))}
    out = {"y": lib.numpy(y)}
    if scenario["input_grad"] and x.numel():
        upstream = deterministic(scenario["shape"], scenario["seed"] + 1, scenario["dtype"])
        y.backward(lib.tensor(upstream.astype(dtype)))
        out["dx"] = lib.numpy(x.grad)
    if lib is NUMBANORM:
        np.testing.assert_array_equal(array, stored(scenario, values), "the input was modified")
        assert (y is x) == (x.numel() == 0)
    return out


def check_scenario(scenario):
    dtype = scenario["dtype"]
    actual = run(NUMBANORM, scenario, dtype)
    negative = scenario["layout"] == "strided" and min(scenario["strides"][1]) < 0
    if TORCH_AVAILABLE and not negative:
        # torch's semantics (and its view error) on the same values, computed in float64.
        expected = run(Lib("torch"), scenario, "float64")
        assert sorted(actual) == sorted(expected)
        if "error" in expected:
            assert str(actual["error"]) == str(expected["error"])
        for key in set(expected) - {"error"}:
            assert_close(actual[key], expected[key].astype(dtype), f"{key} vs torch")
    if "error" in actual:
        assert len(scenario["shape"]) >= 5 and scenario["layout"] == "strided"
        return
    values = deterministic(scenario["shape"], scenario["seed"], dtype, -3.0, 3.0)
    upstream = deterministic(scenario["shape"], scenario["seed"] + 1, dtype)
    y, dx = reference(values, upstream, *(scenario[key] for key in ("size", "alpha", "beta", "k")))
    assert_close(actual["y"], y.astype(dtype), "y vs float64 reference")
    if "dx" in actual:
        assert_close(actual["dx"], dx.astype(dtype), "dx vs float64 reference")


@given(scenarios())
def test_local_response_norm_matches_reference(scenario):
    check_scenario(scenario)


@pytest.mark.fuzz
def test_local_response_norm_fuzz(pytestconfig):
    fuzz(pytestconfig, scenarios(), check_scenario)
