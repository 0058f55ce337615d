"""Finite-difference gradient checks of the row-wise Functions (RowNorm, GroupNorm), in float64,
through ``numbanorm.nn.functional.layer_norm``, ``rms_norm`` and ``group_norm``: every subset of
the gradients (the others' arrays are constants), 1-D and multi-D ``normalized_shape``, with and
without affine parameters, and GroupNorm on contiguous, channels-last and strided input."""

import itertools

import numpy as np
import pytest

from numbanorm.nn import functional as F
from tests.gradcheck import gradcheck
from tests.oracle import channels_last, deterministic


def subsets(names):
    """Every non-empty subset of ``names``, in order."""
    return [
        combo for size in range(1, len(names) + 1) for combo in itertools.combinations(names, size)
    ]


def _ids(value):
    return str(value).replace(" ", "")


def differentiate(function, values: dict, wanted: tuple, seed: int) -> None:
    """Gradcheck ``function(**values)`` with respect to the arguments in ``wanted`` only; the
    others are fixed arrays (or None)."""

    def partial(*arrays):
        return function(**{**values, **dict(zip(wanted, arrays, strict=True))})

    gradcheck(partial, [values[name] for name in wanted], seed=seed)


# ---- LayerNorm and RMSNorm ---------------------------------------------------------------------

# (input shape, normalized_shape)
ROW_SHAPES = [((3, 4), (4,)), ((2, 3, 2), (2,)), ((2, 2, 3), (2, 3)), ((2, 3, 2, 2), (3, 2, 2))]


def _row_values(shape, normalized_shape, transposed=False):
    x = deterministic(shape, 1, np.float64, -1.0, 3.0)
    if transposed:  # a non-contiguous view: the first and last axes swapped in memory
        x = np.swapaxes(np.ascontiguousarray(np.swapaxes(x, 0, -1)), 0, -1)
    return {
        "input": x,
        "weight": deterministic(normalized_shape, 2, np.float64, 0.5, 1.5),
        "bias": deterministic(normalized_shape, 3, np.float64, -1.0, 1.0),
    }


@pytest.mark.parametrize("wanted", subsets(("input", "weight", "bias")), ids=_ids)
@pytest.mark.parametrize(("shape", "normalized_shape"), ROW_SHAPES, ids=_ids)
def test_layer_norm_gradients(shape, normalized_shape, wanted):
    values = _row_values(shape, normalized_shape)

    def layer_norm(input, weight, bias):
        return F.layer_norm(input, normalized_shape, weight, bias, eps=1e-5)

    differentiate(layer_norm, values, wanted, seed=4)


@pytest.mark.parametrize("affine", ["weight", "bias", "none"])
def test_layer_norm_gradients_with_missing_parameters(affine):
    values = _row_values((3, 2, 3), (2, 3), transposed=True)
    if affine != "weight":
        values["weight"] = None
    if affine != "bias":
        values["bias"] = None
    wanted = ("input",) if affine == "none" else ("input", affine)

    def layer_norm(input, weight, bias):
        return F.layer_norm(input, (2, 3), weight, bias, eps=1e-3)

    differentiate(layer_norm, values, wanted, seed=5)


@pytest.mark.parametrize("wanted", subsets(("input", "weight")), ids=_ids)
@pytest.mark.parametrize(("shape", "normalized_shape"), ROW_SHAPES, ids=_ids)
def test_rms_norm_gradients(shape, normalized_shape, wanted):
    values = _row_values(shape, normalized_shape)
    del values["bias"]

    def rms_norm(input, weight):
        return F.rms_norm(input, normalized_shape, weight)

    differentiate(rms_norm, values, wanted, seed=6)


@pytest.mark.parametrize("eps", [None, 0.1])
def test_rms_norm_gradients_without_weight(eps):
    values = _row_values((3, 2, 3), (2, 3), transposed=True)
    gradcheck(lambda x: F.rms_norm(x, (2, 3), None, eps), [values["input"]], seed=7)


# ---- GroupNorm ----------------------------------------------------------------------------------

# (input shape, groups)
# (8, ...): channels-last runs a task per sample from 8 samples on.
GROUP_SHAPES = [
    ((3, 4, 3), 2),
    ((2, 6, 2, 3), 3),
    ((2, 4, 2, 1, 3), 2),
    ((3, 4), 4),
    ((8, 2, 1, 2), 1),
]
LAYOUTS = ["contiguous", "channels_last", "strided"]


def _layout(x, layout):
    if layout == "channels_last":
        return channels_last(x)
    if layout == "strided":  # every other element of a larger array, channels reversed
        base = np.zeros((*x.shape[:-1], 2 * x.shape[-1]))
        view = base[..., ::2][:, ::-1]
        view[...] = x[:, ::-1]
        return view
    return x


def _group_values(shape, layout):
    channels = shape[1]
    return {
        "input": _layout(deterministic(shape, 1, np.float64, -1.0, 3.0), layout),
        "weight": deterministic((channels,), 2, np.float64, 0.5, 1.5),
        "bias": deterministic((channels,), 3, np.float64, -1.0, 1.0),
    }


# A 2-D input has no channels-last layout of its own.
GROUP_PARAMS = [
    (shape, groups, layout)
    for (shape, groups), layout in itertools.product(GROUP_SHAPES, LAYOUTS)
    if len(shape) > 2 or layout != "channels_last"
]


@pytest.mark.parametrize("wanted", subsets(("input", "weight", "bias")), ids=_ids)
@pytest.mark.parametrize(("shape", "groups", "layout"), GROUP_PARAMS, ids=_ids)
def test_group_norm_gradients(shape, groups, layout, wanted):
    values = _group_values(shape, layout)

    def group_norm(input, weight, bias):
        return F.group_norm(input, groups, weight, bias, eps=1e-5)

    differentiate(group_norm, values, wanted, seed=9)


@pytest.mark.parametrize("affine", ["weight", "bias", "none"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_group_norm_gradients_with_missing_parameters(layout, affine):
    values = _group_values((2, 4, 2, 3), layout)
    if affine != "weight":
        values["weight"] = None
    if affine != "bias":
        values["bias"] = None
    wanted = ("input",) if affine == "none" else ("input", affine)

    def group_norm(input, weight, bias):
        return F.group_norm(input, 2, weight, bias, eps=1e-3)

    differentiate(group_norm, values, wanted, seed=10)
