"""The BatchNorm CUDA kernels against the CPU kernels on the same inputs: both layouts, float32
and float64, strided device views, running buffers and skipped (size-0) outputs, row chunks
split over several blocks, empty batches, constant channels and large mean offsets, and eval's
inf/NaN at ``var + eps == 0``.

On numba's CUDA simulator every thread runs in Python, so the shapes are tiny; they are chosen
so that threads walk several rows and blocks hold several channel tiles or row chunks.
"""

import numpy as np
import pytest

from numbanorm.kernels import cpu
from numbanorm.kernels.config import THREADS_PER_BLOCK
from numbanorm.kernels.cuda import batch_norm
from tests.kernels.cuda.device_arrays import OnDevice
from tests.oracle import deterministic

EPS = 1e-5
MOMENTUM = 0.1
# Both compute in float64 and round once: float64 differs by the summation order only, float32
# by at most an ulp of the rounding.
TOLERANCE = {np.float64: {"rtol": 1e-12, "atol": 1e-14}, np.float32: {"rtol": 1e-6, "atol": 1e-7}}


def assert_matches(got, want, name):
    np.testing.assert_allclose(got, want, err_msg=name, **TOLERANCE[want.dtype.type])


def view_shape(layout, n, c, s):
    return (n, c, s) if layout == "ncs" else (n, s, c)


def make_inputs(layout, dtype, n, c, s, seed=1):
    shape = view_shape(layout, n, c, s)
    return {
        "x": deterministic(shape, seed, dtype, -1.0, 3.0),
        "dy": deterministic(shape, seed + 1, dtype),
        "weight": deterministic((c,), seed + 2, dtype, 0.5, 1.5),
        "bias": deterministic((c,), seed + 3, dtype),
        "running_mean": deterministic((c,), seed + 4, dtype, -0.5, 0.5),
        "running_var": deterministic((c,), seed + 5, dtype, 0.5, 1.5),
    }


def kernel(module, name, layout):
    return getattr(module, f"batch_norm_{name}_{layout}")


def train_cpu(layout, a, running):
    """The CPU kernels' training forward and backward: every output, and the running stats."""
    c = a["weight"].size
    out = {"y": np.empty_like(a["x"]), "mean": np.empty(c), "invstd": np.empty(c)}
    rm, rv = (a["running_mean"].copy(), a["running_var"].copy()) if running else (np.empty(0),) * 2
    kernel(cpu, "train", layout)(
        a["x"], a["weight"], a["bias"], EPS, MOMENTUM, rm, rv, out["y"], out["mean"], out["invstd"]
    )
    out |= {"dx": np.empty_like(a["x"]), "dweight": np.empty(c, a["x"].dtype)}
    out |= {"dbias": np.empty(c, a["x"].dtype), "running_mean": rm, "running_var": rv}
    kernel(cpu, "backward", layout)(
        a["dy"], a["x"], a["weight"], out["mean"], out["invstd"], True,
        out["dx"], out["dweight"], out["dbias"],
    )  # fmt: skip
    return out


def train_cuda(layout, a, running, any_strides=False):
    """What train_cpu computes, by the CUDA kernels on device views of the inputs and outputs."""
    c = a["weight"].size
    dtype = a["x"].dtype
    if not running:
        a = a | {"running_mean": np.empty(0, dtype), "running_var": np.empty(0, dtype)}
    outputs = {"y": np.zeros_like(a["x"]), "mean": np.zeros(c), "invstd": np.zeros(c)}
    outputs |= {"dx": np.zeros_like(a["x"]), "dweight": np.zeros(c, dtype)}
    outputs |= {"dbias": np.zeros(c, dtype)}
    d = {key: OnDevice(value, any_strides) for key, value in (a | outputs).items()}
    v = {key: value.view for key, value in d.items()}
    kernel(batch_norm, "train", layout)(
        v["x"], v["weight"], v["bias"], EPS, MOMENTUM, v["running_mean"], v["running_var"],
        v["y"], v["mean"], v["invstd"],
    )  # fmt: skip
    kernel(batch_norm, "backward", layout)(
        v["dy"], v["x"], v["weight"], v["mean"], v["invstd"], True,
        v["dx"], v["dweight"], v["dbias"],
    )  # fmt: skip
    return {key: d[key].numpy() for key in [*outputs, "running_mean", "running_var"]}


def assert_all_match(got, want):
    for key, value in want.items():
        assert_matches(got[key], value, key)


# (layout, dtype, (N, C, S), strided views, running buffers). A block's threads walk its rows
# _UNROLL = 4 at a time, in steps of 256 rows (ncs) or 64 rows of 4 channel lanes (nsc with
# 3 channels): 1050 and 300 rows give some threads a second, partial group, 300 rows of ncs and
# 100 of nsc one partial group; 40 channels take two tiles of 32 channel lanes.
CASES = [
    ("ncs", np.float64, (3, 2, 350), False, True),
    ("ncs", np.float32, (3, 2, 100), True, False),
    ("nsc", np.float64, (2, 3, 150), True, True),
    ("nsc", np.float32, (2, 40, 3), False, False),
]


@pytest.mark.parametrize(("layout", "dtype", "dims", "any_strides", "running"), CASES)
def test_train_forward_and_backward_match_cpu(layout, dtype, dims, any_strides, running):
    a = make_inputs(layout, dtype, *dims)
    want = train_cpu(layout, a, running)
    got = train_cuda(layout, a, running, any_strides)
    assert_all_match(got, want)


@pytest.mark.parametrize(("layout", "dtype", "dims", "any_strides", "far_mean"), [
    ("ncs", np.float32, (3, 2, 100), True, False),
    ("nsc", np.float64, (2, 3, 50), True, False),
    ("ncs", np.float32, (2, 3, 40), False, True),
    ("nsc", np.float32, (2, 3, 40), False, True),
])  # fmt: skip
def test_eval_forward_and_backward_match_cpu(layout, dtype, dims, any_strides, far_mean):
    """Running statistics: ``y`` from them, and the backward with ``train=False``. With
    ``far_mean``, channel 1 sits at 1e6: float32 eval runs it in float64 and the others in
    float32, on the GPU as on the CPU."""
    a = make_inputs(layout, dtype, *dims)
    if far_mean:
        a["running_mean"][1] = 1e6
        (a["x"][:, 1] if layout == "ncs" else a["x"][:, :, 1])[...] += dtype(1e6)
    mean = a["running_mean"].astype(np.float64)
    invstd = 1.0 / np.sqrt(a["running_var"].astype(np.float64) + EPS)
    want = {"y": np.empty_like(a["x"]), "dx": np.empty_like(a["x"])}
    want |= {"dweight": np.empty_like(a["weight"]), "dbias": np.empty_like(a["weight"])}
    kernel(cpu, "eval", layout)(
        a["x"], a["weight"], a["bias"], a["running_mean"], a["running_var"], EPS, want["y"]
    )
    kernel(cpu, "backward", layout)(
        a["dy"], a["x"], a["weight"], mean, invstd, False,
        want["dx"], want["dweight"], want["dbias"],
    )  # fmt: skip
    d = {key: OnDevice(value, any_strides) for key, value in a.items()}
    d |= {key: OnDevice(np.zeros_like(value), any_strides) for key, value in want.items()}
    d["mean"], d["invstd"] = OnDevice(mean), OnDevice(invstd)
    v = {key: value.view for key, value in d.items()}
    kernel(batch_norm, "eval", layout)(
        v["x"], v["weight"], v["bias"], v["running_mean"], v["running_var"], EPS, v["y"]
    )
    kernel(batch_norm, "backward", layout)(
        v["dy"], v["x"], v["weight"], v["mean"], v["invstd"], False,
        v["dx"], v["dweight"], v["dbias"],
    )  # fmt: skip
    assert_all_match({key: d[key].numpy() for key in want}, want)


@pytest.mark.parametrize(("layout", "dims", "chunk_elements", "chunks"), [
    ("ncs", (3, 1, 5), 8, 2),  # 15 rows in chunks of 7 and 8
    ("nsc", (3, 3, 5), 32, 2),  # 15 rows of 4 channel lanes in chunks of 7 and 8
])  # fmt: skip
def test_rows_split_in_chunks(layout, dims, chunk_elements, chunks, monkeypatch):
    """Rows summed by several blocks, each into its own partials, added up afterwards."""
    monkeypatch.setattr(batch_norm, "_CHUNK_ELEMENTS", chunk_elements)
    a = make_inputs(layout, np.float64, *dims)
    grid, _ = batch_norm._grid(a["x"], layout == "nsc")
    assert grid[1] == chunks
    assert_all_match(train_cuda(layout, a, True), train_cpu(layout, a, True))


def test_finish_adds_more_chunks_than_a_block_has_row_lanes():
    """The per-channel finish over partials of 20 row chunks: 40 channels take two tiles of 32
    lanes, whose 8 row lanes add 2 or 3 chunks each before the tree."""
    a = make_inputs("nsc", np.float64, 1, 40, 20)
    d = a["x"][0] - a["x"][0, 0]
    partials = OnDevice(np.stack([d, d * d]))  # one chunk per row
    want = train_cpu("nsc", a, True)
    stats = ("running_mean", "running_var", "mean", "invstd")
    got = {key: OnDevice(a[key] if key.startswith("running") else np.zeros(40)) for key in stats}
    blocks, lanes = batch_norm._finish_grid(40)
    batch_norm._finish_stats[blocks, THREADS_PER_BLOCK](
        OnDevice(a["x"]).view, True, partials.view, lanes, EPS, MOMENTUM,
        *(got[key].view for key in stats),
    )  # fmt: skip
    assert_all_match({key: got[key].numpy() for key in stats}, {key: want[key] for key in stats})


def test_backward_skips_size_zero_outputs():
    """Each of ``dx``, ``dweight``, ``dbias`` alone is what a call with all three computes."""
    layout = "nsc"
    a = make_inputs(layout, np.float64, 2, 3, 4)
    c = 3
    mean = deterministic((c,), 9, np.float64)
    invstd = deterministic((c,), 10, np.float64, 0.5, 2.0)
    args = (a["dy"], a["x"], a["weight"], mean, invstd)
    for train, keep in ((True, 0), (False, 0), (False, 1), (True, 2)):
        everything = [np.empty_like(a["x"]), np.empty(c), np.empty(c)]
        kernel(cpu, "backward", layout)(*args, train, *everything)
        outputs = [OnDevice(np.empty((0, 0, 0))), OnDevice(np.empty(0)), OnDevice(np.empty(0))]
        outputs[keep] = OnDevice(np.zeros_like(everything[keep]))
        kernel(batch_norm, "backward", layout)(
            *(OnDevice(value).view for value in args), train, *(o.view for o in outputs)
        )
        assert_matches(outputs[keep].numpy(), everything[keep], f"train={train}, {keep}")


@pytest.mark.parametrize("layout", ["ncs", "nsc"])
def test_empty_batch(layout):
    """No rows: statistics and weight gradients 0, running stats untouched; no channels: no
    launch at all."""
    a = make_inputs(layout, np.float64, 0, 2, 5)
    got = train_cuda(layout, a, True)
    want = train_cpu(layout, a, True)
    assert_all_match(got, want)
    np.testing.assert_array_equal(got["running_var"], a["running_var"])
    for key in ("mean", "invstd", "dweight", "dbias"):
        np.testing.assert_array_equal(got[key], np.zeros(2), err_msg=key)
    no_channels = make_inputs(layout, np.float64, 2, 0, 5)
    assert train_cuda(layout, no_channels, True)["y"].size == 0


def test_constant_channel_and_large_offset():
    """float32 at 1e6 with unit spread keeps its variance (the sums are shifted by the channel's
    first value), and a constant channel normalizes to exactly its bias."""
    a = make_inputs("nsc", np.float64, 2, 2, 6)
    a["x"] += 1e6
    a["x"][:, :, 0] = 1e6 + 0.5
    a = {key: value.astype(np.float32) for key, value in a.items()}
    got = train_cuda("nsc", a, True)
    assert_all_match(got, train_cpu("nsc", a, True))
    np.testing.assert_array_equal(got["y"][:, :, 0], np.full((2, 6), a["bias"][0]))
    assert got["mean"][0] == np.float64(np.float32(1e6 + 0.5))
    assert got["invstd"][0] == 1.0 / np.sqrt(EPS)
    assert got["dweight"][0] == 0.0


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_eval_with_zero_variance_and_eps_gives_inf_and_nan_as_torch():
    a = make_inputs("nsc", np.float32, 1, 3, 2)
    a["running_var"][:] = 0.0
    a["x"][0, 0, 1] = a["running_mean"][1]
    want = np.empty_like(a["x"])
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel(cpu, "eval", "nsc")(
            a["x"], a["weight"], a["bias"], a["running_mean"], a["running_var"], 0.0, want
        )
    d = {key: OnDevice(value) for key, value in a.items()}
    y = OnDevice(np.zeros_like(want))
    kernel(batch_norm, "eval", "nsc")(
        d["x"].view, d["weight"].view, d["bias"].view, d["running_mean"].view,
        d["running_var"].view, 0.0, y.view,
    )  # fmt: skip
    assert np.isinf(want).any() and np.isnan(want).any()
    np.testing.assert_array_equal(y.numpy(), want)
