"""RMSNorm and F.rms_norm against torch (live, and the golden file ``rms_norm``): values and
gradients in every dtype, with weights of any float dtype, any subset of gradients, ``eps=None``
as torch's CPU code path takes it (the machine epsilon of the type it computes in: float32 for
float16 and float32 input, float64 for float64, whatever the weight's dtype), the module's
constructor, repr and state_dict, and torch's errors in torch's order; a failed call changes
nothing."""

import itertools

import numpy as np
import pytest

import numbanorm
from tests.nn.norm_steps import (
    assert_same,
    functional_grads,
    load,
    module_steps,
    snapshot,
)
from tests.oracle import NUMBANORM, Cases, deterministic
from tests.tolerances import assert_close

CASES = Cases("rms_norm")


def at_compute_precision(out: dict, input_dtype) -> dict:
    """torch computes in the input's "opmath" type (float32 for float16 input) whatever the
    weight's dtype, so a wider weight's gradient carries that type's rounding errors (torch's
    own float32 sums): such gradients are compared in the compute type, their dtype apart."""
    compute = np.dtype(np.float64 if input_dtype == "float64" else np.float32)
    for key in [k for k in out if k.startswith("d")]:
        if out[key].dtype.itemsize > compute.itemsize:
            out[f"{key}.dtype"] = np.array(str(out[key].dtype))
            out[key] = out[key].astype(compute)
    return out


def rms_norm_module(lib, normalized_shape, shape, dtype, layout, affine, eps, input_dtype=None):
    """Training and evaluation steps (the same computation: RMSNorm keeps no running state)."""
    module = lib.nn.RMSNorm(
        normalized_shape, eps=eps, elementwise_affine=affine, dtype=lib.dtype(dtype)
    )
    if affine:
        param_shape = shape[len(shape) - len(module.normalized_shape) :]
        load(lib, module, {"weight": deterministic(param_shape, 7, dtype, 0.5, 1.5)})
    input_dtype = input_dtype or dtype
    return at_compute_precision(module_steps(lib, module, shape, input_dtype, layout), input_dtype)


# (normalized_shape, input shape, layout)
SHAPES = [
    (5, (3, 5), "contiguous"),
    ([5], (2, 3, 5), "transposed"),
    ((4, 5), (2, 3, 4, 5), "contiguous"),
    ((3, 4), (2, 3, 4), "transposed"),
]
for (ns, shape, layout), dtype, affine, eps in itertools.product(
    SHAPES, ["float32", "float64"], [True, False], [None, 1e-3]
):
    CASES.add(
        f"module-{ns}-{shape}-{layout}-{dtype}-affine={affine}-eps={eps}",
        lambda lib, a=(ns, shape, dtype, layout, affine, eps): rms_norm_module(lib, *a),
    )
# Any weight dtype with any input dtype: computed in the input's "opmath" type (float32 for
# float16), the weight cast to it; the output has the input's dtype, each gradient its tensor's.
for input_dtype, param_dtype in [
    ("float16", "float16"),
    ("float16", "float32"),
    ("float16", "float64"),
    ("float32", "float16"),
    ("float32", "float64"),
    ("float64", "float16"),
    ("float64", "float32"),
]:
    CASES.add(
        f"module-{input_dtype}-input-{param_dtype}-weight",
        lambda lib, i=input_dtype, p=param_dtype: rms_norm_module(
            lib, (4,), (3, 4), p, "contiguous", True, None, input_dtype=i
        ),
    )


def functional(lib, shape=(3, 4), ns=(4,), dtype="float64", weight=True, needs=(), x=None,
               param_dtype=None, upstream_dtype=None, **kwargs):  # fmt: skip
    """F.rms_norm on deterministic values, with gradients for the arguments in ``needs``."""
    pshape = shape[len(shape) - len(ns) :]
    param_dtype = param_dtype or dtype
    arrays = {
        "input": deterministic(shape, 1, dtype, -1.0, 3.0) if x is None else x,
        "weight": deterministic(pshape, 2, param_dtype, 0.5, 1.5) if weight else None,
    }
    out = functional_grads(
        lib, lambda **t: lib.F.rms_norm(t["input"], ns, t["weight"], **kwargs),
        arrays, needs, upstream_dtype=upstream_dtype,
    )  # fmt: skip
    return at_compute_precision(out, arrays["input"].dtype)


for needs in [("input",), ("weight",), ("input", "weight")]:
    CASES.add(f"F-grads-{'+'.join(needs)}", lambda lib, n=needs: functional(lib, needs=n))
ALL = ("input", "weight")


def tiny(dtype, scale):
    """Rows whose mean square is of the order of the machine epsilon: the output shows which
    ``eps`` was added."""
    return (deterministic((2, 4), 4, "float64", 0.5, 1.5) * scale).astype(dtype)


FUNCTIONAL = {
    "no-weight": dict(weight=False, needs=("input",)),
    "eps=0.1": dict(eps=0.1, needs=ALL),
    "eps-None": dict(eps=None, needs=ALL),
    "eps-int": dict(eps=1),
    "eps-bool": dict(eps=True),
    "eps-negative": dict(eps=-0.1),
    "list-shape": dict(ns=[4]),
    "numpy-int-shape": dict(ns=(np.int64(4),)),
    "3d-over-2": dict(shape=(2, 3, 4), ns=(3, 4), needs=ALL),
    "empty-rows": dict(shape=(0, 4), needs=ALL),
    "empty-rows-3d": dict(shape=(2, 0, 4), needs=ALL),
    "zero-width": dict(shape=(2, 0), ns=(0,), needs=ALL),
    "one-element-rows": dict(shape=(3, 1), ns=(1,), needs=ALL),
    "1d-input": dict(shape=(4,), needs=ALL),
    "zero-rows": dict(x=np.zeros((2, 4)), needs=ALL),
    "zero-rows-eps=0": dict(x=np.zeros((2, 4)), eps=0.0),
    "large-offset": dict(x=deterministic((2, 4), 5, "float64") + 1e6, needs=ALL),
    "float32": dict(dtype="float32", needs=ALL),
    "float16": dict(dtype="float16", needs=ALL),
    "float16-float32-weight": dict(dtype="float16", param_dtype="float32", needs=ALL),
    "float32-float64-weight": dict(dtype="float32", param_dtype="float64", needs=ALL),
    # eps=None: float32's epsilon for float16 and float32 input, float64's for float64 input,
    # whatever the weight's dtype.
    "eps-None-tiny-float16": dict(dtype="float16", x=tiny("float16", 1e-4), needs=ALL),
    "eps-None-tiny-float16-float64-weight": dict(
        dtype="float16", x=tiny("float16", 1e-4), param_dtype="float64"
    ),
    "eps-None-tiny-float32": dict(dtype="float32", x=tiny("float32", 1e-4), needs=ALL),
    "eps-None-tiny-float32-float16-weight": dict(
        dtype="float32", x=tiny("float32", 1e-4), param_dtype="float16"
    ),
    "eps-None-tiny-float64": dict(x=tiny("float64", 1e-8), needs=ALL),
    "eps-None-tiny-float64-float32-weight": dict(x=tiny("float64", 1e-8), param_dtype="float32"),
    # An explicit eps is taken as given, not rounded to float16 (1e-7 would become 1.19e-7).
    "eps-tiny-float16": dict(dtype="float16", x=tiny("float16", 1e-4), eps=1e-7),
}
for name, kwargs in FUNCTIONAL.items():
    CASES.add(f"F-{name}", lambda lib, k=kwargs: functional(lib, **k))
CASES.add("F-eps-0d-tensor", lambda lib: functional(lib, eps=lib.tensor(np.array(0.5))))


# ---- the module's constructor, attributes, repr and state_dict -------------------------------


def describe(lib, *args, **kwargs):
    module = lib.nn.RMSNorm(*args, **kwargs)
    out = {
        "repr": np.array(repr(module)),
        "attributes": np.array(
            repr([module.normalized_shape, module.eps, module.elementwise_affine])
        ),
        "keys": np.array(",".join(module.state_dict())),
        "parameters": np.array(",".join(name for name, _ in module.named_parameters())),
    }
    for name, param in module.named_parameters():
        out[name] = lib.numpy(param)
    return out


CONSTRUCTORS = {
    "int": ((5,), {}),
    "list": (([2, 3],), {"eps": 1e-3}),
    "numpy-int": ((np.int64(3),), {}),
    "no-affine": (((2, 2),), {"elementwise_affine": False}),
    "float64": ((2,), {"dtype": "float64"}),
    "device": ((2,), {"device": "cpu"}),
    "positional": ((2, 0.1, False, "cpu"), {}),
    "eps-int": ((2,), {"eps": 1}),
    "float": ((4.0,), {}),
    "float-element": (([4.0],), {}),
    "negative": ((-1,), {}),
    "negative-no-affine": ((-1,), {"elementwise_affine": False}),
    "bias-keyword": ((2,), {"bias": False}),
    "too-many-positional": ((2, None, True, None, None, False), {}),
}
for name, (args, kwargs) in CONSTRUCTORS.items():

    def construct(lib, a=args, k=kwargs):
        k = {**k, "dtype": lib.dtype(k["dtype"])} if "dtype" in k else k
        return describe(lib, *a, **k)

    CASES.add(f"ctor-{name}", construct)


def reset_parameters(lib):
    module = lib.nn.RMSNorm(3)
    load(lib, module, {"weight": np.full(3, 2.0, "float32")})
    module.reset_parameters()
    return {k: np.asarray(v) for k, v in module.state_dict().items()}


CASES.add("reset_parameters", reset_parameters)


# ---- errors, in torch's order ------------------------------------------------------------------


def call(lib, shape=(2, 4), ns=(4,), dtype="float32", weight=None, eps=None):
    """F.rms_norm with a weight given as ``(shape, dtype)`` (or None)."""
    x = lib.tensor(deterministic(shape, 1, "float64").round().astype(dtype))
    w = None if weight is None else lib.tensor(np.ones(weight[0], weight[1]))
    return {"y": lib.numpy(lib.F.rms_norm(x, ns, w, eps))}


ERRORS = {
    "shape-mismatch": dict(ns=(5,)),
    "shape-mismatch-2d": dict(ns=[2, 4, 4]),
    "shape-mismatch-rank": dict(shape=(4,), ns=(2, 4)),
    "shape-negative": dict(ns=(-4,)),
    "shape-int": dict(ns=4),
    "shape-empty": dict(ns=()),
    "shape-float-element": dict(ns=(4.0,)),
    "shape-bool-element": dict(ns=(True,)),
    "shape-None": dict(ns=None),
    "shape-int-and-eps": dict(ns=4, eps="x"),
    "eps-str": dict(eps="x"),
    "0d-input": dict(shape=(), ns=(1,)),
    "weight-shape": dict(weight=((3,), "float32")),
    "weight-2d": dict(weight=((2, 2), "float32")),
    "weight-shape-and-input-shape": dict(ns=(5,), weight=((3,), "float32")),
    "weight-and-rank": dict(shape=(4,), ns=(2, 4), weight=((3,), "float32")),
    "int-input": dict(dtype="int32"),
    "int-input-shape": dict(dtype="int64", ns=(5,)),
    "int-input-float-weight": dict(dtype="int64", weight=((4,), "float32")),
    "bool-input": dict(dtype="bool"),
    "int-weight": dict(weight=((4,), "int64")),
    "bool-weight": dict(weight=((4,), "bool")),
}
for name, kwargs in ERRORS.items():
    CASES.add(f"error-{name}", lambda lib, k=kwargs: call(lib, **k))


def module_error(lib, normalized_shape, shape):
    return {"y": lib.numpy(lib.nn.RMSNorm(normalized_shape)(lib.tensor(np.ones(shape, "f4"))))}


CASES.add("module-error-shape", lambda lib: module_error(lib, 4, (2, 5)))
CASES.add("module-error-rank", lambda lib: module_error(lib, (2, 4), (4,)))


@pytest.mark.parametrize("name", CASES.names())
def test_rms_norm_matches_torch(name):
    CASES.check(name)


# ---- numbanorm's own promises -----------------------------------------------------------------


def test_failed_calls_change_nothing():
    """A call that raises leaves the module's parameter, its gradient and the input alone."""
    module = numbanorm.nn.RMSNorm(4)
    x = numbanorm.tensor(deterministic((3, 4), 1), requires_grad=True)
    module(x).backward(numbanorm.tensor(deterministic((3, 4), 2)))
    before = snapshot(module)
    x_before = x.data.copy()
    for bad in (
        numbanorm.tensor(np.ones((2, 5), np.float32), requires_grad=True),
        numbanorm.tensor(np.ones((2, 4), np.int64)),
    ):
        with pytest.raises((RuntimeError, NotImplementedError)):
            module(bad)
        assert bad.grad is None
    with pytest.raises(TypeError):
        numbanorm.nn.functional.rms_norm(x, (4,), module.weight, eps="x")
    assert_same(before, snapshot(module))
    np.testing.assert_array_equal(x.data, x_before)


def test_eps_none_is_the_compute_types_epsilon():
    """``eps=None`` adds float32's machine epsilon to float16 and float32 input's mean square,
    float64's to float64's (not the input's own, nor float64's for everything)."""
    for dtype, scale, eps in [
        ("float16", 1e-4, np.finfo(np.float32).eps),
        ("float32", 1e-4, np.finfo(np.float32).eps),
        ("float64", 1e-8, np.finfo(np.float64).eps),
    ]:
        x = tiny(dtype, scale)
        got = functional(NUMBANORM, x=x, dtype=dtype, weight=False)["y"]
        v = x.astype(np.float64)
        want = v / np.sqrt((v * v).mean(-1, keepdims=True) + eps)
        assert_close(got, want.astype(dtype), dtype)


def test_float16_gradients_against_float64():
    """float16 input with float16 and float32 weights: gradients as a float64 computation from
    the same values gives them (the upstream gradient rounded to float16 as the call's is)."""
    x = deterministic((64, 16), 1, np.float16)
    for param_dtype in ("float16", "float32"):
        got = functional(NUMBANORM, (64, 16), (16,), "float16", x=x, param_dtype=param_dtype,
                         needs=ALL)  # fmt: skip
        weight = deterministic((16,), 2, param_dtype, 0.5, 1.5).astype(np.float64)
        want = functional_grads(
            NUMBANORM,
            lambda **t: numbanorm.nn.functional.rms_norm(t["input"], (16,), t["weight"]),
            {"input": x.astype(np.float64), "weight": weight},
            ALL,
            upstream_dtype="float16",
        )
        for key, value in want.items():
            assert_close(got[key], value.astype(got[key].dtype), f"{param_dtype} {key}")
        assert got["dweight"].dtype == param_dtype and got["dinput"].dtype == np.float16
