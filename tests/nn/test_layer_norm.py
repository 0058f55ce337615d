"""LayerNorm and F.layer_norm against torch (live, and the golden file ``layer_norm``): values and
gradients in every dtype and layout, any subset of gradients, the module's constructor, repr and
state_dict, and torch's errors in torch's order; a failed call changes nothing."""

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

CASES = Cases("layer_norm")


def layer_norm_module(lib, normalized_shape, shape, dtype, layout, affine, bias, input_dtype=None):
    """Training and evaluation steps. torch's mixed precision (float16 input, float32
    parameters) sums the parameters' gradients with float16 errors (0.01 off over 64 rows), so
    those are left out here and checked against float64 in ``test_mixed_precision_gradients``."""
    module = lib.nn.LayerNorm(
        normalized_shape, elementwise_affine=affine, bias=bias, dtype=lib.dtype(dtype)
    )
    if affine:
        param_shape = shape[len(shape) - len(module.normalized_shape) :]
        values = {"weight": deterministic(param_shape, 7, dtype, 0.5, 1.5)}
        if bias:
            values["bias"] = deterministic(param_shape, 8, dtype)
        load(lib, module, values)
    mixed = input_dtype not in (None, dtype)
    return module_steps(lib, module, shape, input_dtype or dtype, layout, param_grads=not mixed)


# (normalized_shape, input shape, layout)
SHAPES = [
    (5, (3, 5), "contiguous"),
    ([5], (2, 3, 5), "transposed"),
    ((4, 5), (2, 3, 4, 5), "contiguous"),
    ((3, 4), (2, 3, 4), "transposed"),
]
for (ns, shape, layout), dtype, (affine, bias) in itertools.product(
    SHAPES, ["float32", "float64"], [(True, True), (True, False), (False, False)]
):
    CASES.add(
        f"module-{ns}-{shape}-{layout}-{dtype}-affine={affine}-bias={bias}",
        lambda lib, a=(ns, shape, dtype, layout, affine, bias): layer_norm_module(lib, *a),
    )
# float16: computed in float32 and rounded; float16 parameters, or float32 ones (mixed).
for param_dtype in ["float16", "float32"]:
    CASES.add(
        f"module-float16-input-{param_dtype}-params",
        lambda lib, p=param_dtype: layer_norm_module(
            lib, (4,), (3, 4), p, "contiguous", True, True, input_dtype="float16"
        ),
    )


def functional(lib, shape=(3, 4), ns=(4,), dtype="float64", weight=True, bias=True, needs=(),
               x=None, param_dtype=None, upstream_dtype=None, **kwargs):  # fmt: skip
    """F.layer_norm on deterministic values, with gradients for the arguments in ``needs``."""
    pshape = shape[len(shape) - len(ns) :]
    param_dtype = param_dtype or dtype
    arrays = {
        "input": deterministic(shape, 1, dtype, -1.0, 3.0) if x is None else x,
        "weight": deterministic(pshape, 2, param_dtype, 0.5, 1.5) if weight else None,
        "bias": deterministic(pshape, 3, param_dtype) if bias else None,
    }
    return functional_grads(
        lib, lambda **t: lib.F.layer_norm(t["input"], ns, t["weight"], t["bias"], **kwargs),
        arrays, needs, upstream_dtype=upstream_dtype,
    )  # fmt: skip


GRAD_SUBSETS = [("input",), ("weight",), ("bias",), ("weight", "bias"), ("input", "weight", "bias")]
for needs in GRAD_SUBSETS:
    CASES.add(f"F-grads-{'+'.join(needs)}", lambda lib, n=needs: functional(lib, needs=n))
ALL = ("input", "weight", "bias")
FUNCTIONAL = {
    "weight-only": dict(bias=False, needs=("input", "weight")),
    "bias-only": dict(weight=False, needs=("input", "bias")),
    "none": dict(weight=False, bias=False, needs=("input",)),
    "eps=0.1": dict(eps=0.1, needs=("input", "weight")),
    "eps-int": dict(eps=1),
    "eps-bool": dict(eps=True),
    "eps-negative": dict(eps=-0.1),
    "eps-too-negative": dict(eps=-5.0),
    "list-shape": dict(ns=[4]),
    "numpy-int-shape": dict(ns=(np.int64(4),)),
    "3d-over-2": dict(shape=(2, 3, 4), ns=(3, 4), needs=ALL),
    "empty-rows": dict(shape=(0, 4), needs=ALL),
    "empty-rows-3d": dict(shape=(2, 0, 4), needs=ALL),
    "zero-width": dict(shape=(2, 0), ns=(0,), needs=ALL),
    "one-element-rows": dict(shape=(3, 1), ns=(1,), needs=ALL),
    "1d-input": dict(shape=(4,), needs=ALL),
    "constant-rows": dict(x=np.full((2, 4), 2.5), needs=ALL),
    "constant-rows-eps=0": dict(x=np.ones((2, 4)), eps=0.0),
    "float32": dict(dtype="float32", needs=ALL),
    "float16": dict(dtype="float16", needs=ALL),
}
for name, kwargs in FUNCTIONAL.items():
    CASES.add(f"F-{name}", lambda lib, k=kwargs: functional(lib, **k))
CASES.add("F-eps-0d-tensor", lambda lib: functional(lib, eps=lib.tensor(np.array(0.5))))


# ---- the module's constructor, attributes, repr and state_dict -------------------------------


def describe(lib, *args, **kwargs):
    module = lib.nn.LayerNorm(*args, **kwargs)
    out = {
        "repr": np.array(repr(module)),
        "normalized_shape": np.array(repr(module.normalized_shape)),
        "keys": np.array(",".join(module.state_dict())),
    }
    for name, param in module.named_parameters():
        out[name] = lib.numpy(param)
    return out


CASES.add("ctor-int", lambda lib: describe(lib, 5))
CASES.add("ctor-list", lambda lib: describe(lib, [2, 3], eps=1e-3))
CASES.add("ctor-numpy-int", lambda lib: describe(lib, np.int64(3)))
CASES.add("ctor-no-bias", lambda lib: describe(lib, 3, bias=False))
CASES.add("ctor-no-affine", lambda lib: describe(lib, (2, 2), elementwise_affine=False))
CASES.add("ctor-float64", lambda lib: describe(lib, 2, dtype=lib.dtype("float64")))
CASES.add("ctor-device", lambda lib: describe(lib, 2, device="cpu"))
CASES.add("ctor-positional", lambda lib: describe(lib, 2, 0.1, True, False, "cpu"))
CASES.add("ctor-float", lambda lib: describe(lib, 4.0))
CASES.add("ctor-float-element", lambda lib: describe(lib, [4.0]))
CASES.add("ctor-negative", lambda lib: describe(lib, -1))
CASES.add("ctor-negative-no-affine", lambda lib: describe(lib, -1, elementwise_affine=False))


def reset_parameters(lib):
    module = lib.nn.LayerNorm(3)
    load(lib, module, {"weight": np.full(3, 2.0, "float32"), "bias": np.ones(3, "float32")})
    module.reset_parameters()
    return {k: np.asarray(v) for k, v in module.state_dict().items()}


CASES.add("reset_parameters", reset_parameters)


# ---- errors, in torch's order ------------------------------------------------------------------


def call(lib, shape=(2, 4), ns=(4,), dtype="float32", weight=None, bias=None, eps=1e-5):
    """F.layer_norm with parameters given as ``(shape, dtype)`` (or None)."""
    x = lib.tensor(deterministic(shape, 1, "float64").round().astype(dtype))
    w, b = (None if p is None else lib.tensor(np.ones(p[0], p[1])) for p in (weight, bias))
    return {"y": lib.numpy(lib.F.layer_norm(x, ns, w, b, eps))}


ERRORS = {
    "shape-mismatch": dict(ns=(5,)),
    "shape-mismatch-2d": dict(ns=[2, 4, 4]),
    "shape-negative": dict(ns=(-4,)),
    "shape-int": dict(ns=4),
    "shape-empty": dict(ns=()),
    "shape-float-element": dict(ns=(4.0,)),
    "shape-numpy-float-element": dict(ns=(np.float64(4.0),)),
    "shape-bool-element": dict(ns=(True,)),
    "shape-str-element": dict(ns=("a",)),
    "shape-None": dict(ns=None),
    "shape-str": dict(ns="ab"),
    "shape-array": dict(ns=np.array([4])),
    "shape-int-and-eps": dict(ns=4, eps="x"),
    "eps-str": dict(eps="x"),
    "eps-None": dict(eps=None),
    "0d-input": dict(shape=(), ns=(1,)),
    "weight-shape": dict(weight=((3,), "float32")),
    "weight-2d": dict(weight=((2, 2), "float32")),
    "weight-0d": dict(shape=(2, 1), ns=(1,), weight=((), "float32")),
    "bias-shape": dict(weight=((4,), "float32"), bias=((3,), "float32")),
    "bias-shape-no-weight": dict(bias=((3,), "float32")),
    "weight-and-input-shape": dict(ns=(5,), weight=((3,), "float32")),
    "weight-shape-and-dtype": dict(weight=((3,), "float64")),
    "empty-shape-and-dtype": dict(ns=(), weight=((3,), "float64")),
    "dtype-and-input-shape": dict(ns=(5,), weight=((5,), "float64")),
    "int-input": dict(dtype="int32"),
    "int-input-empty": dict(shape=(0, 4), dtype="int64"),
    "int-input-shape": dict(dtype="int64", ns=(5,)),
    "int-input-float-weight": dict(dtype="int64", weight=((4,), "float32")),
    "int-input-int-weight": dict(dtype="int64", weight=((4,), "int64")),
    "bool-input": dict(dtype="bool"),
    "int-weight": dict(weight=((4,), "int64")),
    "same-dtype-bias": dict(weight=((4,), "float32"), bias=((4,), "float64")),
    "same-dtype-bias-shape": dict(ns=(5,), weight=((5,), "float32"), bias=((5,), "float64")),
    "float64-input-float32-weight": dict(dtype="float64", weight=((4,), "float32")),
    "float64-input-float32-bias": dict(dtype="float64", bias=((4,), "float32")),
    "float32-input-float16-weight": dict(weight=((4,), "float16")),
    "float16-input-float32-weight-float16-bias": dict(
        dtype="float16", weight=((4,), "float32"), bias=((4,), "float16")
    ),
    "float16-input-float16-weight-float32-bias": dict(
        dtype="float16", weight=((4,), "float16"), bias=((4,), "float32")
    ),
    "float16-input-float64-bias": dict(dtype="float16", bias=((4,), "float64")),
}
for name, kwargs in ERRORS.items():
    CASES.add(f"error-{name}", lambda lib, k=kwargs: call(lib, **k))
# Accepted mixed precision: float16 input with float32 parameters.
CASES.add("mixed-float16-float32", lambda lib: call(lib, dtype="float16", weight=((4,), "float32"),
                                                     bias=((4,), "float32")))  # fmt: skip
CASES.add("mixed-float16-bias-only", lambda lib: call(lib, dtype="float16", bias=((4,), "float32")))


def module_error(lib, normalized_shape, shape):
    return {"y": lib.numpy(lib.nn.LayerNorm(normalized_shape)(lib.tensor(np.ones(shape, "f4"))))}


CASES.add("module-error-shape", lambda lib: module_error(lib, 4, (2, 5)))
CASES.add("module-error-rank", lambda lib: module_error(lib, (2, 4), (4,)))


@pytest.mark.parametrize("name", CASES.names())
def test_layer_norm_matches_torch(name):
    CASES.check(name)


def test_failed_calls_change_nothing():
    """A call that raises leaves the module's parameters, their gradients and the input alone."""
    module = numbanorm.nn.LayerNorm(4)
    x = numbanorm.tensor(deterministic((3, 4), 1), requires_grad=True)
    module(x).backward(numbanorm.tensor(deterministic((3, 4), 2)))
    before = snapshot(module)
    x_before = x.data.copy()
    for bad in (
        numbanorm.tensor(np.ones((2, 5), np.float32), requires_grad=True),
        numbanorm.tensor(np.ones((2, 4), np.float64), requires_grad=True),
        numbanorm.tensor(np.ones((2, 4), np.int64)),
    ):
        with pytest.raises((RuntimeError, NotImplementedError)):
            module(bad)
        assert bad.grad is None
    with pytest.raises(TypeError):
        numbanorm.nn.functional.layer_norm(x, (4,), module.weight, module.bias, eps="x")
    assert_same(before, snapshot(module))
    np.testing.assert_array_equal(x.data, x_before)


def test_input_and_parameters_are_not_modified():
    x = deterministic((3, 4), 1)
    w, b = deterministic((4,), 2), deterministic((4,), 3)
    copies = [a.copy() for a in (x, w, b)]
    tensors = [numbanorm.Tensor(a, requires_grad=True) for a in (x, w, b)]
    y = numbanorm.nn.functional.layer_norm(tensors[0], (4,), tensors[1], tensors[2])
    y.backward(numbanorm.tensor(deterministic((3, 4), 4)))
    for a, c in zip((x, w, b), copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_large_offset_float32():
    """Rows at 1e6 with unit spread, in float32: outputs and gradients as a float64 computation
    from the same float32 values gives them (torch's float32 kernel is not held to this)."""
    x = (deterministic((4, 64), 1, np.float64) + 1e6).astype(np.float32)
    got = functional(NUMBANORM, (4, 64), (64,), "float32", x=x, needs=ALL)
    want = functional(NUMBANORM, (4, 64), (64,), x=x.astype(np.float64), needs=ALL)
    for key, value in want.items():
        assert_close(got[key], value.astype(np.float32), key)


def test_mixed_precision_gradients():
    """float16 input with float32 parameters: float32 parameter gradients as a float64
    computation from the same values (the upstream gradient rounded to float16 as the float16
    call's is) gives them, and float16 ones for the input."""
    x = deterministic((64, 16), 1, np.float16)
    got = functional(NUMBANORM, (64, 16), (16,), "float16", x=x, param_dtype="float32", needs=ALL)
    want = functional(
        NUMBANORM, (64, 16), (16,), x=x.astype(np.float64), needs=ALL, upstream_dtype="float16"
    )
    for key, value in want.items():
        assert_close(got[key], value.astype(got[key].dtype), key)
    assert got["dweight"].dtype == np.float32 and got["dinput"].dtype == np.float16


def test_constant_rows_with_constant_upstream_get_zero_input_gradient():
    """Constant rows (invstd = 1/sqrt(eps), large) with a constant upstream gradient in each,
    one-element rows too: the input gradient is exactly 0, as in float64 (the mean of
    ``dy * w`` is subtracted before the scaling by invstd, which would magnify float32
    rounding)."""
    for width in (1, 5):
        x = deterministic((6, 1), 1) * np.ones((1, width), np.float32)
        dy = deterministic((6, 1), 2) * np.ones((1, width), np.float32)
        leaf = numbanorm.Tensor(x, requires_grad=True)
        weight = numbanorm.Tensor(np.full(width, 1.3, np.float32))
        numbanorm.nn.functional.layer_norm(leaf, (width,), weight).backward(numbanorm.Tensor(dy))
        np.testing.assert_array_equal(leaf.grad.data, np.zeros_like(x), f"width {width}")
