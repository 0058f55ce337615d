"""The row-wise CUDA kernels (GroupNorm, LayerNorm, RMSNorm) against the CPU kernels on the same
inputs: both GroupNorm layouts, any strides, parameters given or not, size-0 "skip" outputs,
rows split in several pieces, large mean offsets, constant, empty and one-element rows.

Without a GPU they run on numba's CUDA simulator, which runs every thread in Python: the shapes
are tiny, and the ``small_pieces`` fixture makes the launchers split tiny channels, positions and
rows in several pieces, as they split large ones on a GPU.
"""

import numpy as np
import pytest
from numba import cuda

from numbanorm.kernels import config
from numbanorm.kernels.cpu import row_norm as cpu
from numbanorm.kernels.cuda import row_norm as gpu
from tests.oracle import deterministic

EPS = 1e-5
# The two implementations round differently (sums in another order, fused multiply-adds on
# some targets): a few ulps of the values that cancel.
TOLERANCE = {
    np.dtype(np.float32): {"rtol": 1e-5, "atol": 1e-6},
    np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-14},
}
GRADIENTS = ("dx", "dweight", "dbias")
# One-element rows compare all but dx with the CPU kernels: on hosts with FMA, LLVM may fuse
# their float64 ``dy*w - m`` and leave the product's rounding error (~1e-16 * invstd) where the
# contract, which these tests check on its own, wants exactly 0.
BUT_DX = ("y", "mean", "invstd", "dweight", "dbias")


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of 8 elements: the tiny inputs' channels, positions and rows go in several."""
    monkeypatch.setattr(gpu, "_SPLIT_ELEMENTS", 8)


def on_host(a):
    """A CPU kernel's argument for host array ``a``, and how to read it back."""
    return a, a.copy


def on_device(a, strided=False):
    """A CUDA kernel's argument for host array ``a``, and how to read it back: a device copy, or
    (``strided``) a view with a negative stride and step-2 strides into a larger device array."""
    if not strided:
        device = cuda.to_device(a)
        return device, device.copy_to_host
    index = (slice(None, None, -2),) + (slice(1, None, 2),) * (a.ndim - 1)
    base = np.zeros(tuple(2 * size for size in a.shape), a.dtype)
    base[index] = a
    device_base = cuda.to_device(base)
    # The driver copies no negative strides to the host: read the whole base back.
    return device_base[index], lambda: device_base.copy_to_host()[index]


def output(shape, dtype, wanted=True):
    """An output to compute (NaN, so that an element not written shows), or of size 0 to skip."""
    return np.full(shape if wanted else (0,) * len(shape), np.nan, dtype)


def placed_outputs(place, dtype, shape, params, stats_shape, want):
    """A forward's and backward's outputs as ``place`` gives them: ``y``, the gradients (of size
    0 unless in ``want``), and float64 ``mean`` and ``invstd``."""
    shapes = {"y": shape, "dx": shape, "dweight": (params,), "dbias": (params,)}
    out = {key: place(output(shapes[key], dtype, key == "y" or key in want)) for key in shapes}
    return out | {key: place(output(stats_shape, np.float64)) for key in ("mean", "invstd")}


def to_layout(ncs, layout):
    """An ``(N, C, S)`` array as the kernel's view: itself, or channels-last ``(N, S, C)``."""
    return ncs if layout == "ncs" else np.ascontiguousarray(ncs.swapaxes(1, 2))


def from_layout(a, layout):
    return a if layout == "ncs" else a.swapaxes(1, 2)


def run_group_norm(lib, layout, x, dy, groups, weight, bias, strided=False, want=GRADIENTS):
    """GroupNorm forward then backward by ``lib``'s kernels (``cpu`` on host arrays, ``gpu`` on
    device arrays) on ``(N, C, S)`` arrays; the gradients not in ``want`` are given size 0.
    Results as host arrays, ``y`` and ``dx`` as ``(N, C, S)``."""
    place = on_host if lib is cpu else lambda a: on_device(a, strided)
    forward = getattr(lib, f"group_norm_forward_{layout}")
    backward = getattr(lib, f"group_norm_backward_{layout}")
    n, c = x.shape[:2]
    x3, dy3 = to_layout(x, layout), to_layout(dy, layout)
    (x_, _), (dy_, _), (w_, _), (b_, _) = map(place, (x3, dy3, weight, bias))
    out = placed_outputs(place, x.dtype, x3.shape, c, (n, groups), want)
    arg = {key: value[0] for key, value in out.items()}
    forward(x_, groups, w_, b_, EPS, arg["y"], arg["mean"], arg["invstd"])
    backward(dy_, x_, groups, w_, arg["mean"], arg["invstd"], arg["dx"], arg["dweight"],
             arg["dbias"])  # fmt: skip
    got = {key: read() for key, (_, read) in out.items()}
    got["y"] = from_layout(got["y"], layout)
    if "dx" in want:
        got["dx"] = from_layout(got["dx"], layout)
    return got


def run_layer_norm(lib, x, dy, weight, bias, rms, strided=False, want=GRADIENTS):
    """LayerNorm (RMSNorm with ``rms``) forward then backward by ``lib``'s kernels on ``(R, D)``
    arrays, as ``run_group_norm``."""
    place = on_host if lib is cpu else lambda a: on_device(a, strided)
    rows, d = x.shape
    (x_, _), (dy_, _), (w_, _), (b_, _) = map(place, (x, dy, weight, bias))
    out = placed_outputs(place, x.dtype, x.shape, d, (rows,), want)
    arg = {key: value[0] for key, value in out.items()}
    lib.layer_norm_forward(x_, w_, b_, EPS, rms, arg["y"], arg["mean"], arg["invstd"])
    lib.layer_norm_backward(dy_, x_, w_, arg["mean"], arg["invstd"], rms, arg["dx"],
                            arg["dweight"], arg["dbias"])  # fmt: skip
    return {key: read() for key, (_, read) in out.items()}


def assert_matches(got, want, keys=None):
    """``got`` equals ``want`` in shape and dtype, and in value to a few ulps (NaN where NaN)."""
    for key in keys or want:
        assert got[key].dtype == want[key].dtype, key
        assert got[key].shape == want[key].shape, key
        np.testing.assert_allclose(got[key], want[key], err_msg=key, **TOLERANCE[want[key].dtype])


def group_data(dtype, n=2, c=4, s=12, seed=1, offset=0.0, affine=True):
    x = (deterministic((n, c, s), seed, np.float64) + offset).astype(dtype)
    dy = deterministic((n, c, s), seed + 1, dtype)
    weight = deterministic((c,), seed + 2, dtype, 0.5, 1.5)
    bias = deterministic((c,), seed + 3, dtype)
    if not affine:
        weight, bias = np.empty(0, dtype), np.empty(0, dtype)
    return x, dy, weight, bias


def row_data(dtype, rows=9, d=3, seed=5, offset=0.0, affine=True):
    x = (deterministic((rows, d), seed, np.float64) + offset).astype(dtype)
    dy = deterministic((rows, d), seed + 1, dtype)
    weight = deterministic((d,), seed + 2, dtype, 0.5, 1.5)
    bias = deterministic((d,), seed + 3, dtype)
    if not affine:
        weight, bias = np.empty(0, dtype), np.empty(0, dtype)
    return x, dy, weight, bias


# GroupNorm (and InstanceNorm, groups = C).


@pytest.mark.parametrize(
    ("layout", "dtype", "groups", "affine", "split"),
    [
        ("ncs", np.float64, 2, True, False),
        ("nsc", np.float64, 1, False, True),
        ("ncs", np.float32, 4, False, True),
        ("nsc", np.float32, 2, True, False),
    ],
)
def test_group_norm_matches_cpu(request, layout, dtype, groups, affine, split):
    """Every output, with and without weight and bias, channels and positions in one piece or
    (``split``) several."""
    if split:
        request.getfixturevalue("small_pieces")
    x, dy, weight, bias = group_data(dtype, affine=affine)
    got = run_group_norm(gpu, layout, x, dy, groups, weight, bias)
    assert_matches(got, run_group_norm(cpu, layout, x, dy, groups, weight, bias))


@pytest.mark.parametrize("layout", ["ncs", "nsc"])
def test_group_norm_any_strides(layout, small_pieces):
    """Inputs, parameters and outputs as views with negative and step-2 strides."""
    x, dy, weight, bias = group_data(np.float64, s=10)
    got = run_group_norm(gpu, layout, x, dy, 2, weight, bias, strided=True)
    assert_matches(got, run_group_norm(cpu, layout, x, dy, 2, weight, bias))


def test_group_norm_many_channels(small_pieces):
    """More channels than a warp (channels-last blocks cover tiles of them) in one group, whose
    partials are more than a segment's threads."""
    x, dy, weight, bias = group_data(np.float32, n=1, c=40, s=2)
    got = run_group_norm(gpu, "nsc", x, dy, 1, weight, bias)
    assert_matches(got, run_group_norm(cpu, "nsc", x, dy, 1, weight, bias))


@pytest.mark.parametrize(("layout", "keep"), [("ncs", "dx"), ("nsc", "dweight"), ("nsc", "dbias")])
def test_group_norm_size_zero_gradients_are_skipped(layout, keep):
    """The one gradient wanted is what a call computing all three gives."""
    x, dy, weight, bias = group_data(np.float32, s=5)
    got = run_group_norm(gpu, layout, x, dy, 2, weight, bias, want=(keep,))
    assert_matches(got, run_group_norm(cpu, layout, x, dy, 2, weight, bias), keys=(keep,))
    for key in set(GRADIENTS) - {keep}:
        assert got[key].size == 0, key


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["ncs", "nsc"])
def test_group_norm_large_offset_and_constant_groups(layout, dtype, small_pieces):
    """Values at 1e6 with unit spread, and groups of one value: statistics as the CPU's, and a
    constant group normalizes to exactly its bias, with finite gradients."""
    x, dy, weight, bias = group_data(dtype, s=9, offset=1e6)
    x[0, 0:2] = 0.3
    x[1, 2:4] = 1e6 + 0.5
    got = run_group_norm(gpu, layout, x, dy, 2, weight, bias)
    assert_matches(got, run_group_norm(cpu, layout, x, dy, 2, weight, bias))
    for key, value in got.items():
        assert np.isfinite(value).all(), key
    for i, g in ((0, 0), (1, 1)):
        assert got["mean"][i, g] == np.float64(x[i, 2 * g, 0])
        assert got["invstd"][i, g] == 1.0 / np.sqrt(EPS)
        for c in (2 * g, 2 * g + 1):
            np.testing.assert_array_equal(got["y"][i, c], np.full(9, bias[c]))


@pytest.mark.parametrize(("layout", "dtype"), [("ncs", np.float64), ("nsc", np.float32)])
def test_instance_norm_one_element_rows(layout, dtype):
    """InstanceNorm (groups = C) of a single position: every row has one element, so ``y`` is
    exactly the bias and the input gradient exactly 0."""
    x, dy, weight, bias = group_data(dtype, s=1)
    got = run_group_norm(gpu, layout, x, dy, 4, weight, bias)
    assert_matches(got, run_group_norm(cpu, layout, x, dy, 4, weight, bias), keys=BUT_DX)
    np.testing.assert_array_equal(got["y"], np.broadcast_to(bias[:, None], x.shape))
    np.testing.assert_array_equal(got["dx"], np.zeros_like(x))


@pytest.mark.parametrize("layout", ["ncs", "nsc"])
def test_group_norm_empty_rows(layout):
    """Rows with no elements (S = 0): mean 0 and invstd NaN as in torch, so the weight's
    gradient is NaN and the bias's 0."""
    x = np.empty((2, 4, 0))
    weight, bias = np.ones(4), np.zeros(4)
    got = run_group_norm(gpu, layout, x, x, 2, weight, bias)
    np.testing.assert_array_equal(got["mean"], np.zeros((2, 2)))
    np.testing.assert_array_equal(got["invstd"], np.full((2, 2), np.nan))
    np.testing.assert_array_equal(got["dweight"], np.full(4, np.nan))
    np.testing.assert_array_equal(got["dbias"], np.zeros(4))


def test_same_bits_every_run(small_pieces):
    """No atomics: partials split and added up in a fixed order give the same bits each run."""
    x, dy, weight, bias = group_data(np.float32, offset=3.0)
    first = run_group_norm(gpu, "nsc", x, dy, 2, weight, bias)
    again = run_group_norm(gpu, "nsc", x, dy, 2, weight, bias)
    for key in first:
        np.testing.assert_array_equal(again[key], first[key], err_msg=key)


# LayerNorm and RMSNorm.


@pytest.mark.parametrize(
    ("rms", "dtype", "affine"),
    [(False, np.float32, True), (True, np.float64, True), (False, np.float64, False),
     (True, np.float32, False)],
)  # fmt: skip
def test_layer_norm_matches_cpu(rms, dtype, affine, small_pieces):
    """Every output, with and without weight and bias; several rows per block and rows split in
    several chunks for dweight and dbias."""
    x, dy, weight, bias = row_data(dtype, affine=affine)
    got = run_layer_norm(gpu, x, dy, weight, bias, rms)
    assert_matches(got, run_layer_norm(cpu, x, dy, weight, bias, rms))


def test_layer_norm_long_rows():
    """Rows longer than a warp's share (several warps per row) and wider than a block."""
    x, dy, weight, bias = row_data(np.float64, rows=2, d=config.THREADS_PER_BLOCK + 4)
    got = run_layer_norm(gpu, x, dy, weight, bias, False)
    assert_matches(got, run_layer_norm(cpu, x, dy, weight, bias, False))


@pytest.mark.parametrize("rms", [False, True])
def test_layer_norm_any_strides(rms):
    """Inputs, parameters and outputs as views with negative and step-2 strides."""
    x, dy, weight, bias = row_data(np.float32)
    got = run_layer_norm(gpu, x, dy, weight, bias, rms, strided=True)
    assert_matches(got, run_layer_norm(cpu, x, dy, weight, bias, rms))


@pytest.mark.parametrize("keep", GRADIENTS)
def test_layer_norm_size_zero_gradients_are_skipped(keep):
    """The one gradient wanted is what a call computing all three gives."""
    x, dy, weight, bias = row_data(np.float64, rows=3)
    got = run_layer_norm(gpu, x, dy, weight, bias, False, want=(keep,))
    assert_matches(got, run_layer_norm(cpu, x, dy, weight, bias, False), keys=(keep,))
    for key in set(GRADIENTS) - {keep}:
        assert got[key].size == 0, key


def test_layer_norm_forward_without_y():
    """A ``y`` of size 0 is not computed; the statistics are."""
    x, _, weight, bias = row_data(np.float32, rows=3)
    mean, invstd = cuda.device_array(3), cuda.device_array(3)
    gpu.layer_norm_forward(cuda.to_device(x), cuda.to_device(weight), cuda.to_device(bias), EPS,
                           False, cuda.device_array((0, 0), np.float32), mean, invstd)  # fmt: skip
    want = run_layer_norm(cpu, x, x, weight, bias, False)
    assert_matches({"mean": mean.copy_to_host(), "invstd": invstd.copy_to_host()}, want,
                   keys=("mean", "invstd"))  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_large_offset_and_constant_rows(dtype):
    """Values at 1e6 with unit spread, and rows of one value: statistics as the CPU's, and a
    constant row normalizes to exactly its bias (LayerNorm), with finite gradients."""
    x, dy, weight, bias = row_data(dtype, rows=4, d=5, offset=1e6)
    x[1] = 0.3
    x[2] = 1e6 + 0.5
    for rms in (True, False):
        got = run_layer_norm(gpu, x, dy, weight, bias, rms)
        assert_matches(got, run_layer_norm(cpu, x, dy, weight, bias, rms))
        for key, value in got.items():
            assert np.isfinite(value).all(), key
    for r in (1, 2):
        assert got["mean"][r] == np.float64(x[r, 0])
        assert got["invstd"][r] == 1.0 / np.sqrt(EPS)
        np.testing.assert_array_equal(got["y"][r], bias)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_one_element_rows(dtype):
    """Rows of one element: ``y`` is exactly the bias and the input gradient exactly 0."""
    x, dy, weight, bias = row_data(dtype, rows=3, d=1)
    got = run_layer_norm(gpu, x, dy, weight, bias, False)
    assert_matches(got, run_layer_norm(cpu, x, dy, weight, bias, False), keys=BUT_DX)
    np.testing.assert_array_equal(got["y"], np.broadcast_to(bias, x.shape))
    np.testing.assert_array_equal(got["dx"], np.zeros_like(x))


@pytest.mark.parametrize(("rows", "d"), [(3, 0), (0, 3)])
def test_layer_norm_empty(rows, d):
    """Empty rows have mean 0 and invstd NaN; no rows give zero weight and bias gradients."""
    x, dy, weight, bias = row_data(np.float64, rows=rows, d=d)
    got = run_layer_norm(gpu, x, dy, weight, bias, False)
    assert_matches(got, run_layer_norm(cpu, x, dy, weight, bias, False))
    np.testing.assert_array_equal(got["mean"], np.zeros(rows))
    np.testing.assert_array_equal(got["invstd"], np.full(rows, np.nan))
    np.testing.assert_array_equal(got["dweight"], np.zeros(d))
    np.testing.assert_array_equal(got["dbias"], np.zeros(d))
