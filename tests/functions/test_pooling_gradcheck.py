"""Finite-difference gradient checks of the pooling Functions, in float64: max (overlapping,
padded, dilated, ceil-mode windows), average (padding counted or not, ceil mode, a divisor
override) and adaptive average (uneven, overlapping and enlarging windows, torch's 1x1 mean on
any leading dimensions); unbatched and channels-last input."""

import numpy as np
import pytest

from numbanorm.nn import functional as F
from tests.gradcheck import gradcheck
from tests.oracle import channels_last, deterministic

CONFIGS = {
    "max_basic": ((2, 2, 4, 4), F.max_pool2d, {"kernel_size": 2}),
    "max_overlapping_padded": (
        (1, 2, 5, 4), F.max_pool2d, {"kernel_size": 3, "stride": 1, "padding": 1},
    ),
    "max_dilated_ceil": (
        (1, 2, 6, 5), F.max_pool2d,
        {"kernel_size": (2, 3), "stride": 2, "dilation": (2, 1), "padding": (0, 1),
         "ceil_mode": True},
    ),
    "max_unbatched": ((2, 5, 4), F.max_pool2d, {"kernel_size": 2, "stride": 1}),
    "avg_basic": ((2, 2, 4, 4), F.avg_pool2d, {"kernel_size": 2}),
    "avg_padded": ((1, 2, 5, 4), F.avg_pool2d, {"kernel_size": 3, "stride": 2, "padding": 1}),
    "avg_exclude_pad_ceil": (
        (1, 2, 5, 5), F.avg_pool2d,
        {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
         "count_include_pad": False},
    ),
    "avg_divisor": ((1, 2, 4, 5), F.avg_pool2d, {"kernel_size": (2, 3), "divisor_override": 4}),
    "avg_unbatched": ((2, 5, 4), F.avg_pool2d, {"kernel_size": 2, "stride": 1}),
    "adaptive_uneven": ((1, 2, 5, 7), F.adaptive_avg_pool2d, {"output_size": (3, 4)}),
    "adaptive_larger": ((1, 2, 3, 2), F.adaptive_avg_pool2d, {"output_size": (5, 3)}),
    "adaptive_unbatched": ((2, 5, 4), F.adaptive_avg_pool2d, {"output_size": (2, None)}),
    "adaptive_one": ((2, 2, 3, 4), F.adaptive_avg_pool2d, {"output_size": 1}),
    "adaptive_one_5d": ((1, 2, 2, 3, 2), F.adaptive_avg_pool2d, {"output_size": (1, 1)}),
}  # fmt: skip

PARAMS = [
    (name, layout)
    for name, (shape, _, _) in CONFIGS.items()
    for layout in ["contiguous", "channels_last"]
    if layout == "contiguous" or len(shape) == 4
]


@pytest.mark.parametrize(("name", "layout"), PARAMS)
def test_pooling_gradients(name, layout):
    shape, function, kwargs = CONFIGS[name]
    x = deterministic(shape, 1, np.float64)
    x = channels_last(x) if layout == "channels_last" else x
    gradcheck(lambda x: function(x, **kwargs), [x], seed=2)
