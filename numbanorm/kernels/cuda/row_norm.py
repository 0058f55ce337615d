"""Row-wise normalization (GroupNorm, InstanceNorm, LayerNorm, RMSNorm) on CUDA: the mirror of
``numbanorm.kernels.cpu.row_norm``, name for name and argument for argument, on numba device
arrays. That module's docstrings define what each kernel computes; the numerics are the same:
float64 statistics and gradient sums shifted by the row's first value, elementwise passes in the
input's dtype centring on the float64 mean split in two, ``dy*w - mean(dy*w)`` formed in float64.

Each public function is a host-side launcher. Sums are deterministic: each thread adds its
elements in order, blocks combine their threads with fixed shared-memory trees (``_tree_sum2``),
and partial sums go to scratch arrays that a later kernel adds up the same way; nothing uses
atomics, and the split depends on the shape alone, so results are the same bits on every run.

- LayerNorm and RMSNorm: a *segment* of threads (a warp for short rows, up to a block) per row
  computes the row's statistics and normalizes it while it is in cache; the backward does the
  same for ``dx``, and sums dweight and dbias down columns, a warp across the row (coalesced),
  blocks over chunks of rows, into per-chunk partials that a second kernel adds up.
- GroupNorm: the statistics and gradient sums of each channel of each sample go, in pieces,
  into partials ``(N, pieces, C)``: ``(N, C, S)`` views give each piece of a channel's positions
  a segment of threads; ``(N, S, C)`` views put a warp across channels (coalesced) and blocks
  over chunks of positions. A segment per (sample, group) adds up its partials into the group's
  statistics (or ``dx``'s coefficients), and elementwise kernels normalize or back-propagate;
  dweight and dbias are the partials' sums down columns.
"""

import math

import numpy as np
from numba import cuda

from numbanorm.kernels import config
from numbanorm.kernels.config import cuda_device, cuda_kernel
from numbanorm.kernels.cuda.device_math import inverse_sqrt, product

_THREADS = config.THREADS_PER_BLOCK
_WARP = 32
# A row gets about one thread per this many elements (a power of two from a warp to a block).
_ELEMENTS_PER_THREAD = 4
# Long channels and columns are split in pieces of at least this many elements, one block (or
# segment) each, while there are fewer than about _TARGET_BLOCKS blocks (enough to fill a large
# GPU). The launchers read both at each call: tests make the pieces small to split tiny inputs.
_SPLIT_ELEMENTS = 4096
_TARGET_BLOCKS = 1024


# Shared device functions.


@cuda_device
def _tree_sum2(sh1, sh2, a, b, span, unit):
    """The totals of ``a`` and ``b`` over a group of ``span`` threads (a power of two), every
    thread's group: threads ``t`` with the same ``t % unit`` and ``t // (unit * span)``.

    A fixed tree in shared memory (``sh1``, ``sh2``, a block long), so the same bits every run.
    Every thread of the block must call it.
    """
    t = cuda.threadIdx.x
    sh1[t] = a
    sh2[t] = b
    cuda.syncthreads()
    member = (t // unit) % span
    stride = span // 2
    while stride > 0:
        if member < stride:
            sh1[t] += sh1[t + stride * unit]
            sh2[t] += sh2[t + stride * unit]
        cuda.syncthreads()
        stride //= 2
    first = t - member * unit
    a = sh1[first]
    b = sh2[first]
    # Let every thread read the totals before a next call overwrites them.
    cuda.syncthreads()
    return a, b


@cuda_device
def _channel_piece(width, pieces, channels):
    """``(i, c, k, lane)``: the sample, channel and piece this thread's segment of ``width``
    threads takes in an ``(N, C, S)`` view cut in ``pieces`` per channel, and its lane."""
    q, lane = _segment(width)
    row = q // pieces
    i = row // channels
    return i, row - i * channels, q - row * pieces, lane


@cuda_device
def _segment(width):
    """``(piece, lane)``: which piece of work (a row, or part of one) this thread's segment of
    ``width`` consecutive threads takes, and the thread's place in the segment."""
    t = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    return t // width, t % width


@cuda_device
def _bounds(k, length, pieces):
    """Piece ``k`` of ``[0, length)`` cut in ``pieces`` (as the CPU kernels cut chunks)."""
    return k * length // pieces, (k + 1) * length // pieces


@cuda_device
def _param(param, k, default, like):
    """Element ``k`` of a per-channel or per-element parameter in the dtype of array ``like``;
    ``default`` if ``param`` has size 0."""
    if param.size > 0:
        return like.dtype.type(param[k])
    return like.dtype.type(default)


@cuda_device
def _split(value, like):
    """A float64 ``value`` as ``hi + lo`` in the dtype of ``like`` (see the CPU ``_split``)."""
    hi = like.dtype.type(value)
    return hi, like.dtype.type(value - hi)


@cuda_device
def _finish(s1, s2, shift, count, eps, rms):
    """A row's ``(mean, invstd)`` from its shifted sums over ``count`` elements; an empty row has
    mean 0 and invstd NaN (torch's ``0/0`` variance)."""
    if count == 0:
        return 0.0, math.nan
    if rms:
        return 0.0, inverse_sqrt(s2 / count + eps)
    delta = s1 / count
    var = max((s2 - s1 * delta) / count, 0.0)
    return shift + delta, inverse_sqrt(var + eps)


@cuda_device
def _input_grad_coefficients(sum_g, sum_gx, inv, count, rms):
    """``(k_x, m)`` of ``dx = (dy*w - m)*inv - (x - mean)*k_x`` (see the CPU function)."""
    if count == 0:
        return 0.0, 0.0
    k_x = inv * inv * inv * sum_gx / count
    return k_x, 0.0 if rms else sum_g / count


@cuda_device
def _column_tile(columns, lanes, pieces):
    """Where a column kernel's thread works: ``(outer, k, j, row, step)``.

    Blocks go over (outer index, piece ``k``, tile of ``lanes`` columns), tiles fastest; the
    block's threads are ``step`` rows of ``lanes`` threads, thread ``j`` on column ``j`` (so
    neighbouring threads read neighbouring columns), starting at row ``row`` of the piece.
    """
    tiles = (columns + lanes - 1) // lanes
    b = cuda.blockIdx.x
    outer = b // (pieces * tiles)
    rest = b - outer * pieces * tiles
    k = rest // tiles
    t = cuda.threadIdx.x
    j = (rest - k * tiles) * lanes + t % lanes
    return outer, k, j, t // lanes, cuda.blockDim.x // lanes


# Launch shapes, on the host.


def _pow2_at_least(n, limit):
    """The smallest power of two at least ``n`` (and 1), at most ``limit``."""
    p = 1
    while p < n and p < limit:
        p *= 2
    return p


def _segment_width(length):
    """Threads per segment for rows of ``length`` elements: about one per
    ``_ELEMENTS_PER_THREAD``, a power of two from a warp to a block."""
    return max(_WARP, _pow2_at_least(-(-length // _ELEMENTS_PER_THREAD), _THREADS))


def _column_shape(columns, rows):
    """``(lanes, step)`` of a column kernel: a power of two of threads across the columns, up to
    a warp, and as many rows of them as a block holds, but no more than ``rows`` needs."""
    lanes = _pow2_at_least(columns, _WARP)
    return lanes, _pow2_at_least(rows, _THREADS // lanes)


def _pieces(length, min_length, rows):
    """How many pieces each of ``rows`` rows of ``length`` splits into: pieces of at least
    ``min_length``, and no more than ``_TARGET_BLOCKS`` pieces in all unless the rows are more."""
    by_length = -(-length // max(min_length, 1))
    return max(1, min(by_length, -(-_TARGET_BLOCKS // max(rows, 1))))


def _launch(kernel, blocks, threads, *args):
    """``kernel[blocks, threads](*args)``; nothing for no blocks, which CUDA refuses."""
    if blocks > 0:
        kernel[blocks, threads](*args)


def _launch_segments(kernel, count, width, *args):
    """``kernel(width, *args)`` with a segment of ``width`` threads for each of ``count`` rows
    (or pieces), blocks of at most ``_THREADS``."""
    threads = min(_THREADS, count * width)
    _launch(kernel, -(-count * width // max(threads, 1)), threads, width, *args)


def _launch_columns(kernel, outer, pieces, columns, rows, *args):
    """``kernel(lanes, pieces, *args)`` on a block for each (``outer`` index, piece, tile of
    ``lanes`` of the ``columns``), of ``_column_shape(columns, rows)`` threads; ``rows``: the
    most rows a piece has."""
    lanes, step = _column_shape(columns, rows)
    tiles = -(-columns // lanes)
    _launch(kernel, outer * pieces * tiles, lanes * step, lanes, pieces, *args)


def _launch_elementwise(kernel, count, *args):
    """``kernel`` with a thread for each of ``count`` elements, blocks of at most ``_THREADS``."""
    threads = min(_THREADS, -(-count // _WARP) * _WARP)
    _launch(kernel, -(-count // max(threads, 1)), threads, *args)


# GroupNorm on either layout: each channel's sums, in pieces, into (N, pieces, C) partials.


@cuda_device
def _element(e, shape, nsc):
    """Flat index ``e`` of a C-ordered walk over ``(N, C, S)`` or ``(N, S, C)``: ``(i, c, p)``."""
    inner = shape[1] * shape[2]
    i = e // inner
    rest = e - i * inner
    a = rest // shape[2]
    b = rest - a * shape[2]
    if nsc:
        return i, b, a
    return i, a, b


@cuda_device
def _at(x, i, c, p, nsc):
    """Element (sample ``i``, channel ``c``, position ``p``) of an ncs or nsc view."""
    if nsc:
        return x[i, p, c]
    return x[i, c, p]


@cuda_device
def _group_shift(x, i, c0, nsc):
    """The shift of the group starting at channel ``c0`` of sample ``i``: its first value."""
    positions = x.shape[1] if nsc else x.shape[2]
    if positions == 0:
        return 0.0
    return np.float64(_at(x, i, c0, 0, nsc))


@cuda_kernel
def _channel_moments_ncs(width, x, groups, part1, part2):
    """Piece ``k`` of channel ``c`` of sample ``i`` of an ``(N, C, S)`` view, a segment each:
    the sums of ``d`` and ``d*d`` (``d = x - shift``, the group's shift) into ``part[i, k, c]``."""
    sh1 = cuda.shared.array(_THREADS, np.float64)
    sh2 = cuda.shared.array(_THREADS, np.float64)
    n, channels, s = x.shape
    pieces = part1.shape[1]
    per_group = channels // groups
    i, c, k, lane = _channel_piece(width, pieces, channels)
    s1 = 0.0
    s2 = 0.0
    if i < n:
        shift = _group_shift(x, i, c - c % per_group, False)
        start, stop = _bounds(k, s, pieces)
        for p in range(start + lane, stop, width):
            d = np.float64(x[i, c, p]) - shift
            s1 += d
            s2 += d * d
    s1, s2 = _tree_sum2(sh1, sh2, s1, s2, width, 1)
    if i < n and lane == 0:
        part1[i, k, c] = s1
        part2[i, k, c] = s2


@cuda_kernel
def _channel_moments_nsc(lanes, pieces, x, groups, part1, part2):
    """Chunk ``k`` of the positions of sample ``i`` of an ``(N, S, C)`` view, a warp across the
    channels: each channel's sums of ``d`` and ``d*d`` into ``part[i, k, c]``."""
    sh1 = cuda.shared.array(_THREADS, np.float64)
    sh2 = cuda.shared.array(_THREADS, np.float64)
    _, s, channels = x.shape
    per_group = channels // groups
    i, k, c, row, step = _column_tile(channels, lanes, pieces)
    s1 = 0.0
    s2 = 0.0
    if c < channels:
        shift = _group_shift(x, i, c - c % per_group, True)
        start, stop = _bounds(k, s, pieces)
        for p in range(start + row, stop, step):
            d = np.float64(x[i, p, c]) - shift
            s1 += d
            s2 += d * d
    s1, s2 = _tree_sum2(sh1, sh2, s1, s2, step, lanes)
    if row == 0 and c < channels:
        part1[i, k, c] = s1
        part2[i, k, c] = s2


@cuda_kernel
def _channel_grad_sums_ncs(width, dy, x, groups, mean, part_dy, part_dyx):
    """As ``_channel_moments_ncs``, the sums of ``dy`` and ``dy * (x - mean)``."""
    sh1 = cuda.shared.array(_THREADS, np.float64)
    sh2 = cuda.shared.array(_THREADS, np.float64)
    n, channels, s = x.shape
    pieces = part_dy.shape[1]
    per_group = channels // groups
    i, c, k, lane = _channel_piece(width, pieces, channels)
    sdy = 0.0
    sdyx = 0.0
    if i < n:
        mu = mean[i, c // per_group]
        start, stop = _bounds(k, s, pieces)
        for p in range(start + lane, stop, width):
            g = np.float64(dy[i, c, p])
            sdy += g
            sdyx += g * (np.float64(x[i, c, p]) - mu)
    sdy, sdyx = _tree_sum2(sh1, sh2, sdy, sdyx, width, 1)
    if i < n and lane == 0:
        part_dy[i, k, c] = sdy
        part_dyx[i, k, c] = sdyx


@cuda_kernel
def _channel_grad_sums_nsc(lanes, pieces, dy, x, groups, mean, part_dy, part_dyx):
    """As ``_channel_moments_nsc``, the sums of ``dy`` and ``dy * (x - mean)``."""
    sh1 = cuda.shared.array(_THREADS, np.float64)
    sh2 = cuda.shared.array(_THREADS, np.float64)
    _, s, channels = x.shape
    per_group = channels // groups
    i, k, c, row, step = _column_tile(channels, lanes, pieces)
    sdy = 0.0
    sdyx = 0.0
    if c < channels:
        mu = mean[i, c // per_group]
        start, stop = _bounds(k, s, pieces)
        for p in range(start + row, stop, step):
            g = np.float64(dy[i, p, c])
            sdy += g
            sdyx += g * (np.float64(x[i, p, c]) - mu)
    sdy, sdyx = _tree_sum2(sh1, sh2, sdy, sdyx, step, lanes)
    if row == 0 and c < channels:
        part_dy[i, k, c] = sdy
        part_dyx[i, k, c] = sdyx


def _channel_pieces(x, nsc):
    """How many pieces each channel of each sample goes in: a shape-only split."""
    if nsc:
        n, s, channels = x.shape
        lanes, _ = _column_shape(channels, s)
        return _pieces(s, -(-_SPLIT_ELEMENTS // lanes), n * -(-channels // lanes))
    n, channels, s = x.shape
    return _pieces(s, _SPLIT_ELEMENTS, n * channels)


def _channel_sums(ncs_kernel, nsc_kernel, x, nsc, *args):
    """Two ``(N, pieces, C)`` arrays of per-channel partials by ``ncs_kernel`` or ``nsc_kernel``
    (whose arguments are ``args``, then the two arrays)."""
    n = x.shape[0]
    s, channels = (x.shape[1], x.shape[2]) if nsc else (x.shape[2], x.shape[1])
    pieces = _channel_pieces(x, nsc)
    parts = (cuda.device_array((n, pieces, channels)), cuda.device_array((n, pieces, channels)))
    if nsc:
        _launch_columns(nsc_kernel, n, pieces, channels, -(-s // pieces), *args, *parts)
    else:
        width = _segment_width(-(-s // pieces))
        _launch_segments(ncs_kernel, n * channels * pieces, width, *args, *parts)
    return parts


# GroupNorm: a segment per (sample, group) adds up its channels' partials.


@cuda_device
def _group_entry(e, g, per_group):
    """Entry ``e`` of group ``g``'s partials, in their memory order (piece by piece, its
    channels within a piece): ``(k, c)``."""
    k = e // per_group
    return k, g * per_group + e - k * per_group


@cuda_kernel
def _group_statistics(width, x, groups, eps, nsc, part1, part2, mean, invstd):
    """``mean[i, g]``, ``invstd[i, g]`` from the partials of group ``g`` of sample ``i``."""
    sh1 = cuda.shared.array(_THREADS, np.float64)
    sh2 = cuda.shared.array(_THREADS, np.float64)
    n, pieces, channels = part1.shape
    per_group = channels // groups
    q, lane = _segment(width)
    i = q // groups
    g = q - i * groups
    s1 = 0.0
    s2 = 0.0
    if i < n:
        for e in range(lane, per_group * pieces, width):
            k, c = _group_entry(e, g, per_group)
            s1 += part1[i, k, c]
            s2 += part2[i, k, c]
    s1, s2 = _tree_sum2(sh1, sh2, s1, s2, width, 1)
    if i < n and lane == 0:
        count = per_group * (x.shape[1] if nsc else x.shape[2])
        shift = _group_shift(x, i, g * per_group, nsc)
        mean[i, g], invstd[i, g] = _finish(s1, s2, shift, count, eps, False)


@cuda_kernel
def _group_grad_coefficients(width, groups, weight, invstd, count, part_dy, part_dyx, m, k_x):
    """``dx``'s ``m[i, g]`` and ``k_x[i, g]`` (see ``_input_grad_coefficients``) from the
    group's sums of ``dy*w`` and ``dy*w*(x - mean)``, ``w`` its channels' weights."""
    sh1 = cuda.shared.array(_THREADS, np.float64)
    sh2 = cuda.shared.array(_THREADS, np.float64)
    n, pieces, channels = part_dy.shape
    per_group = channels // groups
    q, lane = _segment(width)
    i = q // groups
    g = q - i * groups
    sum_g = 0.0
    sum_gx = 0.0
    if i < n:
        for e in range(lane, per_group * pieces, width):
            k, c = _group_entry(e, g, per_group)
            w = _param(weight, c, 1.0, invstd)
            sum_g += product(w, part_dy[i, k, c])
            sum_gx += w * part_dyx[i, k, c]
    sum_g, sum_gx = _tree_sum2(sh1, sh2, sum_g, sum_gx, width, 1)
    if i < n and lane == 0:
        k_x[i, g], m[i, g] = _input_grad_coefficients(sum_g, sum_gx, invstd[i, g], count, False)


def _launch_groups(kernel, part, groups, *args):
    """``kernel`` with a segment per (sample, group) of ``(N, pieces, C)`` partials ``part``."""
    n, pieces, channels = part.shape
    _launch_segments(kernel, n * groups, _segment_width(channels // groups * pieces), *args)


# GroupNorm: elementwise passes, a thread per element in memory order, and dweight, dbias.


@cuda_kernel
def _group_normalize(x, groups, weight, bias, mean, invstd, nsc, y):
    """``y = ((x - hi) - lo) * (w * invstd) + b``."""
    e = cuda.grid(1)
    if e >= x.size:
        return
    i, c, p = _element(e, x.shape, nsc)
    g = c // (x.shape[2 if nsc else 1] // groups)
    hi, lo = _split(mean[i, g], x)
    scale = x.dtype.type(_param(weight, c, 1.0, mean) * invstd[i, g])
    value = ((_at(x, i, c, p, nsc) - hi) - lo) * scale + _param(bias, c, 0.0, x)
    if nsc:
        y[i, p, c] = value
    else:
        y[i, c, p] = value


@cuda_kernel
def _group_input_grad(dy, x, groups, weight, mean, invstd, m, k_x, nsc, dx):
    """``dx = (dy*w - m)*invstd - ((x - hi) - lo)*k_x``, ``dy*w - m`` in float64."""
    e = cuda.grid(1)
    if e >= x.size:
        return
    i, c, p = _element(e, x.shape, nsc)
    g = c // (x.shape[2 if nsc else 1] // groups)
    hi, lo = _split(mean[i, g], x)
    w = _param(weight, c, 1.0, mean)
    residual = x.dtype.type(product(np.float64(_at(dy, i, c, p, nsc)), w) - m[i, g])
    centred = (_at(x, i, c, p, nsc) - hi) - lo
    value = residual * x.dtype.type(invstd[i, g]) - centred * x.dtype.type(k_x[i, g])
    if nsc:
        dx[i, p, c] = value
    else:
        dx[i, c, p] = value


@cuda_kernel
def _group_param_grads(lanes, pieces, groups, invstd, part_dy, part_dyx, dweight, dbias):
    """``dweight[c]``, ``dbias[c]``: the sums over samples and pieces of ``part_dyx * invstd``
    and ``part_dy``; an output of size 0 is not computed. Mirrors the CPU ``_sum_samples``."""
    sh1 = cuda.shared.array(_THREADS, np.float64)
    sh2 = cuda.shared.array(_THREADS, np.float64)
    n, channel_pieces, channels = part_dy.shape
    per_group = channels // groups
    _, _, c, row, step = _column_tile(channels, lanes, pieces)
    sdw = 0.0
    sdb = 0.0
    if c < channels:
        for r in range(row, n * channel_pieces, step):
            i = r // channel_pieces
            k = r - i * channel_pieces
            sdw += part_dyx[i, k, c] * invstd[i, c // per_group]
            sdb += part_dy[i, k, c]
    sdw, sdb = _tree_sum2(sh1, sh2, sdw, sdb, step, lanes)
    if row == 0 and c < channels:
        if dweight.size > 0:
            dweight[c] = sdw
        if dbias.size > 0:
            dbias[c] = sdb


def _group_norm_forward(x, groups, weight, bias, eps, y, mean, invstd, nsc):
    part1, part2 = _channel_sums(_channel_moments_ncs, _channel_moments_nsc, x, nsc, x, groups)
    _launch_groups(_group_statistics, part1, groups, x, groups, eps, nsc, part1, part2, mean,
                   invstd)  # fmt: skip
    if y.size > 0:
        _launch_elementwise(_group_normalize, x.size, x, groups, weight, bias, mean, invstd, nsc,
                            y)  # fmt: skip


def _group_norm_backward(dy, x, groups, weight, mean, invstd, dx, dweight, dbias, nsc):
    part_dy, part_dyx = _channel_sums(_channel_grad_sums_ncs, _channel_grad_sums_nsc, x, nsc, dy,
                                      x, groups, mean)  # fmt: skip
    n, pieces, channels = part_dy.shape
    if dx.size > 0:
        m = cuda.device_array((n, groups))
        k_x = cuda.device_array((n, groups))
        count = channels // groups * (x.shape[1] if nsc else x.shape[2])
        _launch_groups(_group_grad_coefficients, part_dy, groups, groups, weight, invstd, count,
                       part_dy, part_dyx, m, k_x)  # fmt: skip
        _launch_elementwise(_group_input_grad, x.size, dy, x, groups, weight, mean, invstd, m,
                            k_x, nsc, dx)  # fmt: skip
    if dweight.size > 0 or dbias.size > 0:
        _launch_columns(_group_param_grads, 1, 1, channels, n * pieces, groups, invstd, part_dy,
                        part_dyx, dweight, dbias)  # fmt: skip


def group_norm_forward_ncs(x, groups, weight, bias, eps, y, mean, invstd):
    """GroupNorm forward on an ``(N, C, S)`` view: ``y``, and ``mean``, ``invstd`` per row
    (``torch.nn.functional.group_norm``; InstanceNorm with ``groups = C``)."""
    _group_norm_forward(x, groups, weight, bias, eps, y, mean, invstd, False)


def group_norm_forward_nsc(x, groups, weight, bias, eps, y, mean, invstd):
    """GroupNorm forward on an ``(N, S, C)`` view (channels-last), arguments as the ncs one."""
    _group_norm_forward(x, groups, weight, bias, eps, y, mean, invstd, True)


def group_norm_backward_ncs(dy, x, groups, weight, mean, invstd, dx, dweight, dbias):
    """GroupNorm backward on ``(N, C, S)`` views of ``dy`` and ``x`` (torch's
    ``native_group_norm_backward``); ``dx``, ``dweight``, ``dbias`` of size 0 are not
    computed."""
    _group_norm_backward(dy, x, groups, weight, mean, invstd, dx, dweight, dbias, False)


def group_norm_backward_nsc(dy, x, groups, weight, mean, invstd, dx, dweight, dbias):
    """GroupNorm backward on ``(N, S, C)`` views, arguments as the ncs one."""
    _group_norm_backward(dy, x, groups, weight, mean, invstd, dx, dweight, dbias, True)


# LayerNorm and RMSNorm, (R, D) rows: a segment of threads per row.


@cuda_kernel
def _layer_norm_rows(width, x, weight, bias, eps, rms, y, mean, invstd):
    """Row ``r``'s statistics, then ``y = ((x - hi) - lo) * (invstd * w) + b`` while the row is
    in cache; ``y`` of size 0 is not computed."""
    sh1 = cuda.shared.array(_THREADS, np.float64)
    sh2 = cuda.shared.array(_THREADS, np.float64)
    rows, d = x.shape
    r, lane = _segment(width)
    live = r < rows
    shift = 0.0
    if live and not rms and d > 0:
        shift = np.float64(x[r, 0])
    s1 = 0.0
    s2 = 0.0
    if live:
        for j in range(lane, d, width):
            v = np.float64(x[r, j]) - shift
            s1 += v
            s2 += v * v
    s1, s2 = _tree_sum2(sh1, sh2, s1, s2, width, 1)
    if not live:
        return
    mu, inv = _finish(s1, s2, shift, d, eps, rms)
    if lane == 0:
        mean[r] = mu
        invstd[r] = inv
    if y.size == 0:
        return
    hi, lo = _split(mu, x)
    a = x.dtype.type(inv)
    for j in range(lane, d, width):
        scale = a * _param(weight, j, 1.0, x)
        y[r, j] = ((x[r, j] - hi) - lo) * scale + _param(bias, j, 0.0, x)


def layer_norm_forward(x, weight, bias, eps, rms, y, mean, invstd):
    """LayerNorm (or, with ``rms``, RMSNorm) forward on ``(R, D)`` rows: ``y``, and ``mean``,
    ``invstd`` ``(R,)`` (``torch.nn.functional.layer_norm`` / ``rms_norm``); ``weight`` and
    ``bias`` are per element of a row."""
    rows, d = x.shape
    _launch_segments(_layer_norm_rows, rows, _segment_width(d), x, weight, bias, eps, rms, y,
                     mean, invstd)  # fmt: skip


@cuda_kernel
def _layer_norm_input_grad(width, dy, x, weight, mean, invstd, rms, dx):
    """Row ``r``'s sums of ``dy*w`` and ``dy*w*(x - mean)``, then
    ``dx = (dy*w - m)*invstd - ((x - hi) - lo)*k_x`` with ``dy*w - m`` in float64."""
    sh1 = cuda.shared.array(_THREADS, np.float64)
    sh2 = cuda.shared.array(_THREADS, np.float64)
    rows, d = x.shape
    r, lane = _segment(width)
    live = r < rows
    mu = 0.0
    sum_g = 0.0
    sum_gx = 0.0
    if live:
        mu = mean[r]
        for j in range(lane, d, width):
            g = product(np.float64(dy[r, j]), np.float64(_param(weight, j, 1.0, x)))
            sum_g += g
            sum_gx += g * (np.float64(x[r, j]) - mu)
    sum_g, sum_gx = _tree_sum2(sh1, sh2, sum_g, sum_gx, width, 1)
    if not live:
        return
    inv = invstd[r]
    k_x, m = _input_grad_coefficients(sum_g, sum_gx, inv, d, rms)
    hi, lo = _split(mu, x)
    a = x.dtype.type(inv)
    kx = x.dtype.type(k_x)
    for j in range(lane, d, width):
        w = np.float64(_param(weight, j, 1.0, x))
        residual = x.dtype.type(product(np.float64(dy[r, j]), w) - m)
        dx[r, j] = residual * a - ((x[r, j] - hi) - lo) * kx


@cuda_kernel
def _layer_norm_param_partials(lanes, pieces, dy, x, mean, invstd, part_dw, part_db):
    """Chunk ``k`` of the rows, a warp across the row: each column's sums of
    ``dy * (x - mean) * invstd`` and ``dy`` into ``part_dw[k, j]``, ``part_db[k, j]``."""
    sh1 = cuda.shared.array(_THREADS, np.float64)
    sh2 = cuda.shared.array(_THREADS, np.float64)
    rows, d = x.shape
    _, k, j, row, step = _column_tile(d, lanes, pieces)
    sdw = 0.0
    sdb = 0.0
    if j < d:
        start, stop = _bounds(k, rows, pieces)
        for r in range(start + row, stop, step):
            g = np.float64(dy[r, j])
            sdw += g * (np.float64(x[r, j]) - mean[r]) * invstd[r]
            sdb += g
    sdw, sdb = _tree_sum2(sh1, sh2, sdw, sdb, step, lanes)
    if row == 0 and j < d:
        part_dw[k, j] = sdw
        part_db[k, j] = sdb


@cuda_kernel
def _sum_rows(lanes, pieces, part_dw, part_db, dweight, dbias):
    """``dweight[j]``, ``dbias[j]``: the sums down columns of the chunks' partials; an output
    of size 0 is not computed. Mirrors the CPU ``_sum_samples``."""
    sh1 = cuda.shared.array(_THREADS, np.float64)
    sh2 = cuda.shared.array(_THREADS, np.float64)
    chunks, d = part_dw.shape
    _, _, j, row, step = _column_tile(d, lanes, pieces)
    sdw = 0.0
    sdb = 0.0
    if j < d:
        for k in range(row, chunks, step):
            sdw += part_dw[k, j]
            sdb += part_db[k, j]
    sdw, sdb = _tree_sum2(sh1, sh2, sdw, sdb, step, lanes)
    if row == 0 and j < d:
        if dweight.size > 0:
            dweight[j] = sdw
        if dbias.size > 0:
            dbias[j] = sdb


def layer_norm_backward(dy, x, weight, mean, invstd, rms, dx, dweight, dbias):
    """LayerNorm (or RMSNorm) backward on ``(R, D)`` rows of ``dy`` and ``x``; ``dx``,
    ``dweight``, ``dbias`` of size 0 are not computed."""
    rows, d = x.shape
    if dx.size > 0:
        _launch_segments(_layer_norm_input_grad, rows, _segment_width(d), dy, x, weight, mean,
                         invstd, rms, dx)  # fmt: skip
    if dweight.size > 0 or dbias.size > 0:
        lanes, _ = _column_shape(d, rows)
        chunks = _pieces(rows, -(-_SPLIT_ELEMENTS // lanes), -(-d // lanes))
        part_dw = cuda.device_array((chunks, d))
        part_db = cuda.device_array((chunks, d))
        _launch_columns(_layer_norm_param_partials, 1, chunks, d, -(-rows // chunks), dy, x,
                        mean, invstd, part_dw, part_db)  # fmt: skip
        _launch_columns(_sum_rows, 1, 1, d, chunks, part_dw, part_db, dweight, dbias)
