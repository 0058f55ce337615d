"""The BatchNorm CPU kernels as public API: called from a user's own ``@njit`` function, in both
layouts and with any strides, against torch (live, and the golden file ``batch_norm_kernels``);
size-0 "skip" arguments; and the numerics DESIGN.md asks for (large mean offsets, constant
channels) against a float64 reference computed from the same input values."""

import numba
import numpy as np
import pytest

from numbanorm.kernels.cpu import (
    batch_norm_backward_ncs,
    batch_norm_backward_nsc,
    batch_norm_eval_ncs,
    batch_norm_eval_nsc,
    batch_norm_train_ncs,
    batch_norm_train_nsc,
)
from tests.oracle import Cases, deterministic
from tests.tolerances import assert_close

EPS = 1e-5
MOMENTUM = 0.1
SHAPE = (3, 4, 2, 5)  # (N, C, H, W)

KERNELS = {
    "ncs": (batch_norm_train_ncs, batch_norm_eval_ncs, batch_norm_backward_ncs),
    "nsc": (batch_norm_train_nsc, batch_norm_eval_nsc, batch_norm_backward_nsc),
}


# A user's own @njit code: a training step and an evaluation step, each forward and backward.
@numba.njit
def user_step_ncs(x, dy, x_eval, dy_eval, weight, bias, running_mean, running_var, out):
    y, mean, invstd, dx, dweight, dbias, y_eval, dx_eval, dweight_eval, dbias_eval = out
    batch_norm_train_ncs(x, weight, bias, 1e-5, 0.1, running_mean, running_var, y, mean, invstd)
    batch_norm_backward_ncs(dy, x, weight, mean, invstd, True, dx, dweight, dbias)
    batch_norm_eval_ncs(x_eval, weight, bias, running_mean, running_var, 1e-5, y_eval)
    eval_mean = running_mean.astype(np.float64)
    eval_invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + 1e-5)
    batch_norm_backward_ncs(
        dy_eval, x_eval, weight, eval_mean, eval_invstd, False, dx_eval, dweight_eval, dbias_eval
    )


@numba.njit
def user_step_nsc(x, dy, x_eval, dy_eval, weight, bias, running_mean, running_var, out):
    y, mean, invstd, dx, dweight, dbias, y_eval, dx_eval, dweight_eval, dbias_eval = out
    batch_norm_train_nsc(x, weight, bias, 1e-5, 0.1, running_mean, running_var, y, mean, invstd)
    batch_norm_backward_nsc(dy, x, weight, mean, invstd, True, dx, dweight, dbias)
    batch_norm_eval_nsc(x_eval, weight, bias, running_mean, running_var, 1e-5, y_eval)
    eval_mean = running_mean.astype(np.float64)
    eval_invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + 1e-5)
    batch_norm_backward_nsc(
        dy_eval, x_eval, weight, eval_mean, eval_invstd, False, dx_eval, dweight_eval, dbias_eval
    )


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
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    return view


def _inputs(dtype):
    c = SHAPE[1]
    return {
        "x": deterministic(SHAPE, 1, dtype, -1.0, 3.0),
        "dy": deterministic(SHAPE, 2, dtype),
        "x_eval": deterministic(SHAPE, 3, dtype),
        "dy_eval": deterministic(SHAPE, 4, dtype),
        "weight": deterministic((c,), 5, dtype, 0.5, 1.5),
        "bias": deterministic((c,), 6, dtype),
        "running_mean": deterministic((c,), 7, dtype, -0.5, 0.5),
        "running_var": deterministic((c,), 8, dtype, 0.5, 1.5),
    }


def torch_step(torch, dtype):
    """What user_step computes, by torch: functional batch_norm and autograd."""
    F = torch.nn.functional
    a = {k: torch.from_numpy(v) for k, v in _inputs(dtype).items()}
    out = {}
    _, mean, invstd = torch.native_batch_norm(
        a["x"], a["weight"], a["bias"], None, None, True, MOMENTUM, EPS
    )
    out["mean"], out["invstd"] = mean, invstd
    for step, training in (("", True), ("_eval", False)):
        x = a["x" + step].clone().requires_grad_()
        weight = a["weight"].clone().requires_grad_()
        bias = a["bias"].clone().requires_grad_()
        y = F.batch_norm(
            x, a["running_mean"], a["running_var"], weight, bias, training, MOMENTUM, EPS
        )
        y.backward(a["dy" + step])
        out |= {
            "y" + step: y, "dx" + step: x.grad, "dweight" + step: weight.grad,
            "dbias" + step: bias.grad,
        }  # fmt: skip
    out["running_mean"], out["running_var"] = a["running_mean"], a["running_var"]
    return {k: v.detach().numpy().copy() for k, v in out.items()}


def user_step(layout, dtype, any_strides):
    """user_step_<layout> on the kernels' views of the inputs; outputs as torch's arrays."""
    inputs = _inputs(dtype)
    c = SHAPE[1]
    for key in ("x", "dy", "x_eval", "dy_eval"):
        inputs[key] = to_layout(inputs[key], layout)
    shapes = [(c, np.float64), (c, np.float64), (c, dtype), (c, dtype)]
    names = ["y", "mean", "invstd", "dx", "dweight", "dbias"]
    names += ["y_eval", "dx_eval", "dweight_eval", "dbias_eval"]
    x3 = inputs["x"]
    outs = [np.zeros_like(x3), np.zeros(*shapes[0]), np.zeros(*shapes[1])]
    outs += [np.zeros_like(x3), np.zeros(*shapes[2]), np.zeros(*shapes[3])]
    outs += [np.zeros_like(x3), np.zeros_like(x3), np.zeros(c, dtype), np.zeros(c, dtype)]
    if any_strides:
        inputs = {k: strided(v) for k, v in inputs.items()}
        outs = [strided(o) for o in outs]
    USER_STEPS[layout](*inputs.values(), tuple(outs))
    result = dict(zip(names, (np.array(o) for o in outs), strict=True))
    for key in ("y", "dx", "y_eval", "dx_eval"):
        result[key] = from_layout(result[key], layout, SHAPE)
    # torch keeps the batch statistics in the input's dtype; the kernels in float64.
    result["mean"] = result["mean"].astype(dtype)
    result["invstd"] = result["invstd"].astype(dtype)
    result["running_mean"] = np.array(inputs["running_mean"])
    result["running_var"] = np.array(inputs["running_var"])
    return result


def kernel_case(lib, layout, dtype, any_strides):
    if lib.name == "torch":
        return torch_step(lib.torch, dtype)
    return user_step(layout, dtype, any_strides)


CASES = Cases("batch_norm_kernels")
for _layout in KERNELS:
    for _dtype, _strides in (("float32", False), ("float64", False), ("float32", True)):
        CASES.add(
            f"{_layout}-{_dtype}{'-any-strides' if _strides else ''}",
            lambda lib, a=(_layout, _dtype, _strides): kernel_case(lib, *a),
        )


@pytest.mark.parametrize("name", CASES.names())
def test_user_njit_function_calls_kernels(name):
    CASES.check(name)


# Direct calls: the skip convention, an empty batch, and numerics against a float64 reference.


def reference_train(x3, layout, weight, bias, dy3):
    """A float64 training step, two-pass statistics, on a kernel's 3-D view: ``(N, C, S)`` views
    of ``y`` and ``dx`` and per-channel ``mean``, ``var`` (biased), ``invstd``, ``dweight``,
    ``dbias``."""
    x = np.asarray(x3, np.float64)
    dy = np.asarray(dy3, np.float64)
    if layout == "nsc":
        x, dy = x.swapaxes(1, 2), dy.swapaxes(1, 2)
    count = x.shape[0] * x.shape[2]
    mean = x.mean(axis=(0, 2))
    centered = x - mean[:, None]
    var = (centered**2).mean(axis=(0, 2))
    invstd = 1.0 / np.sqrt(var + EPS)
    xhat = centered * invstd[:, None]
    w = np.asarray(weight, np.float64)[:, None]
    y = xhat * w + np.asarray(bias, np.float64)[:, None]
    dbias = dy.sum(axis=(0, 2))
    dweight = (dy * xhat).sum(axis=(0, 2))
    dx = (w * invstd[:, None] / count) * (count * dy - dbias[:, None] - xhat * dweight[:, None])
    return {
        "y": y, "dx": dx, "mean": mean, "var": var, "invstd": invstd,
        "dweight": dweight, "dbias": dbias, "count": count,
    }  # fmt: skip


def as_view(ncs, layout):
    """An ``(N, C, S)`` array in ``layout``'s view (a swap of the last two axes for nsc)."""
    return ncs if layout == "ncs" else ncs.swapaxes(1, 2)


def run_train(layout, x3, weight, bias, dy3, running_mean, running_var):
    """Training forward and backward by the kernels: every output, all computed."""
    train, _, backward = KERNELS[layout]
    c = weight.size
    out = {"y": np.empty_like(x3), "mean": np.empty(c), "invstd": np.empty(c)}
    train(x3, weight, bias, EPS, MOMENTUM, running_mean, running_var, out["y"], out["mean"],
          out["invstd"])  # fmt: skip
    out |= {"dx": np.empty_like(x3), "dweight": np.empty_like(weight)}
    out["dbias"] = np.empty_like(weight)
    backward(dy3, x3, weight, out["mean"], out["invstd"], True, out["dx"], out["dweight"],
             out["dbias"])  # fmt: skip
    return out


def _layout_data(layout, dtype, n=3, c=4, s=6, seed=1):
    shape = (n, c, s) if layout == "ncs" else (n, s, c)
    x3 = deterministic(shape, seed, dtype)
    dy3 = deterministic(shape, seed + 1, dtype)
    weight = deterministic((c,), seed + 2, dtype, 0.5, 1.5)
    bias = deterministic((c,), seed + 3, dtype)
    return x3, dy3, weight, bias


@pytest.mark.parametrize("layout", KERNELS)
def test_size_zero_arguments_are_skipped(layout):
    """Running buffers, ``dx``, ``dweight`` and ``dbias`` of size 0 are neither written nor
    needed; what is computed is what a call with every output computes."""
    x3, dy3, weight, bias = _layout_data(layout, "float64")
    c = weight.size
    running = (np.zeros(c), np.ones(c))
    full = run_train(layout, x3, weight, bias, dy3, *running)
    skipped = run_train(layout, x3, weight, bias, dy3, np.empty(0), np.empty(0))
    for key in full:
        np.testing.assert_array_equal(skipped[key], full[key], err_msg=key)
    _, _, backward = KERNELS[layout]
    for train in (True, False):
        everything = [np.empty_like(x3), np.empty(c), np.empty(c)]
        backward(dy3, x3, weight, full["mean"], full["invstd"], train, *everything)
        for keep in range(3):
            # A skipped output is a size-0 array of its own number of dimensions.
            outputs = [np.empty((0, 0, 0)), np.empty(0), np.empty(0)]
            outputs[keep] = np.empty_like(everything[keep])
            backward(dy3, x3, weight, full["mean"], full["invstd"], train, *outputs)
            np.testing.assert_array_equal(outputs[keep], everything[keep])


@pytest.mark.parametrize("layout", KERNELS)
def test_empty_batch_leaves_running_stats_alone(layout):
    c = 3
    x3 = np.empty((0, 5, c) if layout == "nsc" else (0, c, 5))
    weight = np.full(c, 2.0)
    running_mean, running_var = np.full(c, 0.5), np.full(c, 2.0)
    out = run_train(layout, x3, weight, np.ones(c), x3, running_mean, running_var)
    np.testing.assert_array_equal(running_mean, np.full(c, 0.5))
    np.testing.assert_array_equal(running_var, np.full(c, 2.0))
    for key in ("mean", "invstd", "dweight", "dbias"):
        np.testing.assert_array_equal(out[key], np.zeros(c), err_msg=key)


@pytest.mark.parametrize("layout", KERNELS)
def test_large_mean_offset(layout):
    """float32 values at 1e6 with unit spread: statistics, running stats, outputs and gradients
    as a float64 reference computed from the same float32 values gives them."""
    x3, dy3, weight, bias = _layout_data(layout, np.float64, n=4, c=3, s=50)
    x3 = (x3 + 1e6).astype(np.float32)
    dy3, weight, bias = (a.astype(np.float32) for a in (dy3, weight, bias))
    c = weight.size
    running_mean, running_var = np.zeros(c, np.float32), np.ones(c, np.float32)
    got = run_train(layout, x3, weight, bias, dy3, running_mean, running_var)
    want = reference_train(x3, layout, weight, bias, dy3)
    assert_close(got["mean"], want["mean"], "mean")
    assert_close(got["invstd"], want["invstd"], "invstd")
    unbiased = want["var"] * want["count"] / (want["count"] - 1)
    assert_close(running_mean, (MOMENTUM * want["mean"]).astype(np.float32), "running_mean")
    expected_var = (1 - MOMENTUM) + MOMENTUM * unbiased
    assert_close(running_var, expected_var.astype(np.float32), "running_var")
    for key in ("y", "dx"):
        assert_close(got[key], as_view(want[key], layout).astype(np.float32), key)
    for key in ("dweight", "dbias"):
        assert_close(got[key], want[key].astype(np.float32), key)
    # Evaluation with running statistics at the same offset.
    _, evaluate, _ = KERNELS[layout]
    stats_mean, stats_var = want["mean"].astype(np.float32), unbiased.astype(np.float32)
    y = np.empty_like(x3)
    evaluate(x3, weight, bias, stats_mean, stats_var, EPS, y)
    x = as_view(np.asarray(x3, np.float64), layout)
    expected = (x - stats_mean[:, None]) / np.sqrt(stats_var[:, None] + np.float64(EPS))
    expected = expected * weight[:, None] + bias[:, None]
    assert_close(y, as_view(expected, layout).astype(np.float32), "eval y")


def test_eval_float32_channels_near_and_far_from_zero_mean():
    """float32 eval runs a channel in float32 (as torch) while its running mean is within 8
    standard deviations of 0, and in float64 further out, where float32 coefficients would cancel
    y's digits away: near channels stay within a few dozen float32 ulps of ``|weight|``, far ones
    within one ulp of a float64 reference, and a channel's result depends neither on the others'
    path nor on the layout."""
    n, s = 3, 40
    means = np.array([0.5, -7.5, 8.5, 1e6], np.float32)
    weight = np.array([1.0, 1.25, 0.75, 2.0], np.float32)
    bias = np.array([0.1, -0.2, 0.3, 0.0], np.float32)
    running_var = np.ones(4, np.float32)
    x = (deterministic((n, 4, s), 11, np.float64, -3.0, 3.0) + means[:, None]).astype(np.float32)
    scale = weight / np.sqrt(np.float64(1.0) + EPS)
    want = (np.float64(x) - means[:, None]) * scale[:, None] + bias[:, None]

    def evaluate(running_mean):
        got = {}
        for layout, (_, kernel, _) in KERNELS.items():
            x3 = np.ascontiguousarray(as_view(x, layout))
            y3 = np.empty_like(x3)
            kernel(x3, weight, bias, running_mean, running_var, EPS, y3)
            got[layout] = as_view(y3, layout)
        np.testing.assert_array_equal(got["ncs"], got["nsc"])
        return got["ncs"]

    y = evaluate(means)
    ulp = np.finfo(np.float32).eps
    near_error = np.abs(y[:, :2] - want[:, :2]).max(axis=(0, 2))
    assert (near_error <= 40 * ulp * (np.abs(weight[:2]) + np.abs(bias[:2]))).all(), near_error
    # float64 rounds once at the end: an ulp of y, or the float64 cancellation of x*scale and
    # offset near 2e6 (about 1e-9) where y is near 0.
    far_error = np.abs(y[:, 2:] - want[:, 2:])
    assert (far_error <= np.spacing(np.abs(want[:, 2:]).astype(np.float32)) + 1e-9).all()
    # With every channel near zero mean the channels-last kernel takes its all-float32 pass.
    near_means = means.copy()
    near_means[2:] = 0.5
    np.testing.assert_array_equal(evaluate(near_means)[:, :2], y[:, :2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", KERNELS)
def test_constant_channels(layout, dtype):
    """A channel with variance 0 normalizes to exactly its bias, with finite gradients."""
    x3, dy3, weight, bias = _layout_data(layout, dtype)
    constants = {0: 0.3, 2: 1e6 + 0.5}
    x = as_view(x3, layout)
    for channel, value in constants.items():
        x[:, channel, :] = value
    c = weight.size
    running_mean, running_var = np.zeros(c, dtype), np.ones(c, dtype)
    got = run_train(layout, x3, weight, bias, dy3, running_mean, running_var)
    want = reference_train(x3, layout, weight, bias, dy3)
    for key in ("y", "dx"):
        assert np.isfinite(got[key]).all(), key
        assert_close(got[key], as_view(want[key], layout).astype(dtype), key)
    for key in ("mean", "invstd", "dweight", "dbias"):
        assert np.isfinite(got[key]).all(), key
        assert_close(got[key], want[key].astype(got[key].dtype), key)
    for channel, value in constants.items():
        assert got["mean"][channel] == np.float64(dtype(value)), "mean of a constant channel"
        assert got["invstd"][channel] == 1.0 / np.sqrt(EPS)
        assert running_var[channel] == dtype(1 - MOMENTUM), "running_var of a constant channel"
        assert got["dweight"][channel] == 0.0
        y = as_view(got["y"], layout)[:, channel, :]
        np.testing.assert_array_equal(y, np.full_like(y, bias[channel]), f"y[:, {channel}]")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", KERNELS)
def test_rows_split_in_uneven_chunks(layout, dtype):
    """Channels-last rows are summed in chunks (here 3 of 200, 200 and 201 rows of 64 channels,
    four rows at a time with one left over), merged afterwards: the same statistics and
    gradients as one pass in float64."""
    x3, dy3, weight, bias = _layout_data(layout, dtype, n=1, c=64, s=601)
    as_view(x3, layout)[...] += deterministic((64, 1), 9, dtype, -50.0, 50.0)
    c = weight.size
    running_mean, running_var = np.zeros(c, dtype), np.ones(c, dtype)
    got = run_train(layout, x3, weight, bias, dy3, running_mean, running_var)
    want = reference_train(x3, layout, weight, bias, dy3)
    for key in ("mean", "invstd"):
        assert_close(got[key], want[key], key)
    for key in ("dweight", "dbias"):
        assert_close(got[key], want[key].astype(dtype), key)
    for key in ("y", "dx"):
        assert_close(got[key], as_view(want[key], layout).astype(dtype), key)
    unbiased = want["var"] * want["count"] / (want["count"] - 1)
    assert_close(running_var, (0.9 + 0.1 * unbiased).astype(dtype), "running_var")
