"""Finite-difference gradient checks of the BatchNorm Function, in float64, through
``numbanorm.nn.functional.batch_norm``: input, weight and bias; batch and running statistics;
contiguous and channels-last input."""

import numpy as np
import pytest

from numbanorm.nn import functional as F
from tests.gradcheck import gradcheck
from tests.oracle import channels_last, deterministic

SHAPES = [(4, 3), (3, 2, 4), (2, 3, 2, 3)]
# train: batch statistics, running buffers updated; train-untracked: no running buffers;
# eval: the running statistics normalize (constants for the gradient).
MODES = ["train", "train-untracked", "eval"]

PARAMS = [
    (shape, layout)
    for shape in SHAPES
    for layout in ["contiguous", "channels_last"]
    if layout == "contiguous" or len(shape) > 2
]


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("shape", "layout"), PARAMS, ids=lambda p: str(p).replace(" ", ""))
def test_batch_norm_gradients(shape, layout, mode, affine):
    channels = shape[1]
    x = deterministic(shape, 1, np.float64) + 0.5
    if layout == "channels_last":
        x = channels_last(x)
    running_mean = deterministic((channels,), 2, np.float64, -0.5, 0.5)
    running_var = deterministic((channels,), 3, np.float64, 0.5, 1.5)
    arrays = [x]
    if affine:
        arrays += [
            deterministic((channels,), 4, np.float64, 0.5, 1.5),
            deterministic((channels,), 5, np.float64, -1.0, 1.0),
        ]

    def batch_norm(x, *parameters):
        weight, bias = parameters if affine else (None, None)
        # Fresh buffers every call: a training forward updates them in place.
        running = (running_mean.copy(), running_var.copy()) if mode != "train-untracked" else ()
        output = F.batch_norm(
            x, *(running or (None, None)), weight, bias, mode != "eval", 0.1, 1e-5
        )
        if running and mode == "train":
            assert not np.array_equal(running[0], running_mean), "running mean not updated"
        return output

    gradcheck(batch_norm, arrays, seed=6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_batch_norm_gradients_of_parameters_only(layout, mode):
    """An input that needs no gradient (a model's first layer): weight and bias only."""
    shape = (2, 3, 2, 3)
    x = deterministic(shape, 1, np.float64)
    x = channels_last(x) if layout == "channels_last" else x
    running_mean = deterministic((3,), 2, np.float64, -0.5, 0.5)
    running_var = deterministic((3,), 3, np.float64, 0.5, 1.5)
    weight = deterministic((3,), 4, np.float64, 0.5, 1.5)
    bias = deterministic((3,), 5, np.float64, -1.0, 1.0)

    def batch_norm(weight, bias):
        running = (running_mean.copy(), running_var.copy()) if mode != "train-untracked" else ()
        return F.batch_norm(x, *(running or (None, None)), weight, bias, mode != "eval", 0.1, 1e-5)

    gradcheck(batch_norm, [weight, bias], seed=7)
