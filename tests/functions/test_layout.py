"""Channel-wise views: contiguous and channels-last input reach the kernels without a copy, and
BatchNorm's outputs and gradients keep the input's layout."""

from math import prod

import numpy as np
import pytest

import numbanorm
import numbanorm.backends.cpu
from numbanorm.functions.layout import NCS, NSC, as_layout, channel_view, empty_in_layout
from numbanorm.nn import functional as F
from tests.oracle import channels_last, deterministic


def _is_channels_last(a: np.ndarray) -> bool:
    return np.moveaxis(a, 1, -1).flags.c_contiguous


def _ncs(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], a.shape[1], prod(a.shape[2:]))


def _nsc(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 1, -1).reshape(a.shape[0], prod(a.shape[2:]), a.shape[1])


SHAPES = [(2, 3, 4), (2, 3, 4, 5), (2, 3, 2, 3, 4)]


@pytest.mark.parametrize("shape", SHAPES)
def test_contiguous_input_is_an_ncs_view(shape):
    x = deterministic(shape, 1)
    view, layout = channel_view(x)
    assert layout == NCS
    assert np.shares_memory(view, x)
    np.testing.assert_array_equal(view, _ncs(x))


@pytest.mark.parametrize("shape", SHAPES)
def test_channels_last_input_is_an_nsc_view(shape):
    x = channels_last(deterministic(shape, 1))
    view, layout = channel_view(x)
    assert layout == NSC
    assert view.flags.c_contiguous
    assert np.shares_memory(view, x)
    np.testing.assert_array_equal(view, _nsc(x))


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 1), (2, 3, 1, 1), (0, 3, 2, 2), (2, 3, 0)])
def test_one_value_per_sample_and_empty_input_are_views(shape):
    x = deterministic(shape, 1)
    view, layout = channel_view(x)
    assert np.shares_memory(view, x) or x.size == 0
    np.testing.assert_array_equal(view, _ncs(x) if layout == NCS else _nsc(x))


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a[:, :, ::2],
        lambda a: a[::-1],
        lambda a: np.swapaxes(a, 2, 3),
        lambda a: np.moveaxis(a, 0, -1).copy().transpose(3, 0, 1, 2),
    ],
    ids=["step", "negative", "transposed-spatial", "batch-last"],
)
def test_other_strides_are_copied_to_ncs(make):
    x = make(deterministic((3, 2, 4, 4), 1))
    view, layout = channel_view(x)
    assert layout == NCS
    assert view.flags.c_contiguous
    np.testing.assert_array_equal(view, _ncs(np.ascontiguousarray(x)))


@pytest.mark.parametrize("layout", [NCS, NSC])
def test_empty_in_layout_and_as_layout(layout):
    shape = (2, 3, 4, 5)
    out, view = empty_in_layout(shape, np.float32, layout)
    assert out.shape == shape and out.dtype == np.float32
    assert np.shares_memory(out, view) and view.flags.c_contiguous
    assert _is_channels_last(out) == (layout == NSC)
    x = deterministic(shape, 2)
    view[...] = as_layout(x, layout)
    np.testing.assert_array_equal(out, x)


def _batch_norm_channels_last(shape, training, dtype):
    """BatchNorm forward and backward on a channels-last leaf: (x array, x, y)."""
    channels = shape[1]
    x_array = channels_last(deterministic(shape, 1, dtype))
    x = numbanorm.Tensor(x_array, requires_grad=True)
    weight = numbanorm.Tensor(np.ones(channels, dtype), requires_grad=True)
    running = [np.zeros(channels, dtype), np.ones(channels, dtype)]
    y = F.batch_norm(x, *running, weight, None, training)
    y.backward(numbanorm.Tensor(channels_last(deterministic(shape, 2, dtype))))
    return x_array, x, y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_on_channels_last_input_does_not_copy_it(monkeypatch, shape, training, dtype):
    """The forward and backward kernels get views of the caller's own channels-last memory, and
    the output comes back channels-last."""
    seen = []
    kernel = numbanorm.backends.cpu.kernel

    def recording_kernel(family, name, size):
        function = kernel(family, name, size)

        def run(*args):
            seen.append((name, args[1] if "backward" in name else args[0]))
            return function(*args)

        return run

    monkeypatch.setattr(numbanorm.backends.cpu, "kernel", recording_kernel)
    x_array, x, y = _batch_norm_channels_last(shape, training, dtype)
    assert [name.rsplit("_", 1)[1] for name, _ in seen] == ["nsc", "nsc"]
    for name, array in seen:
        assert np.shares_memory(array, x_array), f"{name} got a copy of the input"
    assert _is_channels_last(y.data), "output is not channels-last"
    assert y.dtype == x.dtype and x.grad.dtype == x.dtype


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES)
def test_input_gradient_keeps_channels_last(shape, training):
    """As torch's gradient layout contract: a dense leaf's ``.grad`` has the leaf's strides."""
    x_array, x, _ = _batch_norm_channels_last(shape, training, "float32")
    assert x.grad.data.strides == x_array.strides, "input gradient is not channels-last"
