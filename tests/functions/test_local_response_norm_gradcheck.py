"""Finite-difference gradient checks of the LocalResponseNorm Function, in float64, through
``numbanorm.nn.functional.local_response_norm``: ranks 3 to 5, contiguous and channels-last
input, window sizes from 1 to beyond the channel count, and parameters where the window's term
vanishes (alpha or beta 0) or dominates."""

import numpy as np
import pytest

from numbanorm.nn import functional as F
from tests.gradcheck import gradcheck
from tests.oracle import channels_last, deterministic

SHAPES = [(2, 5, 3), (2, 4, 2, 3), (1, 4, 2, 2, 2)]
PARAMETERS = {
    "default": (1e-4, 0.75, 1.0),
    "strong": (2.0, 0.75, 0.5),
    "beta2": (1.0, 2.0, 1.0),
    "negative-beta": (0.5, -0.5, 1.0),
    "k0": (1.0, 0.5, 0.0),
    "beta0": (1.0, 0.0, 1.0),
    "alpha0": (0.0, 0.75, 2.0),
}


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("size", [1, 2, 3, 6])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"rank{len(s)}")
def test_local_response_norm_gradients(shape, size, layout):
    x = deterministic(shape, 1, np.float64)
    if layout == "channels_last":
        x = channels_last(x)
    gradcheck(lambda x: F.local_response_norm(x, size, 0.5, 0.75, 1.0), [x], seed=2)


@pytest.mark.parametrize("name", PARAMETERS)
def test_local_response_norm_gradients_of_parameters(name):
    alpha, beta, k = PARAMETERS[name]
    x = deterministic((2, 5, 2, 2), 3, np.float64, 0.5, 2.0)
    gradcheck(lambda x: F.local_response_norm(x, 3, alpha, beta, k), [x], seed=4)
