"""The row-wise CPU kernels (GroupNorm, LayerNorm, RMSNorm) against a float64 numpy reference
computed from the same input values: both GroupNorm layouts, any strides, parameters given or
not, size-0 "skip" arguments, large mean offsets, constant rows, results that do not depend on
the thread count, serial twins, and a call from a user's own ``@njit`` function."""

import numba
import numpy as np
import pytest

from numbanorm.kernels.cpu import (
    group_norm_backward_ncs,
    group_norm_backward_nsc,
    group_norm_forward_ncs,
    group_norm_forward_nsc,
)
from tests.oracle import deterministic
from tests.tolerances import assert_close

EPS = 1e-5
GROUP_NORM = {
    "ncs": (group_norm_forward_ncs, group_norm_backward_ncs),
    "nsc": (group_norm_forward_nsc, group_norm_backward_nsc),
}


def strided(a):
    """The same values as ``a``, in a view with a negative stride and step-2 strides."""
    base = np.zeros(tuple(2 * size for size in a.shape), a.dtype)
    view = base[(slice(None, None, -2),) + (slice(1, None, 2),) * (a.ndim - 1)]
    view[...] = a
    return view


def reference_rows(x, dy, weight, bias, eps, rms=False):
    """A float64 forward and backward of rows ``x[..., :]`` (two-pass statistics), with
    ``weight``/``bias`` broadcast against ``x``: y, mean, invstd, dx, and the per-element
    products ``dy * xhat`` and ``dy`` whose sums are the parameters' gradients."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    count = x.shape[-1]
    mean = np.zeros(x.shape[:-1]) if rms else x.mean(axis=-1)
    centered = x - mean[..., None]
    var = (centered**2).mean(axis=-1)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = centered * invstd[..., None]
    y = xhat * weight + bias
    g = dy * weight
    dx = g - xhat * (g * xhat).mean(axis=-1, keepdims=True)
    if not rms:
        dx -= g.mean(axis=-1, keepdims=True)
    dx *= invstd[..., None]
    assert count > 0
    return {"y": y, "mean": mean, "invstd": invstd, "dx": dx, "dyxhat": dy * xhat, "dy": dy}


def reference_group_norm(x, dy, groups, weight, bias, eps=EPS):
    """The float64 reference on ``(N, C, S)`` arrays: y and dx ``(N, C, S)``, mean and invstd
    ``(N, groups)``, dweight and dbias ``(C,)``."""
    n, c, s = x.shape
    w = np.ones((c, 1)) if weight.size == 0 else np.asarray(weight, np.float64)[:, None]
    b = np.zeros((c, 1)) if bias.size == 0 else np.asarray(bias, np.float64)[:, None]
    w = np.broadcast_to(w, (c, s)).reshape(groups, -1)
    b = np.broadcast_to(b, (c, s)).reshape(groups, -1)
    rows = reference_rows(x.reshape(n, groups, -1), dy.reshape(n, groups, -1), w, b, eps)
    return {
        "y": rows["y"].reshape(n, c, s),
        "mean": rows["mean"],
        "invstd": rows["invstd"],
        "dx": rows["dx"].reshape(n, c, s),
        "dweight": rows["dyxhat"].reshape(n, c, s).sum(axis=(0, 2)),
        "dbias": rows["dy"].reshape(n, c, s).sum(axis=(0, 2)),
    }


def to_layout(ncs, layout):
    """An ``(N, C, S)`` array as the kernel's view: itself, or a channels-last ``(N, S, C)``."""
    return ncs if layout == "ncs" else np.ascontiguousarray(ncs.swapaxes(1, 2))


def from_layout(a3, layout):
    return a3 if layout == "ncs" else a3.swapaxes(1, 2)


def run_group_norm(layout, x, dy, groups, weight, bias, eps=EPS, kernels=None):
    """Forward and backward by the kernels on ``(N, C, S)`` arrays, every output computed;
    outputs as ``(N, C, S)`` arrays."""
    forward, backward = kernels or GROUP_NORM[layout]
    x3, dy3 = to_layout(x, layout), to_layout(dy, layout)
    n, c = x.shape[:2]
    out = {"y": np.empty_like(x3), "mean": np.empty((n, groups)), "invstd": np.empty((n, groups))}
    forward(x3, groups, weight, bias, eps, out["y"], out["mean"], out["invstd"])
    dtype = x.dtype
    out |= {"dx": np.empty_like(x3), "dweight": np.empty(c, dtype), "dbias": np.empty(c, dtype)}
    backward(dy3, x3, groups, weight, out["mean"], out["invstd"], out["dx"], out["dweight"],
             out["dbias"])  # fmt: skip
    out["y"], out["dx"] = from_layout(out["y"], layout), from_layout(out["dx"], layout)
    return out


def group_data(dtype, n=3, c=6, s=10, seed=1, offset=0.0):
    x = (deterministic((n, c, s), seed, np.float64) + offset).astype(dtype)
    dy = deterministic((n, c, s), seed + 1, dtype)
    weight = deterministic((c,), seed + 2, dtype, 0.5, 1.5)
    bias = deterministic((c,), seed + 3, dtype)
    return x, dy, weight, bias


def check_against(got, want, dtype, keys=None):
    for key in keys or want:
        if key in ("mean", "invstd"):
            assert_close(got[key], want[key].astype(got[key].dtype), key)
        else:
            assert_close(got[key], want[key].astype(dtype), key)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups", [1, 2, 3, 6])
@pytest.mark.parametrize("layout", GROUP_NORM)
def test_group_norm_against_float64_reference(layout, groups, dtype, affine):
    x, dy, weight, bias = group_data(dtype)
    if not affine:
        weight, bias = np.empty(0, dtype), np.empty(0, dtype)
    got = run_group_norm(layout, x, dy, groups, weight, bias)
    check_against(got, reference_group_norm(x, dy, groups, weight, bias), dtype)


@pytest.mark.parametrize("layout", GROUP_NORM)
def test_group_norm_any_strides(layout):
    """Kernels on views with negative and step-2 strides compute what they do on contiguous
    arrays."""
    x, dy, weight, bias = group_data(np.float64, n=2, c=4, s=5)
    forward, backward = GROUP_NORM[layout]
    x3, dy3 = to_layout(x, layout), to_layout(dy, layout)
    outs = [np.zeros_like(x3), np.zeros((2, 2)), np.zeros((2, 2))]
    forward(x3, 2, weight, bias, EPS, *outs)
    grads = [np.zeros_like(x3), np.zeros(4), np.zeros(4)]
    backward(dy3, x3, 2, weight, outs[1], outs[2], *grads)
    s_outs = [strided(o) for o in outs]
    forward(strided(x3), 2, strided(weight), strided(bias), EPS, *s_outs)
    s_grads = [strided(g) for g in grads]
    backward(strided(dy3), strided(x3), 2, strided(weight), s_outs[1], s_outs[2], *s_grads)
    for got, want in zip(s_outs + s_grads, outs + grads, strict=True):
        assert_close(got, want)


@pytest.mark.parametrize("layout", GROUP_NORM)
def test_group_norm_size_zero_outputs_are_skipped(layout):
    """``dx``, ``dweight`` and ``dbias`` of size 0 are not needed; what is computed is what a
    call with every output computes."""
    x, dy, weight, bias = group_data(np.float64)
    full = run_group_norm(layout, x, dy, 2, weight, bias)
    _, backward = GROUP_NORM[layout]
    x3, dy3 = to_layout(x, layout), to_layout(dy, layout)
    for keep in range(3):
        outputs = [np.empty((0, 0, 0)), np.empty(0), np.empty(0)]
        outputs[keep] = np.empty_like(x3) if keep == 0 else np.empty(6)
        backward(dy3, x3, 2, weight, full["mean"], full["invstd"], *outputs)
        key = ("dx", "dweight", "dbias")[keep]
        want = to_layout(full["dx"], layout) if keep == 0 else full[key]
        np.testing.assert_array_equal(outputs[keep], want, err_msg=key)


@pytest.mark.parametrize("layout", GROUP_NORM)
def test_group_norm_large_mean_offset(layout):
    """float32 values at 1e6 with unit spread: statistics, outputs and gradients as the float64
    reference from the same float32 values gives them."""
    x, dy, weight, bias = group_data(np.float32, n=2, c=4, s=50, offset=1e6)
    got = run_group_norm(layout, x, dy, 2, weight, bias)
    check_against(got, reference_group_norm(x, dy, 2, weight, bias), np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", GROUP_NORM)
def test_group_norm_constant_groups(layout, dtype):
    """A group with variance 0 normalizes to exactly its bias, with finite gradients."""
    x, dy, weight, bias = group_data(dtype, n=2, c=6, s=7)
    x[0, 0:2] = 0.3
    x[1, 4:6] = 1e6 + 0.5
    got = run_group_norm(layout, x, dy, 3, weight, bias)
    check_against(got, reference_group_norm(x, dy, 3, weight, bias), dtype)
    for key, value in got.items():
        assert np.isfinite(value).all(), key
    for i, g in ((0, 0), (1, 2)):
        assert got["mean"][i, g] == np.float64(x[i, 2 * g, 0])
        assert got["invstd"][i, g] == 1.0 / np.sqrt(EPS)
        for c in (2 * g, 2 * g + 1):
            np.testing.assert_array_equal(got["y"][i, c], np.full(7, bias[c]))


@pytest.mark.parametrize("layout", GROUP_NORM)
def test_group_norm_empty_rows(layout):
    """Rows with no elements (S = 0) have mean 0 and invstd NaN (torch's ``0/0`` variance), so
    the weight's gradient is NaN and the bias's 0, as in torch."""
    x = np.empty((2, 4, 0))
    weight, bias = np.ones(4), np.zeros(4)
    got = run_group_norm(layout, x, x, 2, weight, bias)
    np.testing.assert_array_equal(got["mean"], np.zeros((2, 2)))
    np.testing.assert_array_equal(got["invstd"], np.full((2, 2), np.nan))
    np.testing.assert_array_equal(got["dweight"], np.full(4, np.nan))
    np.testing.assert_array_equal(got["dbias"], np.zeros(4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", GROUP_NORM)
def test_group_norm_chunks_and_threads(layout, dtype):
    """Positions split in uneven chunks (channels-last: 4 chunks of 200, 200, 200 and 201
    positions of 64 channels, which the sums take in pairs for float32 and fours for float64,
    one left over), merged afterwards; the results are the same bits with one thread or more."""
    x, dy, weight, bias = group_data(dtype, n=2, c=64, s=801, offset=30.0)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_group_norm(layout, x, dy, 8, weight, bias)
    finally:
        numba.set_num_threads(threads)
    got = run_group_norm(layout, x, dy, 8, weight, bias)
    for key in got:
        np.testing.assert_array_equal(got[key], one[key], err_msg=key)
    check_against(got, reference_group_norm(x, dy, 8, weight, bias), dtype)


@pytest.mark.parametrize("layout", GROUP_NORM)
def test_group_norm_serial_twins(layout):
    forward, backward = GROUP_NORM[layout]
    x, dy, weight, bias = group_data(np.float32, n=3, c=8, s=40)
    parallel = run_group_norm(layout, x, dy, 4, weight, bias)
    serial = run_group_norm(layout, x, dy, 4, weight, bias, kernels=(forward.serial,
                                                                     backward.serial))  # fmt: skip
    for key in parallel:
        np.testing.assert_array_equal(serial[key], parallel[key], err_msg=key)


def test_group_norm_as_instance_norm():
    """``groups = C`` (InstanceNorm's use of the kernels): one row per (sample, channel)."""
    x, dy, weight, bias = group_data(np.float64, n=2, c=5, s=9)
    for layout in GROUP_NORM:
        got = run_group_norm(layout, x, dy, 5, weight, bias)
        check_against(got, reference_group_norm(x, dy, 5, weight, bias), np.float64)
