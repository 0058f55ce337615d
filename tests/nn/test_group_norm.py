"""GroupNorm and F.group_norm against torch (live, and the golden file ``group_norm``): values and
gradients in every dtype and layout (channels-last output stays channels-last, as torch's),
any subset of gradients, empty batches, groups and spatial sizes, the module's constructor, repr
and state_dict, and torch's errors in torch's order (the batch-size check runs in eval too); a
failed call changes nothing."""

import itertools

import numpy as np
import pytest

import numbanorm
from numbanorm.functions import layout as layout_module
from tests.nn.norm_steps import (
    assert_same,
    functional_grads,
    load,
    module_steps,
    snapshot,
)
from tests.oracle import NUMBANORM, Cases, channels_last, deterministic
from tests.tolerances import assert_close

CASES = Cases("group_norm")


def group_norm_module(lib, groups, shape, dtype, layout, affine, bias, input_dtype=None):
    """Training and evaluation steps (GroupNorm has no running state: both use the input's
    statistics). Mixed precision's parameter gradients are left out as in the LayerNorm tests
    and checked against float64 in ``test_mixed_precision_gradients``."""
    module = lib.nn.GroupNorm(groups, shape[1], affine=affine, bias=bias, dtype=lib.dtype(dtype))
    if affine:
        values = {"weight": deterministic((shape[1],), 7, dtype, 0.5, 1.5)}
        if bias:
            values["bias"] = deterministic((shape[1],), 8, dtype)
        load(lib, module, values)
    mixed = input_dtype not in (None, dtype)
    return module_steps(lib, module, shape, input_dtype or dtype, layout, param_grads=not mixed)


# (groups, input shape, layouts)
SHAPES = [
    (2, (3, 4, 5), ["contiguous", "transposed"]),
    (3, (2, 6, 2, 3), ["contiguous", "channels_last", "transposed"]),
    (1, (2, 3, 2, 2), ["channels_last"]),
    (4, (2, 4, 3, 2), ["contiguous"]),
    (2, (2, 4, 2, 1, 3), ["contiguous", "channels_last"]),
    (2, (5, 4), ["contiguous"]),
    # 8 samples or more: channels-last runs a task per sample (numbanorm.kernels.cpu.row_norm).
    (2, (9, 4, 2, 3), ["channels_last"]),
]
for (groups, shape, layouts), dtype, (affine, bias) in itertools.product(
    SHAPES, ["float32", "float64"], [(True, True), (True, False), (False, False)]
):
    for layout in layouts:
        CASES.add(
            f"module-G{groups}-{shape}-{layout}-{dtype}-affine={affine}-bias={bias}",
            lambda lib, a=(groups, shape, dtype, layout, affine, bias): group_norm_module(lib, *a),
        )
# float16: computed in float32 and rounded; float16 parameters, or float32 ones (mixed).
for param_dtype, layout in itertools.product(
    ["float16", "float32"], ["contiguous", "channels_last"]
):
    CASES.add(
        f"module-float16-input-{param_dtype}-params-{layout}",
        lambda lib, p=param_dtype, ly=layout: group_norm_module(
            lib, 2, (2, 4, 2, 3), p, ly, True, True, input_dtype="float16"
        ),
    )


def functional(lib, shape=(2, 4, 3), groups=2, dtype="float64", weight=True, bias=True,
               needs=(), x=None, param_dtype=None, layout="contiguous", upstream_dtype=None,
               **kwargs):  # fmt: skip
    """F.group_norm on deterministic values, with gradients for the arguments in ``needs``.

    torch 2.13's CPU backward crashes the process (a segmentation fault) on a channels-last
    input that needs no gradient, so torch gets those values in contiguous memory; and it
    raises "tensor does not have a device" for a bias's gradient without a weight, so torch
    gets a weight of ones (the same function) that needs no gradient.
    """
    param_dtype = param_dtype or dtype
    if x is None:
        x = deterministic(shape, 1, dtype, -1.0, 3.0)
    if layout == "channels_last" and (lib is NUMBANORM or "input" in needs or not needs):
        x = channels_last(x)
    if weight:
        weight = deterministic((shape[1],), 2, param_dtype, 0.5, 1.5)
    elif lib is not NUMBANORM and "bias" in needs:
        weight = np.ones(shape[1], param_dtype)
    else:
        weight = None
    bias = deterministic((shape[1],), 3, param_dtype) if bias else None
    arrays = {"input": x, "weight": weight, "bias": bias}
    return functional_grads(
        lib, lambda **t: lib.F.group_norm(t["input"], groups, t["weight"], t["bias"], **kwargs),
        arrays, needs, upstream_dtype=upstream_dtype,
    )  # fmt: skip


GRAD_SUBSETS = [
    ("input",), ("weight",), ("bias",), ("input", "weight"), ("input", "bias"), ("weight", "bias"),
    ("input", "weight", "bias"),
]  # fmt: skip
for needs, layout in itertools.product(GRAD_SUBSETS, ["contiguous", "channels_last"]):
    CASES.add(
        f"F-grads-{'+'.join(needs)}-{layout}",
        lambda lib, n=needs, ly=layout: functional(lib, (2, 4, 2, 3), needs=n, layout=ly),
    )
ALL = ("input", "weight", "bias")
FUNCTIONAL = {
    "weight-only": dict(bias=False, needs=ALL[:2]),
    "bias-only": dict(weight=False, needs=("input", "bias")),
    "none": dict(weight=False, bias=False, needs=("input",)),
    "eps=0.1": dict(eps=0.1, needs=ALL),
    "eps-int": dict(eps=1),
    "eps-bool": dict(eps=True),
    "eps-negative": dict(eps=-0.1),
    "groups-numpy-int": dict(groups=np.int64(2)),
    "groups=1": dict(groups=1, needs=ALL),
    "groups=C": dict(groups=4, needs=ALL),
    "2d-input": dict(shape=(3, 4), needs=ALL),
    "one-element-groups": dict(shape=(3, 4, 1), groups=4, needs=ALL),
    "empty-batch": dict(shape=(0, 4, 3), needs=ALL),
    "empty-batch-2d": dict(shape=(0, 4), needs=ALL),
    "empty-spatial": dict(shape=(2, 4, 0), needs=ALL),
    "empty-spatial-4d": dict(shape=(2, 4, 3, 0), needs=ALL),
    "no-channels": dict(shape=(2, 0, 3), groups=1, needs=ALL),
    "constant-groups": dict(x=np.full((2, 4, 3), 2.5), needs=ALL),
    "constant-groups-eps=0": dict(x=np.ones((2, 4, 3)), eps=0.0),
    "float32": dict(dtype="float32", needs=ALL),
    "float32-channels-last": dict(
        shape=(2, 4, 2, 3), dtype="float32", layout="channels_last", needs=ALL
    ),
    "float16": dict(dtype="float16", needs=ALL),
    "float16-channels-last": dict(
        shape=(2, 4, 2, 3), dtype="float16", layout="channels_last", needs=ALL
    ),
    "3d-channels-last": dict(shape=(2, 4, 2, 2, 3), layout="channels_last", needs=ALL),
}
for name, kwargs in FUNCTIONAL.items():
    CASES.add(f"F-{name}", lambda lib, k=kwargs: functional(lib, **k))
CASES.add("F-eps-0d-tensor", lambda lib: functional(lib, eps=lib.tensor(np.array(0.5))))


# ---- the module's constructor, attributes, repr and state_dict -------------------------------


def describe(lib, *args, **kwargs):
    module = lib.nn.GroupNorm(*args, **kwargs)
    out = {
        "repr": np.array(repr(module)),
        "attributes": np.array(
            repr([module.num_groups, module.num_channels, module.eps, module.affine])
        ),
        "keys": np.array(",".join(module.state_dict())),
        "parameters": np.array(",".join(name for name, _ in module.named_parameters())),
    }
    for name, param in module.named_parameters():
        out[name] = lib.numpy(param)
    return out


CONSTRUCTORS = {
    "default": ((2, 4), {}),
    "eps": ((1, 3), {"eps": 1e-3}),
    "no-affine": ((2, 4), {"affine": False}),
    "no-affine-no-bias": ((2, 4), {"affine": False, "bias": False}),
    "no-bias": ((2, 6), {"bias": False}),
    "float64": ((2, 2), {"dtype": "float64"}),
    "device": ((1, 2), {"device": "cpu"}),
    "positional": ((3, 6, 0.1, False, "cpu"), {}),
    "numpy-ints": ((np.int64(2), np.int64(4)), {}),
    "zero-channels": ((3, 0), {}),
    # Errors: divisibility first (a ValueError), then torch.empty's on the channel count.
    "not-divisible": ((3, 4), {}),
    "not-divisible-no-affine": ((3, 4), {"affine": False}),
    "zero-groups": ((0, 4), {}),
    "negative-channels": ((2, -4), {}),
    "negative-groups": ((-2, 4), {}),
    "float-channels": ((2, 4.0), {}),
    "float-channels-no-affine": ((2, 4.0), {"affine": False}),
    "bias-positional": ((2, 4, 1e-5, True, None, None, False), {}),
    "float-groups": ((2.0, 4), {}),
}
for name, (args, kwargs) in CONSTRUCTORS.items():

    def construct(lib, a=args, k=kwargs):
        k = {**k, "dtype": lib.dtype(k["dtype"])} if "dtype" in k else k
        return describe(lib, *a, **k)

    CASES.add(f"ctor-{name}", construct)


def reset_parameters(lib):
    module = lib.nn.GroupNorm(2, 4)
    load(lib, module, {"weight": np.full(4, 2.0, "float32"), "bias": np.ones(4, "float32")})
    module.reset_parameters()
    return {k: np.asarray(v) for k, v in module.state_dict().items()}


CASES.add("reset_parameters", reset_parameters)


# ---- errors, in torch's order ------------------------------------------------------------------


def call(lib, shape=(2, 4, 3), groups=2, dtype="float32", weight=None, bias=None, eps=1e-5):
    """F.group_norm with parameters given as ``(shape, dtype)`` (or None)."""
    x = lib.tensor(deterministic(shape, 1, "float64").round().astype(dtype))
    w, b = (None if p is None else lib.tensor(np.ones(p[0], p[1])) for p in (weight, bias))
    return {"y": lib.numpy(lib.F.group_norm(x, groups, w, b, eps))}


ERRORS = {
    "0d-input": dict(shape=()),
    "1d-input": dict(shape=(4,)),
    "1d-input-int": dict(shape=(4,), dtype="int64"),
    "1d-input-bad-groups": dict(shape=(4,), groups="a"),
    # torch's _verify_batch_size on [N*C // groups, groups, *spatial]: one value per group.
    "one-value-per-group": dict(shape=(1, 2), groups=2),
    "one-value-per-group-spatial": dict(shape=(1, 4, 1), groups=4),
    "one-value-per-group-int": dict(shape=(1, 2), groups=2, dtype="int64"),
    "one-value-not-divisible": dict(shape=(1, 3), groups=2),
    "groups-zero": dict(groups=0),
    "groups-negative": dict(groups=-2),
    "groups-float": dict(groups=2.0),
    "groups-str": dict(groups="a"),
    "groups-None": dict(groups=None),
    "groups-bool": dict(groups=True),
    "not-divisible": dict(shape=(2, 6, 3), groups=4),
    "not-divisible-and-dtype": dict(shape=(2, 6, 3), groups=4, dtype="int64"),
    "more-groups-than-channels": dict(shape=(2, 2, 3), groups=4),
    "eps-str": dict(eps="x"),
    "eps-None": dict(eps=None),
    "eps-str-and-groups-float": dict(eps="x", groups=2.0),
    "weight-size": dict(weight=((3,), "float32")),
    "weight-2d": dict(weight=((2, 2), "float32")),
    "weight-0d": dict(shape=(2, 1, 3), groups=1, weight=((), "float32")),
    "bias-size": dict(weight=((4,), "float32"), bias=((3,), "float32")),
    "bias-size-no-weight": dict(bias=((5,), "float32")),
    "weight-size-and-dtype": dict(weight=((3,), "float64")),
    "weight-size-not-divisible": dict(shape=(2, 6, 3), groups=4, weight=((3,), "float32")),
    "int-input": dict(dtype="int32"),
    "bool-input": dict(dtype="bool"),
    "int-input-float-weight": dict(dtype="int64", weight=((4,), "float32")),
    "int-input-int-weight": dict(dtype="int64", weight=((4,), "int64")),
    "int-weight": dict(weight=((4,), "int64")),
    "float64-input-float32-weight": dict(dtype="float64", weight=((4,), "float32")),
    "float64-input-float32-bias": dict(dtype="float64", bias=((4,), "float32")),
    "float32-input-float64-bias": dict(weight=((4,), "float32"), bias=((4,), "float64")),
    "float32-input-float16-weight": dict(weight=((4,), "float16")),
    "float16-input-float64-weight": dict(dtype="float16", weight=((4,), "float64")),
    "float16-input-float32-weight-float16-bias": dict(
        dtype="float16", weight=((4,), "float32"), bias=((4,), "float16")
    ),
    "float16-input-float16-weight-float32-bias": dict(
        dtype="float16", weight=((4,), "float16"), bias=((4,), "float32")
    ),
}
for name, kwargs in ERRORS.items():
    CASES.add(f"error-{name}", lambda lib, k=kwargs: call(lib, **k))
CASES.add("error-groups-tensor", lambda lib: call(lib, groups=lib.tensor(np.array(2))))
# Accepted mixed precision: float16 input with float32 parameters.
CASES.add("mixed-float16-float32", lambda lib: call(lib, dtype="float16", weight=((4,), "float32"),
                                                     bias=((4,), "float32")))  # fmt: skip
CASES.add("mixed-float16-bias-only", lambda lib: call(lib, dtype="float16", bias=((4,), "float32")))


def module_call(lib, groups, channels, shape, training=True):
    module = lib.nn.GroupNorm(groups, channels)
    module.train(training)
    return {"y": lib.numpy(module(lib.tensor(deterministic(shape, 1))))}


MODULE_ERRORS = {
    "channels-mismatch": (2, 4, (2, 6, 3)),
    "channels-mismatch-not-divisible": (2, 4, (2, 3, 3)),
    "one-value-per-group": (2, 2, (1, 2)),
    "one-value-per-group-eval": (2, 2, (1, 2), False),
    "one-value-per-group-spatial-eval": (4, 4, (1, 4, 1), False),
    "1d-input": (1, 4, (4,)),
    "1d-input-eval": (1, 4, (4,), False),
    "float-groups": (2.0, 4, (2, 4, 3)),
}
for name, args in MODULE_ERRORS.items():
    CASES.add(f"module-error-{name}", lambda lib, a=args: module_call(lib, *a))


@pytest.mark.parametrize("name", CASES.names())
def test_group_norm_matches_torch(name):
    CASES.check(name)


# ---- numbanorm's own promises -----------------------------------------------------------------


def test_failed_calls_change_nothing():
    """A call that raises leaves the module's parameters, their gradients and the input alone."""
    module = numbanorm.nn.GroupNorm(2, 4)
    x = numbanorm.tensor(deterministic((3, 4, 2), 1), requires_grad=True)
    module(x).backward(numbanorm.tensor(deterministic((3, 4, 2), 2)))
    before = snapshot(module)
    x_before = x.data.copy()
    for bad in (
        numbanorm.tensor(np.ones((2, 6, 3), np.float32), requires_grad=True),
        numbanorm.tensor(np.ones((2, 4, 3), np.float64), requires_grad=True),
        numbanorm.tensor(np.ones((2, 4, 3), np.int64)),
        numbanorm.tensor(np.ones(4, np.float32), requires_grad=True),
    ):
        with pytest.raises((RuntimeError, NotImplementedError)):
            module(bad)
        assert bad.grad is None
    with pytest.raises(TypeError):
        numbanorm.nn.functional.group_norm(x, 2, module.weight, module.bias, eps="x")
    assert_same(before, snapshot(module))
    np.testing.assert_array_equal(x.data, x_before)


def test_batch_size_error_in_eval_changes_nothing():
    module = numbanorm.nn.GroupNorm(4, 4)
    module(numbanorm.tensor(deterministic((2, 4), 1))).sum().backward()
    module.eval()
    before = snapshot(module)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        module(numbanorm.tensor(np.ones((1, 4), np.float32), requires_grad=True))
    assert_same(before, snapshot(module))


def test_input_and_parameters_are_not_modified():
    x = channels_last(deterministic((2, 4, 2, 3), 1))
    w, b = deterministic((4,), 2), deterministic((4,), 3)
    copies = [a.copy() for a in (x, w, b)]
    tensors = [numbanorm.Tensor(a, requires_grad=True) for a in (x, w, b)]
    y = numbanorm.nn.functional.group_norm(tensors[0], 2, tensors[1], tensors[2])
    y.backward(numbanorm.tensor(deterministic((2, 4, 2, 3), 4)))
    for a, c in zip((x, w, b), copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_channels_last_runs_without_a_copy(monkeypatch):
    """A channels-last input reaches the kernels as a view of its own memory (the ``nsc``
    kernels), and the output and input gradient are channels-last."""
    views = []
    channel_view = layout_module.channel_view

    def recording(x):
        view, layout = channel_view(x)
        views.append((x, view, layout))
        return view, layout

    monkeypatch.setattr("numbanorm.functions.group_norm.channel_view", recording)
    array = channels_last(deterministic((2, 4, 3, 5), 1))
    x = numbanorm.Tensor(array, requires_grad=True)
    y = numbanorm.nn.functional.group_norm(x, 2)
    y.backward(numbanorm.Tensor(channels_last(deterministic((2, 4, 3, 5), 2))))
    [(_, view, layout)] = views
    assert layout == "nsc"
    assert np.shares_memory(view, array)
    for a in (y.data, x.grad.data):
        assert np.moveaxis(a, 1, -1).flags.c_contiguous


def test_large_offset_float32():
    """Groups at 1e6 with unit spread, in float32, channels-last too: outputs and gradients as a
    float64 computation from the same float32 values gives them (the kernels centre on a float64
    mean; torch's float32 kernel is not held to this)."""
    x = (deterministic((2, 4, 4, 8), 1, np.float64) + 1e6).astype(np.float32)
    for layout in ("contiguous", "channels_last"):
        got = functional(NUMBANORM, (2, 4, 4, 8), dtype="float32", x=x, needs=ALL, layout=layout)
        want = functional(NUMBANORM, (2, 4, 4, 8), x=x.astype(np.float64), needs=ALL)
        for key, value in want.items():
            assert_close(got[key], value.astype(np.float32), f"{layout} {key}")


def test_mixed_precision_gradients():
    """float16 input with float32 parameters: float32 parameter gradients as a float64
    computation from the same values gives them, and float16 ones for the input."""
    shape = (4, 4, 4, 4)
    x = deterministic(shape, 1, np.float16)
    for layout in ("contiguous", "channels_last"):
        got = functional(
            NUMBANORM, shape, dtype="float16", x=x, param_dtype="float32", needs=ALL, layout=layout
        )
        want = functional(
            NUMBANORM, shape, x=x.astype(np.float64), needs=ALL, upstream_dtype="float16"
        )
        for key, value in want.items():
            assert_close(got[key], value.astype(got[key].dtype), f"{layout} {key}")
        assert got["dweight"].dtype == np.float32 and got["dinput"].dtype == np.float16


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_constant_groups_with_constant_upstream_get_zero_input_gradient(layout):
    """Constant groups (invstd = 1/sqrt(eps), large) with a constant upstream gradient in each:
    the input gradient is exactly 0, as in float64; the mean of ``dy * w`` is subtracted before
    the scaling by invstd, which would magnify float32 rounding to about 3e-5."""
    x = np.repeat(deterministic((3, 2, 1, 1), 1, np.float32), 2, axis=1) * np.ones((1, 1, 2, 3))
    dy = np.repeat(deterministic((3, 2, 1, 1), 2, np.float32), 2, axis=1) * np.ones((1, 1, 2, 3))
    x = channels_last(x) if layout == "channels_last" else x
    weight = np.full(4, 1.3, np.float32)
    tensors = [numbanorm.Tensor(a.astype(np.float32), requires_grad=True) for a in (x, weight)]
    y = numbanorm.nn.functional.group_norm(tensors[0], 2, tensors[1])
    y.backward(numbanorm.Tensor(dy.astype(np.float32)))
    np.testing.assert_array_equal(tensors[0].grad.data, np.zeros(x.shape, np.float32))


def test_channels_last_task_per_sample_gives_the_same_bits():
    """Channels-last batches of 8 samples or more run a task per sample, smaller ones split each
    sample in chunks: a sample's output and input gradient are the same bits either way."""
    shape = (8, 4, 64, 80)  # two chunks per sample
    x = channels_last(deterministic(shape, 1))
    dy = channels_last(deterministic(shape, 2))
    weight = deterministic((4,), 3, np.float32, 0.5, 1.5)

    def run(x, dy):
        leaf = numbanorm.Tensor(x, requires_grad=True)
        y = numbanorm.nn.functional.group_norm(leaf, 2, numbanorm.Tensor(weight))
        y.backward(numbanorm.Tensor(dy))
        return y.data, leaf.grad.data

    batch = run(x, dy)
    for i in (0, 5):
        alone = run(x[i : i + 1], dy[i : i + 1])
        for got, want in zip(batch, alone, strict=True):
            np.testing.assert_array_equal(got[i : i + 1], want)
