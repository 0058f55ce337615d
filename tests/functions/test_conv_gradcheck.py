"""Finite-difference gradient checks of the Conv2d Function and of Conv2d's padding modes, in
float64: input, weight and bias; strides, padding, dilation, groups, 'same' padding, unbatched
and channels-last input."""

import numpy as np
import pytest

from numbanorm.nn import functional as F
from numbanorm.nn.functional.conv import conv_padding
from tests.gradcheck import gradcheck
from tests.oracle import channels_last, deterministic

CONFIGS = {
    "basic": ((2, 2, 4, 4), (3, 2, 2, 3), {}),
    "stride_padding": ((1, 2, 5, 4), (2, 2, 3, 2), {"stride": (2, 1), "padding": (1, 2)}),
    "dilation": ((1, 2, 5, 5), (2, 2, 2, 2), {"dilation": (2, 3), "padding": 1}),
    "groups": ((2, 4, 3, 3), (4, 2, 2, 2), {"groups": 2, "padding": 1}),
    "same_even": ((1, 2, 4, 3), (2, 2, 2, 3), {"padding": "same"}),
    "unbatched": ((2, 4, 3), (3, 2, 3, 2), {"padding": 1}),
}


PARAMS = [
    (name, layout)
    for name, (x_shape, _, _) in CONFIGS.items()
    for layout in ["contiguous", "channels_last"]
    if layout == "contiguous" or len(x_shape) == 4
]


@pytest.mark.parametrize(("name", "layout"), PARAMS)
def test_conv2d_gradients(name, layout):
    x_shape, w_shape, kwargs = CONFIGS[name]
    x = deterministic(x_shape, 1, np.float64)
    x = channels_last(x) if layout == "channels_last" else x
    w = deterministic(w_shape, 2, np.float64)
    b = deterministic((w_shape[0],), 3, np.float64)
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kwargs), [x, w, b], seed=4)
    gradcheck(lambda x, w: F.conv2d(x, w, None, **kwargs), [x, w], seed=5)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_mode_gradients(mode):
    x = deterministic((2, 2, 3, 4), 1, np.float64)
    w = deterministic((2, 2, 2, 2), 2, np.float64)
    gradcheck(lambda x, w: F.conv2d(conv_padding(x, (3, 1, 2, 2), mode), w), [x, w], seed=6)
