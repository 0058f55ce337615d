"""Local response normalization (LocalResponseNorm) on CUDA: the mirror of
``numbanorm.kernels.cpu.local_response_norm``, with the same names, arguments and semantics (see
there): ``y = x * d**-beta``, ``d = k + alpha/size * (sum of x*x over the zero-padded window of
channels c - size//2 .. c + (size-1)//2)``, on ``(N, C, S)`` (``ncs``) and ``(N, S, C)``
(``nsc``) views of any strides, in float64 whatever the input dtype.

One thread per output element, consecutive threads on consecutive elements of the view (so a
warp reads consecutive addresses in either layout). Each window is summed directly, clipped to
the channel axis: it holds only its own values, as accurate as the CPU's block sums (a window of
zeros sums to exactly 0, and no rounding error of a large square leaks into its neighbours'
windows), and for the usual windows of a few channels it costs less than block sums would; the
neighbours' values come from cache. A window of ``w`` channels costs ``w`` loads per element, so
windows as long as a wide channel axis are slow. ``d**-beta`` is CUDA's ``pow``.
"""

import math

import numpy as np
from numba import cuda

from numbanorm.kernels.config import THREADS_PER_BLOCK, cuda_device, cuda_kernel
from numbanorm.kernels.cuda.channel_access import load, store

# Blocks of a launch at most; threads stride over the rest. Each thread then works through
# several elements, which pays for its index setup.
_MAX_BLOCKS = 8192


@cuda_device
def _unravel(t, shape):
    """Flat C-order index ``t`` of a 3-D array of ``shape`` as a multi-index."""
    plane = shape[1] * shape[2]
    a = t // plane
    rest = t - a * plane
    b = rest // shape[2]
    return a, b, rest - b * shape[2]


@cuda_device
def _advance(a, b, e, step_a, step_b, step_e, shape):
    """Multi-index ``(a, b, e)`` moved on by the unravelled ``(step_a, step_b, step_e)``:
    additions only, as 64-bit divisions per element would cost more than its memory access."""
    e += step_e
    if e >= shape[2]:
        e -= shape[2]
        b += 1
    b += step_b
    if b >= shape[1]:
        b -= shape[1]
        a += 1
    return a + step_a, b, e


@cuda_device
def _channel_index(a, b, e, channels_last):
    """``(i, c, j)`` in the ``(N, C, S)`` tensor of the view's multi-index ``(a, b, e)``."""
    if channels_last:
        return a, e, b
    return a, b, e


@cuda_device
def _scale(x, i, c, j, channels_last, size, alpha, beta, k, floor_mean):
    """``(d**-beta, d)`` at element ``(i, c, j)``.

    ``floor_mean``: average the squares with integer division, as torch's avg_pool does on int64
    input.
    """
    channels = x.shape[2] if channels_last else x.shape[1]
    v = 0.0
    for w in range(max(c - size // 2, 0), min(c + (size - 1) // 2, channels - 1) + 1):
        value = load(x, i, w, j, channels_last)
        v += value * value
    if floor_mean:
        # The floor of a mean that is never negative, in float64 (math.floor gives an int64).
        mean = v / size
        d = k + alpha * (mean - math.fmod(mean, 1.0))
    else:
        d = k + alpha / size * v
    return d**-beta, d


@cuda_kernel
def _forward(x, size, alpha, beta, k, floor_mean, channels_last, y):
    """``y = x * d**-beta``."""
    a, b, e = _unravel(cuda.grid(1), x.shape)
    step_a, step_b, step_e = _unravel(cuda.gridsize(1), x.shape)
    while a < x.shape[0]:
        i, c, j = _channel_index(a, b, e, channels_last)
        s, _ = _scale(x, i, c, j, channels_last, size, alpha, beta, k, floor_mean)
        store(y, i, c, j, channels_last, load(x, i, c, j, channels_last) * s)
        a, b, e = _advance(a, b, e, step_a, step_b, step_e, x.shape)


@cuda_kernel
def _window_terms(dy, x, size, alpha, beta, k, channels_last, terms):
    """``terms = dy * x * s / d`` per element (``s = d**-beta``), in the view's layout: what each
    output contributes to the gradient of the inputs in its window, kept in float64 so that
    ``dx`` is rounded once."""
    a, b, e = _unravel(cuda.grid(1), x.shape)
    step_a, step_b, step_e = _unravel(cuda.gridsize(1), x.shape)
    while a < x.shape[0]:
        i, c, j = _channel_index(a, b, e, channels_last)
        s, d = _scale(x, i, c, j, channels_last, size, alpha, beta, k, False)
        g = load(dy, i, c, j, channels_last)
        terms[a, b, e] = g * load(x, i, c, j, channels_last) * s / d
        a, b, e = _advance(a, b, e, step_a, step_b, step_e, x.shape)


@cuda_kernel
def _input_grad(dy, x, size, alpha, beta, k, channels_last, coefficient, terms, dx):
    """``dx_j = dy_j s_j - coefficient x_j * sum of terms_i`` over the outputs ``i`` whose window
    holds ``j``: ``j - (size-1)//2 .. j + size//2``, the window reversed. A coefficient of 0
    (``alpha`` or ``beta`` 0: ``d`` does not depend on ``x``, and torch's pow backward gives exact
    zeros) leaves the first term alone, and ``terms`` unread."""
    channels = x.shape[2] if channels_last else x.shape[1]
    a, b, e = _unravel(cuda.grid(1), x.shape)
    step_a, step_b, step_e = _unravel(cuda.gridsize(1), x.shape)
    while a < x.shape[0]:
        i, c, j = _channel_index(a, b, e, channels_last)
        s, _ = _scale(x, i, c, j, channels_last, size, alpha, beta, k, False)
        value = load(dy, i, c, j, channels_last) * s
        if coefficient != 0.0:
            v = 0.0
            for w in range(max(c - (size - 1) // 2, 0), min(c + size // 2, channels - 1) + 1):
                v += load(terms, i, w, j, channels_last)
            value -= coefficient * load(x, i, c, j, channels_last) * v
        store(dx, i, c, j, channels_last, value)
        a, b, e = _advance(a, b, e, step_a, step_b, step_e, x.shape)


def _blocks(size):
    return min(-(-size // THREADS_PER_BLOCK), _MAX_BLOCKS)


def _forward_launch(x, size, alpha, beta, k, floor_mean, y, nsc):
    if x.size > 0:
        _forward[_blocks(x.size), THREADS_PER_BLOCK](x, size, alpha, beta, k, floor_mean, nsc, y)


def _backward_launch(dy, x, size, alpha, beta, k, dx, nsc):
    if x.size == 0:
        return
    blocks = _blocks(x.size)
    coefficient = 2.0 * alpha * beta / size
    if coefficient != 0.0:
        terms = cuda.device_array(x.shape, np.float64)
        _window_terms[blocks, THREADS_PER_BLOCK](dy, x, size, alpha, beta, k, nsc, terms)
    else:
        terms = cuda.device_array((0, 0, 0), np.float64)
    _input_grad[blocks, THREADS_PER_BLOCK](dy, x, size, alpha, beta, k, nsc, coefficient, terms, dx)


def local_response_norm_ncs(x, size, alpha, beta, k, floor_mean, y):
    """torch.nn.functional.local_response_norm on an ``(N, C, S)`` view, into ``y``.

    ``floor_mean`` (torch on int64 input): the mean of the squares is floored.
    """
    _forward_launch(x, size, alpha, beta, k, floor_mean, y, False)


def local_response_norm_nsc(x, size, alpha, beta, k, floor_mean, y):
    """torch.nn.functional.local_response_norm on an ``(N, S, C)`` view (channels-last), into
    ``y``; arguments as the ncs one."""
    _forward_launch(x, size, alpha, beta, k, floor_mean, y, True)


def local_response_norm_backward_ncs(dy, x, size, alpha, beta, k, dx):
    """The input's gradient of local_response_norm on ``(N, C, S)`` views, into ``dx``,
    recomputed from ``x`` (nothing saved by the forward): one kernel for each output's
    contribution to its window, one for each input's sum of them."""
    _backward_launch(dy, x, size, alpha, beta, k, dx, False)


def local_response_norm_backward_nsc(dy, x, size, alpha, beta, k, dx):
    """The input's gradient on ``(N, S, C)`` views, arguments as the ncs one."""
    _backward_launch(dy, x, size, alpha, beta, k, dx, True)
