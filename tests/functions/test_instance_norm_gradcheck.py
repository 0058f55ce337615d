"""Finite-difference gradient checks of the InstanceNorm Function, in float64, through
``numbanorm.nn.functional.instance_norm`` and the unbatched module: input, weight and bias;
each sample's own statistics or the running ones; contiguous, channels-last and strided
input."""

import numpy as np
import pytest

import numbanorm
from numbanorm.nn import functional as F
from tests.gradcheck import gradcheck
from tests.oracle import channels_last, deterministic

SHAPES = [(3, 2, 4), (2, 3, 2, 3), (2, 2, 2, 1, 3)]
# train: the sample's statistics, running buffers updated; train-untracked: no running buffers;
# eval: the running statistics normalize (constants for the gradient).
MODES = ["train", "train-untracked", "eval"]
PARAMS = [
    (shape, layout)
    for shape in SHAPES
    for layout in ["contiguous", "channels_last", "strided"]
    if layout != "channels_last" or len(shape) > 3
]


def _layout(x, layout):
    if layout == "channels_last":
        return channels_last(x)
    if layout == "strided":  # every other element of a larger array, channels reversed
        base = np.zeros((*x.shape[:-1], 2 * x.shape[-1]))
        view = base[..., ::2][:, ::-1]
        view[...] = x[:, ::-1]
        return view
    return x


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("shape", "layout"), PARAMS, ids=lambda p: str(p).replace(" ", ""))
def test_instance_norm_gradients(shape, layout, mode, affine):
    channels = shape[1]
    x = _layout(deterministic(shape, 1, np.float64) + 0.5, layout)
    running_mean = deterministic((channels,), 2, np.float64, -0.5, 0.5)
    running_var = deterministic((channels,), 3, np.float64, 0.5, 1.5)
    arrays = [x]
    if affine:
        arrays += [
            deterministic((channels,), 4, np.float64, 0.5, 1.5),
            deterministic((channels,), 5, np.float64, -1.0, 1.0),
        ]

    def instance_norm(x, *parameters):
        weight, bias = parameters if affine else (None, None)
        # Fresh buffers every call: a training forward updates them in place.
        running = (running_mean.copy(), running_var.copy()) if mode != "train-untracked" else ()
        output = F.instance_norm(
            x, *(running or (None, None)), weight, bias, mode != "eval", 0.1, 1e-5
        )
        if running and mode == "train":
            assert not np.array_equal(running[0], running_mean), "running mean not updated"
        return output

    gradcheck(instance_norm, arrays, seed=6)


@pytest.mark.parametrize("mode", MODES)
def test_instance_norm_gradients_of_parameters_only(mode):
    """An input that needs no gradient (a model's first layer): weight and bias only."""
    x = channels_last(deterministic((2, 3, 2, 3), 1, np.float64))
    running_mean = deterministic((3,), 2, np.float64, -0.5, 0.5)
    running_var = deterministic((3,), 3, np.float64, 0.5, 1.5)
    weight = deterministic((3,), 4, np.float64, 0.5, 1.5)
    bias = deterministic((3,), 5, np.float64, -1.0, 1.0)

    def instance_norm(weight, bias):
        running = (running_mean.copy(), running_var.copy()) if mode != "train-untracked" else ()
        return F.instance_norm(x, *(running or (None, None)), weight, bias, mode != "eval")

    gradcheck(instance_norm, [weight, bias], seed=7)


def test_zero_dimensional_weight_of_one_channel():
    """torch repeats the weight and bias N times: 0-d ones serve a single channel."""
    x = deterministic((3, 1, 4), 1, np.float64)
    weight = np.array(1.5)
    bias = np.array(-0.25)
    gradcheck(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), [x, weight, bias], seed=8)


@pytest.mark.parametrize("kind", ["InstanceNorm1d", "InstanceNorm2d"])
def test_unbatched_module_gradients(kind):
    """An unbatched input goes through a batch of one and back: the input gradient."""
    shape = (3, 4) if kind == "InstanceNorm1d" else (2, 3, 2)
    module = getattr(numbanorm.nn, kind)(shape[0], affine=True, dtype="float64")
    module.weight.data[...] = deterministic((shape[0],), 4, np.float64, 0.5, 1.5)
    module.bias.data[...] = deterministic((shape[0],), 5, np.float64)
    gradcheck(module, [deterministic(shape, 1, np.float64)], seed=9)
