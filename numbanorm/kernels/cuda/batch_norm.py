"""Channel-wise normalization (BatchNorm) on CUDA: the mirror of
``numbanorm.kernels.cpu.batch_norm``, with the same names, arguments and numerics (see there):
``(N, C, S)`` (``ncs``) and ``(N, S, C)`` (``nsc``) views of any strides, float64 statistics
shifted by each channel's first value, a size-0 output or running buffer skipped.

Every pass runs on a grid of (channel tiles, row chunks), a row being one ``(n, s)`` position:

- ``ncs``: one channel per block, whose threads take consecutive rows (consecutive addresses);
- ``nsc``: ``lanes`` consecutive channels per block (a warp's worth, so that a warp reads
  consecutive addresses of a row), the block's other threads taking other rows.

Each thread keeps one channel, so per-channel coefficients sit in registers, and walks its rows
``_UNROLL`` at a time, reading them all before it uses any. A reduction sums each block's share
into float64 shared memory, reduces it by a tree and writes one partial per (row chunk,
channel); a second kernel adds a channel's partials, also by a tree, in an order fixed by the
shape. No atomics: the results are the same bits on every run. The launchers read the chunking
constants at each call, so tests can split tiny inputs over several blocks.
"""

import math

import numpy as np
from numba import cuda

from numbanorm.kernels.config import THREADS_PER_BLOCK, cuda_device, cuda_kernel
from numbanorm.kernels.cpu.batch_norm import _EVAL_NATIVE_MAX_MEAN
from numbanorm.kernels.cuda.channel_access import load, store
from numbanorm.kernels.cuda.device_math import inverse_sqrt, multiply_add

# Elements of one block's row chunk. The split depends on the shape only, like the CPU kernels'.
_CHUNK_ELEMENTS = 4096
# Bounds the partials each channel adds up after a reduction; the grid is still large enough to
# fill a GPU.
_MAX_CHUNKS = 1024
_WARP = 32
# Rows a thread reads before it uses any: a GPU reaches its memory bandwidth only with several
# requests in flight per thread, and a thread stalls at the first use of a pending load.
_UNROLL = 4


# Device side: where a thread is, and how it walks its rows.


@cuda_device
def _dims(x, channels_last):
    """``(N, C, S)`` of the tensor that ``x`` is a view of."""
    if channels_last:
        return x.shape[0], x.shape[2], x.shape[1]
    return x.shape[0], x.shape[1], x.shape[2]


@cuda_device
def _thread_rows(lanes, rows):
    """This thread's channel and rows ``first, first + step, ... < stop`` in the grid of
    (channel tiles, row chunks): ``lanes`` consecutive threads take consecutive channels, the
    block's others split its chunk of ``rows`` between them."""
    tid = cuda.threadIdx.x
    chunk = cuda.blockIdx.y
    chunks = cuda.gridDim.y
    step = THREADS_PER_BLOCK // lanes
    start = chunk * rows // chunks
    stop = (chunk + 1) * rows // chunks
    return cuda.blockIdx.x * lanes + tid % lanes, start + tid // lanes, stop, step


@cuda_device
def _first_row(r, step, s):
    """Row ``r`` as a position ``(i, j)``, and ``step`` rows as a position step."""
    i, j = divmod(r, s)
    di, dj = divmod(step, s)
    return i, j, di, dj


@cuda_device
def _next_row(i, j, di, dj, s):
    """Row ``(i, j)`` moved on by ``(di, dj)`` (``dj < s``): additions only, as a 64-bit division
    per element would cost more than its memory access."""
    j += dj
    if j >= s:
        j -= s
        i += 1
    return i + di, j


@cuda_device
def _next_rows(i, j, di, dj, s, rows):
    """The positions of the ``_UNROLL`` rows from ``(i, j)`` on, into ``rows``; returns the
    position after them."""
    for k in range(_UNROLL):
        rows[k, 0] = i
        rows[k, 1] = j
        i, j = _next_row(i, j, di, dj, s)
    return i, j


@cuda_device
def _rows_left(r, stop, step):
    """How many of rows ``r, r + step, ...`` are below ``stop``, at most ``_UNROLL``."""
    count = 0
    for k in range(_UNROLL):
        if r + k * step < stop:
            count += 1
    return count


@cuda_device
def _load_rows(x, c, rows, count, channels_last, values):
    """Channel ``c`` of the first ``count`` ``rows``, into ``values``."""
    for k in range(_UNROLL):
        if k < count:
            values[k] = load(x, rows[k, 0], c, rows[k, 1], channels_last)


@cuda_device
def _store_rows(y, c, rows, count, channels_last, values):
    for k in range(_UNROLL):
        if k < count:
            store(y, rows[k, 0], c, rows[k, 1], channels_last, values[k])


@cuda_device
def _block_sums(shared, a, b, lanes):
    """The sums of ``a`` and of ``b`` over the threads of this block that share this thread's
    channel lane, returned to every thread: a tree in float64 shared memory, in a fixed order."""
    tid = cuda.threadIdx.x
    shared[0, tid] = a
    shared[1, tid] = b
    cuda.syncthreads()
    width = THREADS_PER_BLOCK // 2
    while width >= lanes:
        if tid < width:
            shared[0, tid] += shared[0, tid + width]
            shared[1, tid] += shared[1, tid + width]
        cuda.syncthreads()
        width //= 2
    lane = tid % lanes
    return shared[0, lane], shared[1, lane]


@cuda_device
def _sum_partials(partials, c, chunk, stop, step):
    """This thread's share of channel ``c``'s two rows of partials."""
    a = 0.0
    b = 0.0
    if c < partials.shape[2]:
        while chunk < stop:
            a += partials[0, chunk, c]
            b += partials[1, chunk, c]
            chunk += step
    return a, b


# Device side: the per-channel arithmetic of the CPU kernels.


@cuda_device
def _finish_channel(
    c, s1, s2, shift, count, eps, momentum, running_mean, running_var, mean, invstd
):
    """Turn one channel's shifted sums into ``mean``/``invstd``, update its running stats."""
    if count == 0:
        mean[c] = 0.0
        invstd[c] = 0.0
        return
    delta = s1 / count
    var = max((s2 - s1 * delta) / count, 0.0)
    mu = shift + delta
    mean[c] = mu
    invstd[c] = inverse_sqrt(var + eps)
    if running_mean.size > 0:
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mu
        unbiased = var * count / (count - 1)
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * unbiased


@cuda_device
def _grad_coefficients(c, sdy, sdyx, count, weight, invstd, train, dweight, dbias, out):
    """Store channel ``c``'s dweight/dbias, and ``(k_dy, k_x, k_0)`` of
    ``dx = dy*k_dy - (x - mean)*k_x - k_0`` in ``out[:, c]``: with batch statistics, the mean of
    ``dy`` and its projection on ``x - mean`` are removed; with running statistics only ``k_dy``
    is left."""
    inv = invstd[c]
    if dweight.size > 0:
        dweight[c] = sdyx * inv
    if dbias.size > 0:
        dbias[c] = sdy
    k_dy = inv * weight[c]
    out[0, c] = k_dy
    if not train or count == 0:
        out[1, c] = 0.0
        out[2, c] = 0.0
    else:
        out[1, c] = sdyx * inv * inv * k_dy / count
        out[2, c] = sdy * k_dy / count


# Kernels. Those that walk rows keep their positions and values in ``_UNROLL``-long local arrays,
# indexed by constants once the loops over them are unrolled, so that they live in registers.


@cuda_kernel
def _moments(x, channels_last, lanes, partials):
    """Each block's sums of ``d`` and ``d*d`` (``d = x - x[0, c, 0]``) over its chunk of rows,
    into ``partials[:, chunk, c]``."""
    shared = cuda.shared.array((2, THREADS_PER_BLOCK), np.float64)
    n, channels, s = _dims(x, channels_last)
    c, r, stop, step = _thread_rows(lanes, n * s)
    s1 = 0.0
    s2 = 0.0
    if c < channels and r < stop:
        shift = load(x, 0, c, 0, channels_last)
        rows = cuda.local.array((_UNROLL, 2), np.int64)
        xs = cuda.local.array(_UNROLL, np.float64)
        i, j, di, dj = _first_row(r, step, s)
        while r < stop:
            i, j = _next_rows(i, j, di, dj, s, rows)
            count = _rows_left(r, stop, step)
            _load_rows(x, c, rows, count, channels_last, xs)
            for k in range(_UNROLL):
                if k < count:
                    d = xs[k] - shift
                    s1 += d
                    s2 += d * d
            r += _UNROLL * step
    s1, s2 = _block_sums(shared, s1, s2, lanes)
    if cuda.threadIdx.x < lanes and c < channels:
        partials[0, cuda.blockIdx.y, c] = s1
        partials[1, cuda.blockIdx.y, c] = s2


@cuda_kernel
def _finish_stats(
    x, channels_last, partials, lanes, eps, momentum, running_mean, running_var, mean, invstd
):
    """Per channel: add up the partials of ``_moments``, write ``mean``/``invstd`` and update the
    running stats."""
    shared = cuda.shared.array((2, THREADS_PER_BLOCK), np.float64)
    n, channels, s = _dims(x, channels_last)
    c, chunk, stop, step = _thread_rows(lanes, partials.shape[1])
    s1, s2 = _sum_partials(partials, c, chunk, stop, step)
    s1, s2 = _block_sums(shared, s1, s2, lanes)
    if cuda.threadIdx.x < lanes and c < channels:
        count = n * s
        shift = load(x, 0, c, 0, channels_last) if count > 0 else 0.0
        _finish_channel(
            c, s1, s2, shift, count, eps, momentum, running_mean, running_var, mean, invstd
        )


@cuda_kernel
def _normalize(x, weight, bias, mean, invstd, channels_last, lanes, y):
    """``y = (x - mean) * scale + bias``: centring first keeps a constant channel at exactly
    ``bias`` however large its mean."""
    n, channels, s = _dims(x, channels_last)
    c, r, stop, step = _thread_rows(lanes, n * s)
    if c < channels and r < stop:
        mu = mean[c]
        scale = weight[c] * invstd[c]
        b = np.float64(bias[c])
        rows = cuda.local.array((_UNROLL, 2), np.int64)
        xs = cuda.local.array(_UNROLL, np.float64)
        i, j, di, dj = _first_row(r, step, s)
        while r < stop:
            i, j = _next_rows(i, j, di, dj, s, rows)
            count = _rows_left(r, stop, step)
            _load_rows(x, c, rows, count, channels_last, xs)
            for k in range(_UNROLL):
                if k < count:
                    xs[k] = (xs[k] - mu) * scale + b
            _store_rows(y, c, rows, count, channels_last, xs)
            r += _UNROLL * step


@cuda_device
def _eval_coefficients(weight, bias, mean, var, eps, like):
    """A channel's ``scale`` and ``offset`` of ``y = x*scale + offset`` in float64 and rounded to
    the dtype of array ``like``, and whether the channel runs in that dtype: the CPU kernels'
    ``_eval_coefficients``, by the same rule."""
    inv = inverse_sqrt(np.float64(var) + eps)
    scale = weight * inv
    offset = bias - mean * scale
    scale_x = like.dtype.type(scale)
    offset_x = like.dtype.type(offset)
    exact = scale_x == scale and offset_x == offset
    near = abs(np.float64(mean)) * inv <= _EVAL_NATIVE_MAX_MEAN
    native = exact or (near and math.isfinite(scale_x) and math.isfinite(offset_x))
    return native, scale, offset, scale_x, offset_x


@cuda_kernel
def _affine(x, weight, bias, running_mean, running_var, eps, channels_last, lanes, y):
    """``y = x*scale + offset`` from running stats: torch's own formula (``var + eps == 0`` gives
    the same inf/NaN as torch), in the input's dtype or in float64 as the CPU kernels choose."""
    n, channels, s = _dims(x, channels_last)
    c, r, stop, step = _thread_rows(lanes, n * s)
    if c < channels and r < stop:
        native, scale, offset, scale_x, offset_x = _eval_coefficients(
            weight[c], bias[c], running_mean[c], running_var[c], eps, x
        )
        rows = cuda.local.array((_UNROLL, 2), np.int64)
        xs = cuda.local.array(_UNROLL, np.float64)
        i, j, di, dj = _first_row(r, step, s)
        while r < stop:
            i, j = _next_rows(i, j, di, dj, s, rows)
            count = _rows_left(r, stop, step)
            _load_rows(x, c, rows, count, channels_last, xs)
            for k in range(_UNROLL):
                if k < count:
                    if native:
                        xs[k] = multiply_add(x.dtype.type(xs[k]), scale_x, offset_x)
                    else:
                        xs[k] = multiply_add(xs[k], scale, offset)
            _store_rows(y, c, rows, count, channels_last, xs)
            r += _UNROLL * step


@cuda_kernel
def _grad_moments(dy, x, mean, channels_last, lanes, partials):
    """Each block's sums of ``dy`` and ``dy * (x - mean)`` over its chunk of rows, into
    ``partials[:, chunk, c]``."""
    shared = cuda.shared.array((2, THREADS_PER_BLOCK), np.float64)
    n, channels, s = _dims(x, channels_last)
    c, r, stop, step = _thread_rows(lanes, n * s)
    sdy = 0.0
    sdyx = 0.0
    if c < channels and r < stop:
        mu = mean[c]
        rows = cuda.local.array((_UNROLL, 2), np.int64)
        gs = cuda.local.array(_UNROLL, np.float64)
        xs = cuda.local.array(_UNROLL, np.float64)
        i, j, di, dj = _first_row(r, step, s)
        while r < stop:
            i, j = _next_rows(i, j, di, dj, s, rows)
            count = _rows_left(r, stop, step)
            _load_rows(dy, c, rows, count, channels_last, gs)
            _load_rows(x, c, rows, count, channels_last, xs)
            for k in range(_UNROLL):
                if k < count:
                    sdy += gs[k]
                    sdyx += gs[k] * (xs[k] - mu)
            r += _UNROLL * step
    sdy, sdyx = _block_sums(shared, sdy, sdyx, lanes)
    if cuda.threadIdx.x < lanes and c < channels:
        partials[0, cuda.blockIdx.y, c] = sdy
        partials[1, cuda.blockIdx.y, c] = sdyx


@cuda_kernel
def _finish_grad(partials, weight, invstd, train, count, lanes, coefficients, dweight, dbias):
    """Per channel: add up the partials of ``_grad_moments`` (none without a reduction), write
    dweight/dbias and the input gradient's coefficients."""
    shared = cuda.shared.array((2, THREADS_PER_BLOCK), np.float64)
    c, chunk, stop, step = _thread_rows(lanes, partials.shape[1])
    sdy, sdyx = _sum_partials(partials, c, chunk, stop, step)
    sdy, sdyx = _block_sums(shared, sdy, sdyx, lanes)
    if cuda.threadIdx.x < lanes and c < weight.size:
        _grad_coefficients(c, sdy, sdyx, count, weight, invstd, train, dweight, dbias, coefficients)


@cuda_kernel
def _input_grad(dy, x, mean, coefficients, channels_last, lanes, dx):
    """``dx = dy*k_dy - (x - mean)*k_x - k_0``."""
    n, channels, s = _dims(x, channels_last)
    c, r, stop, step = _thread_rows(lanes, n * s)
    if c < channels and r < stop:
        mu = mean[c]
        k_dy = coefficients[0, c]
        k_x = coefficients[1, c]
        k_0 = coefficients[2, c]
        rows = cuda.local.array((_UNROLL, 2), np.int64)
        gs = cuda.local.array(_UNROLL, np.float64)
        xs = cuda.local.array(_UNROLL, np.float64)
        i, j, di, dj = _first_row(r, step, s)
        while r < stop:
            i, j = _next_rows(i, j, di, dj, s, rows)
            count = _rows_left(r, stop, step)
            _load_rows(dy, c, rows, count, channels_last, gs)
            _load_rows(x, c, rows, count, channels_last, xs)
            for k in range(_UNROLL):
                if k < count:
                    gs[k] = gs[k] * k_dy - (xs[k] - mu) * k_x - k_0
            _store_rows(dx, c, rows, count, channels_last, gs)
            r += _UNROLL * step


# Host side: launch shapes and the public launchers.


def _host_dims(shape, channels_last):
    n, a, b = shape
    return (n, b, a) if channels_last else (n, a, b)


def _lanes(channels):
    """Channels per block: a warp's worth, or the next power of two above fewer channels."""
    lanes = 1
    while lanes < min(channels, _WARP):
        lanes *= 2
    return lanes


def _grid(x, channels_last):
    """The (channel tiles, row chunks) grid of a pass over ``x`` (no chunks without rows), and
    its ``lanes``."""
    n, channels, s = _host_dims(x.shape, channels_last)
    rows = n * s
    lanes = _lanes(channels) if channels_last else 1
    chunks = min(-(-rows * lanes // _CHUNK_ELEMENTS), rows, _MAX_CHUNKS)
    return (-(-channels // lanes), chunks), lanes


def _finish_grid(channels):
    """The grid of a per-channel finish over ``(2, chunks, C)`` partials, and its ``lanes``:
    consecutive threads read consecutive channels of a row of partials."""
    lanes = _lanes(channels)
    return -(-channels // lanes), lanes


def _train(x, weight, bias, eps, momentum, running_mean, running_var, y, mean, invstd, nsc):
    channels = _host_dims(x.shape, nsc)[1]
    if channels == 0:
        return
    grid, lanes = _grid(x, nsc)
    partials = cuda.device_array((2, grid[1], channels), np.float64)
    if x.size > 0:
        _moments[grid, THREADS_PER_BLOCK](x, nsc, lanes, partials)
    blocks, finish_lanes = _finish_grid(channels)
    _finish_stats[blocks, THREADS_PER_BLOCK](
        x, nsc, partials, finish_lanes, eps, momentum, running_mean, running_var, mean, invstd
    )
    if x.size > 0:
        _normalize[grid, THREADS_PER_BLOCK](x, weight, bias, mean, invstd, nsc, lanes, y)


def _eval(x, weight, bias, running_mean, running_var, eps, y, nsc):
    if x.size > 0:
        grid, lanes = _grid(x, nsc)
        _affine[grid, THREADS_PER_BLOCK](
            x, weight, bias, running_mean, running_var, eps, nsc, lanes, y
        )


def _backward(dy, x, weight, mean, invstd, train, dx, dweight, dbias, nsc):
    n, channels, s = _host_dims(x.shape, nsc)
    if channels == 0:
        return
    grid, lanes = _grid(x, nsc)
    reduce = train or dweight.size > 0 or dbias.size > 0
    partials = cuda.device_array((2, grid[1] if reduce else 0, channels), np.float64)
    if reduce and x.size > 0:
        _grad_moments[grid, THREADS_PER_BLOCK](dy, x, mean, nsc, lanes, partials)
    coefficients = cuda.device_array((3, channels), np.float64)
    blocks, finish_lanes = _finish_grid(channels)
    _finish_grad[blocks, THREADS_PER_BLOCK](
        partials, weight, invstd, train, n * s, finish_lanes, coefficients, dweight, dbias
    )
    if dx.size > 0:
        _input_grad[grid, THREADS_PER_BLOCK](dy, x, mean, coefficients, nsc, lanes, dx)


def batch_norm_train_ncs(
    x, weight, bias, eps, momentum, running_mean, running_var, y, mean, invstd
):
    """Training forward (torch.native_batch_norm with ``training=True``) on an ``(N, C, S)``
    view: batch statistics into ``y``, ``mean``, ``invstd``, and the running stats updated with
    the unbiased variance."""
    _train(x, weight, bias, eps, momentum, running_mean, running_var, y, mean, invstd, False)


def batch_norm_train_nsc(
    x, weight, bias, eps, momentum, running_mean, running_var, y, mean, invstd
):
    """Training forward on an ``(N, S, C)`` view (channels-last), arguments as the ncs one."""
    _train(x, weight, bias, eps, momentum, running_mean, running_var, y, mean, invstd, True)


def batch_norm_eval_ncs(x, weight, bias, running_mean, running_var, eps, y):
    """Inference forward (torch.native_batch_norm with ``training=False``) on an ``(N, C, S)``
    view: ``y = x*scale + offset`` from the running stats."""
    _eval(x, weight, bias, running_mean, running_var, eps, y, False)


def batch_norm_eval_nsc(x, weight, bias, running_mean, running_var, eps, y):
    """Inference forward on an ``(N, S, C)`` view, arguments as the ncs one."""
    _eval(x, weight, bias, running_mean, running_var, eps, y, True)


def batch_norm_backward_ncs(dy, x, weight, mean, invstd, train, dx, dweight, dbias):
    """Backward (torch.native_batch_norm_backward) on ``(N, C, S)`` views of ``dy`` and ``x``.

    ``train`` says whether ``mean``/``invstd`` were the batch's own statistics (so they depend on
    ``x``) or running statistics (constants). ``dx``, ``dweight``, ``dbias`` of size 0 are skipped.
    """
    _backward(dy, x, weight, mean, invstd, train, dx, dweight, dbias, False)


def batch_norm_backward_nsc(dy, x, weight, mean, invstd, train, dx, dweight, dbias):
    """Backward on ``(N, S, C)`` views, arguments as the ncs one."""
    _backward(dy, x, weight, mean, invstd, train, dx, dweight, dbias, True)
