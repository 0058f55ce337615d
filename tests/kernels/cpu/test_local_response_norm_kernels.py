"""The LocalResponseNorm CPU kernels as public API: called from a user's own ``@njit`` function,
in both layouts and with any strides, against torch (live, and the golden file
``local_response_norm_kernels``); serial twins; and the numerics: the vectorized power against
``pow``, window sums as accurate as direct sums over a wide dynamic range, exact zeros, int64
input's floored mean, windows far longer than the channel axis."""

import numba
import numpy as np
import pytest

from numbanorm.kernels import cpu
from numbanorm.kernels.cpu import (
    local_response_norm_backward_ncs,
    local_response_norm_backward_nsc,
    local_response_norm_ncs,
    local_response_norm_nsc,
)
from numbanorm.kernels.cpu.local_response_norm import (
    _NEAR,
    _backward_block,
    _binomial_power,
    _forward_block,
    _forward_columns,
    _lane_buffers,
    _law,
    _ncs_block,
    _near_center,
    _negative_power,
)
from tests.oracle import Cases, deterministic
from tests.tolerances import assert_close

SHAPE = (3, 6, 2, 5)  # (N, C, H, W)
SIZE, ALPHA, BETA, K = 3, 0.5, 0.75, 1.5
KERNELS = {
    "ncs": (local_response_norm_ncs, local_response_norm_backward_ncs),
    "nsc": (local_response_norm_nsc, local_response_norm_backward_nsc),
}


# A user's own @njit code: forward and backward of one layer.
@numba.njit
def user_step_ncs(x, dy, y, dx):
    local_response_norm_ncs(x, 3, 0.5, 0.75, 1.5, False, y)
    local_response_norm_backward_ncs(dy, x, 3, 0.5, 0.75, 1.5, dx)


@numba.njit
def user_step_nsc(x, dy, y, dx):
    local_response_norm_nsc(x, 3, 0.5, 0.75, 1.5, False, y)
    local_response_norm_backward_nsc(dy, x, 3, 0.5, 0.75, 1.5, dx)


USER_STEPS = {"ncs": user_step_ncs, "nsc": user_step_nsc}


def to_layout(a, layout):
    """An (N, C, *spatial) array as the kernels' 3-D view of it: (N, C, S) or (N, S, C)."""
    n, c = a.shape[:2]
    if layout == "ncs":
        return a.reshape(n, c, -1)
    return np.moveaxis(a, 1, -1).reshape(n, -1, c)


def from_layout(a3, layout, shape):
    n, c = shape[:2]
    if layout == "ncs":
        return a3.reshape(shape)
    return np.moveaxis(a3.reshape(n, *shape[2:], c), -1, 1)


def strided(a):
    """The same values as ``a``, in a view with a negative stride and step-2 strides."""
    base = np.zeros(tuple(2 * size for size in a.shape), a.dtype)
    view = base[(slice(None, None, -2),) + (slice(1, None, 2),) * (a.ndim - 1)]
    view[...] = a
    return view


def kernel_case(lib, layout, dtype, any_strides):
    x = deterministic(SHAPE, 1, dtype)
    dy = deterministic(SHAPE, 2, dtype)
    if lib.name == "torch":
        xt = lib.torch.from_numpy(x).requires_grad_()
        y = lib.F.local_response_norm(xt, SIZE, ALPHA, BETA, K)
        y.backward(lib.torch.from_numpy(dy))
        return {"y": lib.numpy(y), "dx": lib.numpy(xt.grad)}
    x3, dy3 = to_layout(x, layout), to_layout(dy, layout)
    outs = [np.zeros_like(x3), np.zeros_like(x3)]
    if any_strides:
        x3, dy3 = strided(x3), strided(dy3)
        outs = [strided(o) for o in outs]
    USER_STEPS[layout](x3, dy3, *outs)
    return {
        key: from_layout(np.array(o), layout, SHAPE)
        for key, o in zip(("y", "dx"), outs, strict=True)
    }


CASES = Cases("local_response_norm_kernels")
for _layout in KERNELS:
    for _dtype, _strides in (("float32", False), ("float64", False), ("float32", True)):
        CASES.add(
            f"{_layout}-{_dtype}{'-any-strides' if _strides else ''}",
            lambda lib, a=(_layout, _dtype, _strides): kernel_case(lib, *a),
        )


@pytest.mark.parametrize("name", CASES.names())
def test_user_njit_function_calls_kernels(name):
    CASES.check(name)


def reference(x3, layout, size, alpha, beta, k):
    """y in float64 on an (N, C, S) or (N, S, C) view, each window summed directly."""
    x = np.asarray(x3, np.float64)
    x = x if layout == "ncs" else x.swapaxes(1, 2)
    channels = x.shape[1]
    y = np.empty_like(x)
    for c in range(channels):
        window = x[:, max(0, c - size // 2) : c + (size - 1) // 2 + 1]
        y[:, c] = x[:, c] / (k + alpha / size * (window**2).sum(axis=1)) ** beta
    return y if layout == "ncs" else y.swapaxes(1, 2)


def _view(layout, n=2, c=9, s=70, seed=1, dtype=np.float64):
    return deterministic((n, c, s) if layout == "ncs" else (n, s, c), seed, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", [n for n in cpu.__all__ if n.startswith("local_response_norm")])
def test_serial_twin_matches_parallel_kernel(name, dtype):
    kernel = getattr(cpu, name)
    layout = name.rsplit("_", 1)[1]
    x = _view(layout, dtype=dtype)
    if "backward" in name:
        arguments = (_view(layout, seed=2, dtype=dtype), x, 4, 0.5, 0.75, 1.0)
    else:
        arguments = (x, 4, 0.5, 0.75, 1.0, False)
    parallel, serial = np.empty_like(x), np.empty_like(x)
    kernel(*arguments, parallel)
    kernel.serial(*arguments, serial)
    np.testing.assert_array_equal(serial, parallel)


POWER_INPUTS = np.concatenate(
    [
        np.geomspace(1e-300, 1e300, 20001),
        [0.0, -0.0, 5e-324, 1e-310, -1.0, -2.5, np.inf, -np.inf, np.nan, 1.0, 2.0],
    ]
)
POWER_BETAS = (0.75, 0.5, 1.0, 2.0, -1.3, 0.0, 1e-3, 3.0, 40.0)


def _power_errors(beta, precise):
    """The vectorized power's relative errors where it computes, with ``|beta * log(d)|``; and
    whether it equals ``pow`` exactly where it hands over (0, subnormals, negatives, inf, NaN,
    overflow)."""
    d = POWER_INPUTS
    out, mantissa, exponent = np.empty_like(d), np.empty_like(d), np.empty_like(d)
    _negative_power(d, beta, precise, out, mantissa, exponent)
    with np.errstate(all="ignore"):
        want = d**-beta
        log_size = np.abs(beta * np.log(np.abs(d)))
    normal = (d >= 2.2250738585072014e-308) & (d < np.inf) & np.isfinite(want) & (want > 0)
    error = np.abs(out[normal] - want[normal]) / want[normal]
    np.testing.assert_array_equal(out[~normal], want[~normal], f"beta={beta}")
    return error, log_size[normal]


@pytest.mark.parametrize("beta", POWER_BETAS)
def test_negative_power_matches_pow(beta):
    """The vectorized power as accurate as float64 allows without double-double arithmetic (that
    ``pow`` has): ``y = -beta * log(d)`` carries up to 2 ulps of relative error (the division
    ``(m - 1)/(m + 1)``, the series, its doubling and the product by ``beta``, half an ulp each),
    and each ulp of ``y`` costs ``|y|`` ulps of ``exp(y)``."""
    error, log_size = _power_errors(beta, precise=True)
    assert np.all(error <= (4.0 + 4.0 * log_size) * 2.0**-53), f"beta={beta}: {error.max()}"


@pytest.mark.parametrize("beta", POWER_BETAS)
def test_negative_power_for_float32_results(beta):
    """The shorter series for float32 results: within 2**-30 of ``pow`` on every input, 64 times
    finer than float32's half ulp."""
    error, _ = _power_errors(beta, precise=False)
    assert np.all(error <= 2.0**-30), f"beta={beta}: {error.max()}"


NEAR_CENTERS = (1.0, 2.0, 0.37, 1e5, 1e-200)
NEAR_BETAS = (0.75, 0.5, 1.0, -1.0, 0.0, 1e-3, -0.3)


def _near(center):
    """Bases across the binomial series' whole range around ``center``."""
    return center * (1.0 + np.linspace(-_NEAR, _NEAR, 20001) * (1.0 - 1e-9))


@pytest.mark.parametrize("precise", [True, False])
@pytest.mark.parametrize("center", NEAR_CENTERS)
def test_binomial_power_matches_pow(center, precise):
    """Near ``k`` the binomial series: within 8 half-ulps of ``pow`` for a float64 result (the
    series' roundings, ``k**-beta`` and the product by it), within 2**-30 for a float32 one."""
    d = _near(center)
    assert _near_center(d, 0.0, 1.0, center, 0.75)
    for beta in NEAR_BETAS:
        out = np.empty_like(d)
        _binomial_power(d, _law(1, 0.0, beta, center), precise, out)
        want = d**-beta
        error = np.abs(out - want) / want
        bound = 8.0 * 2.0**-53 if precise else 2.0**-30
        assert np.all(error <= bound), f"beta={beta}: {error.max()}"


def test_near_center_bounds_the_binomial_series():
    """The series takes only bases within ``k * 2**-6`` of ``k > 0`` and ``|beta| <= 1`` (every
    coefficient at most 1); NaN, a base further out, ``k <= 0`` or a larger ``|beta|`` go to the
    general power."""
    d = _near(2.0)
    assert _near_center(d, 0.0, 1.0, 2.0, 1.0) and _near_center(d, 0.0, 1.0, 2.0, -1.0)
    assert not _near_center(d, 0.0, 1.0, 2.0, 1.5)
    assert not _near_center(d, 0.0, 1.0, 2.0, -1.01)
    for outlier in (np.nan, 2.0 * (1.0 + 1.01 * _NEAR), 2.0 * (1.0 - 1.01 * _NEAR), np.inf):
        assert not _near_center(np.append(d, outlier), 0.0, 1.0, 2.0, 0.75), outlier
    assert not _near_center(np.zeros(3), 0.0, 1.0, 0.0, 0.75)
    assert not _near_center(np.full(3, -1.0), 0.0, 1.0, -1.0, 0.75)


def test_near_center_of_window_sums():
    """The forward tests its window sums ``v`` as the bases ``k + slope*v`` they stand for,
    without forming them: a sum whose base leaves ``k * (1 + 2**-6)`` (or a NaN one) fails."""
    k, slope = 2.0, 1e-4 / 5
    v = np.linspace(0.0, k * _NEAR / slope * (1.0 - 1e-9), 101)
    assert _near_center(v, k, slope, k, 0.75)
    for outlier in (k * _NEAR / slope * 1.01, np.nan, np.inf):
        assert not _near_center(np.append(v, outlier), k, slope, k, 0.75), outlier


@pytest.mark.parametrize("size", [3, 11])  # summed directly, and by blocks
@pytest.mark.parametrize("layout", KERNELS)
def test_window_sums_as_accurate_as_direct_sums(layout, size):
    """Squares spanning 1e-8 to 1e8 along the channel axis with k = 0: every window's sum is
    accurate to its own size (a running sum would carry the error of the largest square), and
    a window of zeros after large values sums to exactly 0 (torch's 0/0 = NaN)."""
    magnitudes = np.array([1e4, 1e-4, 1e-4, 1e-4, 1.0, 1e-4, 1e-4] + [0.0] * 13 + [3e3, 2e-4, 1e4])
    x = _view(layout, c=magnitudes.size, s=5, dtype=np.float64)
    x *= magnitudes[:, None] if layout == "ncs" else magnitudes
    x32 = x.astype(np.float32)
    forward, _ = KERNELS[layout]
    y = np.empty_like(x32)
    forward(x32, size, 1.0, 0.75, 0.0, False, y)
    with np.errstate(all="ignore"):
        want = reference(x32, layout, size, 1.0, 0.75, 0.0)
    assert_close(y, want.astype(np.float32), "y")
    # Channel 13's window holds only the zeros of channels 7 to 19.
    channel = (slice(None), 13) if layout == "ncs" else (slice(None), slice(None), 13)
    assert np.isnan(y[channel]).all()


@pytest.mark.parametrize("channels", [9, 256])  # blocks of 256 and of 64 positions
def test_ncs_blocks_split_positions_by_the_channel_count(channels):
    """The ncs kernels take up to 256 positions a block, fewer for many channels: positions in
    two whole blocks and a partial one agree with the reference (forward) and with the
    channels-last kernel, which takes 64 positions a block (backward)."""
    s = 2 * _ncs_block(channels) + 7
    x = _view("ncs", c=channels, s=s)
    dy = _view("ncs", c=channels, s=s, seed=2)
    y, dx, dx_nsc = np.empty_like(x), np.empty_like(x), np.empty_like(x.swapaxes(1, 2))
    local_response_norm_ncs(x, SIZE, ALPHA, BETA, K, False, y)
    assert_close(y, reference(x, "ncs", SIZE, ALPHA, BETA, K), "y")
    local_response_norm_backward_ncs(dy, x, SIZE, ALPHA, BETA, K, dx)
    channels_last = [np.ascontiguousarray(a.swapaxes(1, 2)) for a in (dy, x)]
    local_response_norm_backward_nsc(*channels_last, SIZE, ALPHA, BETA, K, dx_nsc)
    assert_close(dx, dx_nsc.swapaxes(1, 2), "dx")


@pytest.mark.parametrize("layout", KERNELS)
def test_int64_input_floors_the_mean(layout):
    x = _view(layout, c=5, s=4) * 10
    x = x.astype(np.int64)
    forward, _ = KERNELS[layout]
    y = np.empty(x.shape, np.float32)
    forward(x, 3, 1.0, 1.0, 1.0, True, y)
    x64 = x.astype(np.float64)
    view = x64 if layout == "ncs" else x64.swapaxes(1, 2)
    d = np.empty_like(view)
    for c in range(view.shape[1]):
        window = view[:, max(0, c - 1) : c + 2]
        d[:, c] = 1.0 + np.floor((window**2).sum(axis=1) / 3)
    want = view / d
    assert_close(y, (want if layout == "ncs" else want.swapaxes(1, 2)).astype(np.float32), "y")


@pytest.mark.parametrize("layout", KERNELS)
def test_window_far_longer_than_the_channels(layout):
    """A window of 10**12 channels sums every channel, without a buffer of its length."""
    x = _view(layout, c=4, s=3)
    forward, backward = KERNELS[layout]
    size = 10**12
    y = np.empty_like(x)
    forward(x, size, 1e9, 0.75, 1.0, False, y)
    assert_close(y, reference(x, layout, size, 1e9, 0.75, 1.0), "y")
    dx_long, dx_covering = np.empty_like(x), np.empty_like(x)
    backward(x, x, size, 1e9, 0.75, 1.0, dx_long)
    # Windows of 2C-1 channels already hold every channel; with alpha scaled alike, the same.
    backward(x, x, 7, 1e9 * 7 / size, 0.75, 1.0, dx_covering)
    assert_close(dx_long, dx_covering, "dx")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_channels_last_rows_match_the_blocks_bit_for_bit(dtype, size):
    """The channels-last forward runs windows of up to 8 channels along each row (no transposed
    block) when the binomial series applies: the same bits as the ncs kernel's column walk."""
    x = np.random.default_rng(size).standard_normal((2, 33, 70)).astype(dtype)  # (N, C, S)
    blocks = np.empty_like(x)
    local_response_norm_ncs(x, size, 1e-4, 0.75, 1.0, False, blocks)
    x_nsc = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    rows = np.empty_like(x_nsc)
    local_response_norm_nsc(x_nsc, size, 1e-4, 0.75, 1.0, False, rows)
    np.testing.assert_array_equal(np.moveaxis(rows, -1, 1), blocks)


@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_channels_last_rows_fall_back_to_the_blocks(size):
    """A block of 64 channels-last rows that leaves the binomial series' range (a square far
    from the others) is computed again as a transposed block: its rows have the block's bits,
    those of the other blocks the ncs column walk's without that square."""
    x = np.random.default_rng(size).standard_normal((2, 33, 70))  # (N, C, S)
    walk = np.empty_like(x)  # where the series applies everywhere
    local_response_norm_ncs(x, size, 1e-4, 0.75, 1.0, False, walk)
    x[1, 7, 9] = 1e4  # flat row 79 of the channels-last view: the block of rows 64 .. 127
    x_nsc = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    rows = np.empty_like(x_nsc)
    local_response_norm_nsc(x_nsc, size, 1e-4, 0.75, 1.0, False, rows)
    flat, x_flat = rows.reshape(140, 33), x_nsc.reshape(140, 33)
    block = np.ascontiguousarray(x_flat[64:128].T)
    _forward_block(
        block, _lane_buffers(33, 64, size), size, _law(size, 1e-4, 0.75, 1.0), False, True
    )
    np.testing.assert_array_equal(flat[64:128], block.T)
    expected = np.moveaxis(walk, 1, -1).reshape(140, 33)
    np.testing.assert_array_equal(flat[:64], expected[:64])
    np.testing.assert_array_equal(flat[128:], expected[128:])


@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_ncs_columns_match_the_blocks_bit_for_bit(size):
    """The contiguous forward runs windows of up to 8 channels along the channel rows of its
    columns (no copied block) when the binomial series applies: in float64, the same bits as the
    blocks. Where it does not (a square far from the others), it says so, and the kernel computes
    the task's columns again as blocks (three here, the first of them off the series)."""
    rng = np.random.default_rng(size)
    x = rng.standard_normal((2, 33, 700))
    x[1, 7, 9] = 1e4  # d leaves the series' range in sample 1's windows around channel 7
    law = _law(size, 1e-4, 0.75, 1.0)
    ring = np.empty(9 * 700)
    columns = np.empty_like(x)
    applied = [_forward_columns(x, i, 0, 700, size, law, True, ring, columns) for i in (0, 1)]
    assert applied == [True, False]
    kernel = np.empty_like(x)
    local_response_norm_ncs(x, size, 1e-4, 0.75, 1.0, False, kernel)
    width = _ncs_block(33)
    buffers = _lane_buffers(33, width, size)
    for i in (0, 1):
        for start in range(0, 700, width):
            block = x[i, :, start : start + width].copy()
            _forward_block(block, buffers, size, law, False, True)
            np.testing.assert_array_equal(kernel[i, :, start : start + width], block)
    np.testing.assert_array_equal(columns[0], kernel[0])


@pytest.mark.parametrize("layout", ["ncs", "nsc"])
@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_float32_direct_forwards_within_two_ulps(layout, size):
    """The direct forwards (windows of up to 8 channels, binomial series) compute a float32
    output in float32: within 2 float32 ulps of the float64 result. Where the series does not
    apply (inputs 10 times larger here), the float64 blocks round it once: within half an ulp."""
    kernel = KERNELS[layout][0]
    for scale, ulps in ((1.0, 2.0), (10.0, 0.5)):
        x = (_view(layout, 2, 33, 700, size) * scale).astype(np.float32)
        y = np.empty_like(x)
        kernel(x, size, 1e-4, 0.75, 1.0, False, y)
        want = reference(x, layout, size, 1e-4, 0.75, 1.0)
        spacing = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
        assert np.max(np.abs(y - want) / spacing) <= ulps, (scale, layout, size)


def _backward_blocks(dy, x, size, alpha):
    """dx of (N, C, S) float64 arrays by the blocks alone, in the kernel's blocks of columns."""
    n, channels, s = x.shape
    width = _ncs_block(channels)
    buffers = _lane_buffers(channels, width, size)
    law = _law(size, alpha, 0.75, 1.0)
    dx = np.empty_like(x)
    for i in range(n):
        for start in range(0, s, width):
            xb = x[i, :, start : start + width].copy()
            gb = dy[i, :, start : start + width].copy()
            _backward_block(gb, xb, buffers, size, law, True)
            dx[i, :, start : start + width] = gb
    return dx


@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_ncs_backward_columns_match_the_blocks(size):
    """The contiguous backward walks the channel rows of its columns (squares, terms and
    ``g*s`` in rings of rows) when the binomial series applies: within float64 rounding of the
    blocks, and within float32's tolerance of them for float32. A task that leaves the series'
    range (sample 1 here) is computed again as blocks: their bits."""
    rng = np.random.default_rng(size)
    x, dy = rng.standard_normal((2, 2, 33, 700))
    x[1, 7, 9] = 1e4
    blocks = _backward_blocks(dy, x, size, 1e-4)
    dx = np.empty_like(x)
    local_response_norm_backward_ncs(dy, x, size, 1e-4, 0.75, 1.0, dx)
    np.testing.assert_array_equal(dx[1], blocks[1])
    np.testing.assert_allclose(dx[0], blocks[0], rtol=1e-14, atol=1e-15)
    x32, dy32 = x[:1].astype(np.float32), dy[:1].astype(np.float32)
    dx32 = np.empty_like(x32)
    local_response_norm_backward_ncs(dy32, x32, size, 1e-4, 0.75, 1.0, dx32)
    want = _backward_blocks(dy32.astype(np.float64), x32.astype(np.float64), size, 1e-4)
    assert_close(dx32, want.astype(np.float32), "dx float32")


@pytest.mark.parametrize("layout", ["ncs", "nsc"])
def test_backward_without_alpha_is_exactly_g_times_s(layout):
    """With alpha 0, d is k whatever x: torch's gradient is exactly ``dy * k**-beta``, an inf in
    ``dy`` only where it is (no ``0 * inf`` from the window's terms)."""
    x = _view(layout, 2, 9, 70, 1)
    dy = _view(layout, 2, 9, 70, 2)
    dy.reshape(-1)[100] = np.inf
    dx = np.empty_like(x)
    KERNELS[layout][1](dy, x, 5, 0.0, 0.75, 2.0, dx)
    np.testing.assert_array_equal(dx, dy * 2.0**-0.75)


@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_channels_last_backward_rows_match_the_blocks(size):
    """The channels-last backward runs along each row (no transposed blocks) when the binomial
    series applies: within float64 rounding of the blocks, and within float32's tolerance of
    them for float32. A block of 64 rows that leaves the series' range is computed again as a
    transposed block: its bits."""
    rng = np.random.default_rng(size)
    x, dy = rng.standard_normal((2, 140, 33))  # 140 rows of (N*S, C)
    x[79, 7] = 1e4  # the block of rows 64 .. 127
    law = _law(size, 1e-4, 0.75, 1.0)
    buffers = _lane_buffers(33, 64, size)
    blocks = np.empty_like(x)
    for start in range(0, 140, 64):
        xb = np.ascontiguousarray(x[start : start + 64].T)
        gb = np.ascontiguousarray(dy[start : start + 64].T)
        _backward_block(gb, xb, buffers, size, law, True)
        blocks[start : start + 64] = gb.T
    dx = np.empty_like(x)
    local_response_norm_backward_nsc(dy[None], x[None], size, 1e-4, 0.75, 1.0, dx[None])
    np.testing.assert_array_equal(dx[64:128], blocks[64:128])
    np.testing.assert_allclose(dx, blocks, rtol=1e-14, atol=1e-15)
    x32, dy32 = x.astype(np.float32), dy.astype(np.float32)
    x32[79, 7] = 0.0
    dx32 = np.empty_like(x32)
    local_response_norm_backward_nsc(dy32[None], x32[None], size, 1e-4, 0.75, 1.0, dx32[None])
    want = np.empty_like(x)
    for start in range(0, 140, 64):
        xb = np.ascontiguousarray(x32[start : start + 64].T, np.float64)
        gb = np.ascontiguousarray(dy32[start : start + 64].T, np.float64)
        _backward_block(gb, xb, buffers, size, law, True)
        want[start : start + 64] = gb.T
    assert_close(dx32, want.astype(np.float32), "dx float32")
