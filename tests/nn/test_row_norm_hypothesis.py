"""F.layer_norm, F.rms_norm and F.group_norm on hypothesis' shapes, groups, normalized shapes,
memory layouts, dtypes and arguments, against an independent float64 numpy reference of torch's
semantics (and torch, live, when it is installed).

Shapes: LayerNorm/RMSNorm take 0 to 2 leading axes and a 1- to 3-D ``normalized_shape``, sizes
0..3 (empty rows and zero-width rows included); GroupNorm takes N in 0..9, 1..3 groups of 0..3
channels and 0 to 3 spatial sizes in 0..3 (not one value per group, torch's error:
test_group_norm). Layouts: contiguous, channels-last (GroupNorm), and strided views (any axis order
in memory, steps of 2, negative strides). Dtypes: float16 (computed in float32), float32, float64;
float16 input with float32 parameters (torch's mixed precision), and RMSNorm's weight of any float
dtype. Each example runs a forward and a backward (with or without a gradient for the input).

``test_row_norm_fuzz`` is the long run, ``python -m pytest -m fuzz`` (the "fuzz" hypothesis
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

FLOATS = ["float16", "float32", "float64"]


@st.composite
def scenarios(draw):
    kind = draw(st.sampled_from(["layer", "rms", "group"]))
    sizes = st.integers(0, 3)
    if kind == "group":
        groups = draw(st.integers(1, 3))
        spatial = draw(st.lists(sizes, max_size=3))
        # 8 samples or more: channels-last runs a task per sample.
        shape = (draw(st.integers(0, 9)), groups * draw(sizes), *spatial)
        normalized_ndim = 0
    else:
        groups = 0
        lead = draw(st.lists(sizes, max_size=2))
        normalized = draw(st.lists(sizes, min_size=1, max_size=3))
        shape = (*lead, *normalized)
        normalized_ndim = len(normalized)
    ndim = len(shape)
    layouts = ["contiguous", "strided"] + (["channels_last"] if kind == "group" else [])
    layout = draw(st.sampled_from(layouts))
    strides = None
    if layout == "strided":
        order = draw(st.permutations(range(ndim)))
        steps = draw(st.lists(st.sampled_from([1, 2, -1, -2]), min_size=ndim, max_size=ndim))
        strides = (tuple(order), tuple(steps))
    dtype = draw(st.sampled_from(FLOATS))
    if kind == "rms":
        param_dtype = draw(st.sampled_from(FLOATS))
    elif dtype == "float16":
        param_dtype = draw(st.sampled_from(["float16", "float32"]))
    else:
        param_dtype = dtype
    eps = [1e-5, 0.1] + ([None] if kind == "rms" else [])
    return {
        "kind": kind,
        "shape": shape,
        "groups": groups,
        "normalized_ndim": normalized_ndim,
        "layout": layout,
        "strides": strides,
        "dtype": dtype,
        "param_dtype": param_dtype,
        "weight": draw(st.booleans()),
        "bias": kind != "rms" and draw(st.booleans()),
        "eps": draw(st.sampled_from(eps)),
        "input_grad": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def param_shape(scenario):
    shape = scenario["shape"]
    if scenario["kind"] == "group":
        return (shape[1],)
    return shape[len(shape) - scenario["normalized_ndim"] :]


def make_input(scenario):
    """The input values, stored in the scenario's layout (a view, never compacted)."""
    values = deterministic(scenario["shape"], scenario["seed"], scenario["dtype"], -2.0, 4.0)
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
    """The defined parameters' values, in the parameters' dtype."""
    shape, dtype, seed = param_shape(scenario), scenario["param_dtype"], scenario["seed"]
    values = {}
    if scenario["weight"]:
        values["weight"] = deterministic(shape, seed + 10, dtype, 0.5, 1.5)
    if scenario["bias"]:
        values["bias"] = deterministic(shape, seed + 11, dtype)
    return values


def upstream(scenario):
    return deterministic(scenario["shape"], scenario["seed"] + 20, scenario["dtype"])


def compute_eps(scenario):
    """The eps torch adds: RMSNorm's None is the machine epsilon of its compute type."""
    if scenario["eps"] is not None:
        return scenario["eps"]
    return float(np.finfo(np.float64 if scenario["dtype"] == "float64" else np.float32).eps)


def call(lib, scenario, x, params):
    kind = scenario["kind"]
    if kind == "group":
        weight, bias = params.get("weight"), params.get("bias")
        return lib.F.group_norm(x, scenario["groups"], weight, bias, scenario["eps"])
    normalized = tuple(scenario["shape"][len(scenario["shape"]) - scenario["normalized_ndim"] :])
    if kind == "rms":
        return lib.F.rms_norm(x, normalized, params.get("weight"), scenario["eps"])
    return lib.F.layer_norm(x, normalized, params.get("weight"), params.get("bias"),
                            scenario["eps"])  # fmt: skip


def run(lib, scenario, as_float64=False):
    """Forward and backward on ``lib``: output and gradients. ``as_float64`` (torch): the
    scenario's values computed in float64 (with the eps the scenario's dtype would get), the
    results rounded to the dtypes the scenario's call would give them."""
    array = make_input(scenario)
    values = parameters(scenario)
    wants_params = bool(values)
    if lib is NUMBANORM:
        before = array.copy()
        x = numbanorm.Tensor(array, requires_grad=scenario["input_grad"])
        params = {k: numbanorm.Tensor(v, requires_grad=True) for k, v in values.items()}
        y = call(lib, scenario, x, params)
    else:
        # torch gets contiguous float64 copies. Two torch 2.13 crashes are kept out of its way:
        # a channels-last backward without an input gradient (a segmentation fault) and a group
        # norm bias's gradient without a weight ("tensor does not have a device"): a weight of
        # ones without a gradient is the same function.
        x = lib.tensor(np.ascontiguousarray(array, np.float64), scenario["input_grad"])
        params = {k: lib.tensor(v.astype(np.float64), True) for k, v in values.items()}
        if scenario["kind"] == "group" and "bias" in params and "weight" not in params:
            params["weight"] = lib.tensor(np.ones(param_shape(scenario)))
        y = call(lib, scenario | {"eps": compute_eps(scenario)}, x, params)
    if scenario["input_grad"] or wants_params:
        y.backward(lib.tensor(upstream(scenario).astype(np.float64 if as_float64 else y.dtype)))
    out = {"y": lib.numpy(y)}
    if scenario["input_grad"]:
        out["dinput"] = lib.numpy(x.grad)
    for name in values:
        out[f"d{name}"] = lib.numpy(params[name].grad)
    if lib is NUMBANORM:
        np.testing.assert_array_equal(array, before, "the input was modified")
    if as_float64:
        dtypes = {f"d{name}": value.dtype for name, value in values.items()}
        out = {k: v.astype(dtypes.get(k, scenario["dtype"])) for k, v in out.items()}
    return out


def _normalize(x, dy, weight, bias, axes, eps, rms):
    """Float64 ``y``, ``dx`` and the per-row weight gradient terms ``dy * (x - mean) * invstd``
    (summed over ``axes``' last one only where a parameter spans it) of a normalization over
    ``axes``; an empty row has mean 0 and invstd NaN (torch's 0/0 variance)."""
    count = prod(x.shape[a] for a in axes)
    keep = tuple(1 if a in axes else size for a, size in enumerate(x.shape))
    if count == 0:
        mean, invstd = np.zeros(keep), np.full(keep, np.nan)
    else:
        mean = np.zeros(keep) if rms else x.mean(axes, keepdims=True)
        invstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axes, keepdims=True) + eps)
    xhat = (x - mean) * invstd
    g = dy * weight
    if count == 0:
        dx = np.zeros_like(x)
    else:
        centred_g = g if rms else g - g.mean(axes, keepdims=True)
        dx = invstd * (centred_g - xhat * (g * xhat).mean(axes, keepdims=True))
    return xhat * weight + bias, dx, dy * (x - mean), invstd


def reference(scenario):
    """What ``run`` gives, computed in float64 with numpy from the scenario's values and rounded
    to the dtypes torch gives its results."""
    shape, kind = scenario["shape"], scenario["kind"]
    values = parameters(scenario)
    pshape = param_shape(scenario)
    weight = values.get("weight", np.ones(pshape)).astype(np.float64)
    bias = values.get("bias", np.zeros(pshape)).astype(np.float64)
    x = make_input(scenario).astype(np.float64)
    dy = upstream(scenario).astype(np.float64)
    eps = compute_eps(scenario)
    if kind == "group":
        # (N, groups, channels per group, S): statistics over the last two axes.
        n, channels = shape[:2]
        groups = scenario["groups"]
        view = (n, groups, channels // groups, prod(shape[2:]))
        params = (1, groups, channels // groups, 1)
        y, dx, terms, invstd = _normalize(
            x.reshape(view), dy.reshape(view), weight.reshape(params), bias.reshape(params),
            (2, 3), eps, False,
        )  # fmt: skip
        # An empty group's NaN invstd reaches its channels' weight gradient, as in torch.
        dweight = (terms.sum(3) * invstd[..., 0]).sum(0)
        dbias = dy.reshape(view).sum((0, 3))
    else:
        d = prod(pshape)
        view = (prod(shape[: len(shape) - len(pshape)]), d)
        y, dx, terms, invstd = _normalize(
            x.reshape(view), dy.reshape(view), weight.reshape(1, d), bias.reshape(1, d),
            (1,), eps, kind == "rms",
        )  # fmt: skip
        dweight = (terms * invstd).sum(0)
        dbias = dy.reshape(view).sum(0)
    dtype = scenario["dtype"]
    out = {"y": y.reshape(shape).astype(dtype)}
    if scenario["input_grad"]:
        out["dinput"] = dx.reshape(shape).astype(dtype)
    for name, grad in (("weight", dweight), ("bias", dbias)):
        if name in values:
            out[f"d{name}"] = grad.reshape(pshape).astype(values[name].dtype)
    return out


def at_compute_precision(out, scenario):
    """Gradients of parameters wider than the type the kernels compute in (RMSNorm's float64
    weight of float16 or float32 input; torch's own are computed in float32 too) compared in that
    type, their dtype apart."""
    compute = np.dtype(np.float64 if scenario["dtype"] == "float64" else np.float32)
    for key in [k for k in out if k in ("dweight", "dbias")]:
        if out[key].dtype.itemsize > compute.itemsize:
            out[f"{key}.dtype"] = np.array(str(out[key].dtype))
            out[key] = out[key].astype(compute)
    return out


def check_scenario(scenario):
    shape = scenario["shape"]
    if scenario["kind"] == "group":
        # One value per group is torch's error (test_group_norm).
        assume(shape[0] * shape[1] // scenario["groups"] * prod(shape[2:]) != 1)
    actual = at_compute_precision(run(NUMBANORM, scenario), scenario)
    expected = at_compute_precision(reference(scenario), scenario)
    compare(actual, expected, "vs float64 reference")
    if TORCH_AVAILABLE:
        # torch's semantics on the same values, computed in float64 (its float16 and float32
        # kernels are less accurate than the table's tolerances where a row's values nearly
        # coincide; numbanorm is held to the float64 reference above).
        torch_result = run(Lib("torch"), scenario, as_float64=True)
        compare(actual, at_compute_precision(torch_result, scenario), "vs torch")


@given(scenarios())
def test_row_norm_matches_reference(scenario):
    check_scenario(scenario)


@pytest.mark.fuzz
def test_row_norm_fuzz(pytestconfig):
    fuzz(pytestconfig, scenarios(), check_scenario)
