"""The LocalResponseNorm CUDA kernels against the CPU kernels on the same inputs: both layouts,
float32 and float64, strided device views, odd and even windows, windows of zeros (torch's NaN),
int64 input's floored mean, windows far longer than the channel axis, ``alpha`` 0 and empty
input.

On numba's CUDA simulator every thread runs in Python, so the inputs are tiny; launches are held
to two blocks so that threads stride over several elements of more than one row.
"""

import numpy as np
import pytest

from numbanorm.kernels import cpu
from numbanorm.kernels.config import THREADS_PER_BLOCK
from numbanorm.kernels.cuda import local_response_norm
from tests.kernels.cuda.device_arrays import OnDevice
from tests.oracle import deterministic

# Both compute in float64 and round once: float64 differs by the summation order and the power
# (the CPU's exp/log pair is within about 1e-15), float32 by at most an ulp of the rounding.
TOLERANCE = {np.float64: {"rtol": 1e-12, "atol": 1e-14}, np.float32: {"rtol": 1e-6, "atol": 1e-7}}


@pytest.fixture(autouse=True)
def two_blocks(monkeypatch):
    monkeypatch.setattr(local_response_norm, "_MAX_BLOCKS", 2)


def forward(module, layout):
    return getattr(module, f"local_response_norm_{layout}")


def backward(module, layout):
    return getattr(module, f"local_response_norm_backward_{layout}")


def run_cpu(layout, x, dy, size, alpha, beta, k, floor_mean=False, y_dtype=None):
    y = np.empty(x.shape, y_dtype or x.dtype)
    with np.errstate(all="ignore"):
        forward(cpu, layout)(x, size, alpha, beta, k, floor_mean, y)
        if dy is None:
            return {"y": y}
        dx = np.empty_like(x)
        backward(cpu, layout)(dy, x, size, alpha, beta, k, dx)
    return {"y": y, "dx": dx}


def run_cuda(layout, x, dy, size, alpha, beta, k, floor_mean=False, y_dtype=None, strides=False):
    """What run_cpu computes, by the CUDA kernels on device views of the inputs and outputs."""
    y = OnDevice(np.zeros(x.shape, y_dtype or x.dtype), strides)
    x_device = OnDevice(x, strides)
    forward(local_response_norm, layout)(x_device.view, size, alpha, beta, k, floor_mean, y.view)
    if dy is None:
        return {"y": y.numpy()}
    dx = OnDevice(np.zeros_like(x), strides)
    backward(local_response_norm, layout)(
        OnDevice(dy, strides).view, x_device.view, size, alpha, beta, k, dx.view
    )
    return {"y": y.numpy(), "dx": dx.numpy()}


def assert_all_match(got, want):
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, err_msg=key, **TOLERANCE[value.dtype.type])


def view(layout, n, c, s, seed, dtype=np.float64):
    return deterministic((n, c, s) if layout == "ncs" else (n, s, c), seed, dtype)


# (layout, dtype, strided views, window size): 2 blocks of 256 threads stride over 900 elements,
# the stride of 512 crossing from one sample (150 elements) into the next but two.
CASES = [
    ("ncs", np.float64, False, 3),
    ("ncs", np.float32, True, 4),
    ("nsc", np.float64, True, 5),
    ("nsc", np.float32, False, 2),
]


@pytest.mark.parametrize(("layout", "dtype", "any_strides", "size"), CASES)
def test_forward_and_backward_match_cpu(layout, dtype, any_strides, size):
    x = view(layout, 6, 6, 25, 1, dtype)
    dy = view(layout, 6, 6, 25, 2, dtype)
    assert x.size > 2 * THREADS_PER_BLOCK
    arguments = (size, 0.5, 0.75, 1.5)
    got = run_cuda(layout, x, dy, *arguments, strides=any_strides)
    assert_all_match(got, run_cpu(layout, x, dy, *arguments))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_windows_of_zeros_give_nan_as_torch():
    """Squares from 1e-8 to 1e8 with ``k = 0``: each window's sum holds only its own values, so a
    window of zeros after large values sums to exactly 0 and gives torch's 0/0 = NaN."""
    magnitudes = np.array([1e4, 1e-4, 1e-4, 1.0, 0.0, 0.0, 0.0, 3e3, 2e-4])
    x = (view("nsc", 2, magnitudes.size, 3, 1) * magnitudes).astype(np.float32)
    dy = view("nsc", 2, magnitudes.size, 3, 2, np.float32)
    got = run_cuda("nsc", x, dy, 3, 1.0, 0.75, 0.0)
    want = run_cpu("nsc", x, dy, 3, 1.0, 0.75, 0.0)
    assert np.isnan(want["y"][:, :, 5]).all()
    assert_all_match(got, want)


@pytest.mark.parametrize("layout", ["ncs", "nsc"])
def test_int64_input_floors_the_mean(layout):
    x = (view(layout, 2, 5, 4, 1) * 10).astype(np.int64)
    got = run_cuda(layout, x, None, 3, 1.0, 1.0, 1.0, True, np.float32)
    assert_all_match(got, run_cpu(layout, x, None, 3, 1.0, 1.0, 1.0, True, np.float32))


@pytest.mark.parametrize("layout", ["ncs", "nsc"])
def test_window_far_longer_than_the_channels(layout):
    """A window of 10**12 channels sums every channel, without a loop of its length."""
    x = view(layout, 2, 4, 3, 1)
    dy = view(layout, 2, 4, 3, 2)
    arguments = (10**12, 1e9, 0.75, 1.0)
    assert_all_match(run_cuda(layout, x, dy, *arguments), run_cpu(layout, x, dy, *arguments))


@pytest.mark.parametrize(("alpha", "beta"), [(0.0, 0.75), (0.5, 0.0)])
def test_gradient_without_dependence_on_the_window(alpha, beta):
    """``alpha`` or ``beta`` 0: ``d`` does not depend on ``x``, the gradient is ``dy * s``."""
    x = view("ncs", 2, 4, 3, 1)
    dy = view("ncs", 2, 4, 3, 2)
    arguments = (3, alpha, beta, 1.5)
    assert_all_match(run_cuda("ncs", x, dy, *arguments), run_cpu("ncs", x, dy, *arguments))


@pytest.mark.parametrize("layout", ["ncs", "nsc"])
def test_empty_input(layout):
    for n, c, s in ((0, 3, 4), (2, 0, 4), (2, 3, 0)):
        x = view(layout, n, c, s, 1)
        got = run_cuda(layout, x, x, 3, 0.5, 0.75, 1.0)
        assert got["y"].shape == x.shape and got["dx"].shape == x.shape
