"""Row-wise normalization (GroupNorm, InstanceNorm, LayerNorm, RMSNorm) on the CPU.

Each kernel normalizes *rows*: the elements that share one mean and one ``invstd``.

- GroupNorm (and InstanceNorm, which is GroupNorm with ``groups = C``): a row is one sample's
  ``C // groups`` channels of one group, over all spatial positions. The input comes as a 3-D
  view, ``ncs`` = ``(N, C, S)`` (contiguous NCHW) or ``nsc`` = ``(N, S, C)`` (channels-last), never
  a copy; the affine parameters are per channel.
- LayerNorm and RMSNorm: a row is one row of a 2-D ``(R, D)`` view; the affine parameters are per
  element of the row. ``rms`` skips the centring (RMSNorm).

Any strides are correct; C-contiguous views are fast. Statistics and the sums of the backward
accumulate in float64 whatever the input dtype, shifted by the row's first value so that a large
mean offset does not cancel the variance away. The elementwise passes (``y`` and ``dx``) run in
the input's dtype, centring on the float64 mean split in two (see ``_split``) before scaling, so a
constant row gives exactly its bias; ``dx``'s ``dy*w - mean(dy*w)`` is formed in float64 before
the scaling by ``invstd``, so a one-element row's input gradient is exactly 0 for float32 input
(whose products are exact in float64; for float64 input a fused multiply-add can leave the
rounding error of ``dy*w``, a few ulps of ``dy*w*invstd``). ``weight`` and
``bias`` of size 0 mean "none" (weight 1, bias 0); an output of size 0 is not computed. ``mean``
and ``invstd`` are float64, one per row (``(N, groups)`` or ``(R,)``), with
``invstd = 1/sqrt(var + eps)``, ``var`` the biased variance (the mean square for RMSNorm, whose
``mean`` is 0); an empty row has mean 0 and invstd NaN, as in torch. Gradients of the weight and
bias sum over rows in per-chunk partials split by the shape alone, so results are the same bits
whatever the thread count.

Each public kernel has a serial twin, ``kernel.serial``, for inputs too small to split.
"""

import numpy as np
from numba import prange

from numbanorm.kernels.config import cpu_helper, cpu_kernel

# Reductions across rows and the channels-last passes go in chunks of about this many elements,
# each chunk into its own row of partials: the split depends on the shape only.
_CHUNK_ELEMENTS = 16384
_MAX_CHUNKS = 64
# Channels-last GroupNorm with at least this many samples runs one task per sample, which
# normalizes the sample right after summing it (reading it back from cache, not memory): enough
# tasks for the usual thread counts. Fewer samples are split in chunks, summed in one pass and
# normalized in another. Both sum the same partials in the same order: the same bits.
_SAMPLE_TASKS_MIN = 8
# The stretch of a row that the ncs GroupNorm forward normalizes while summing the same stretch of
# the next row: 256 elements (1 KiB of float32) stay in L1 between the two. 128 was as fast; 64
# lost to call overhead, 1024 to L1 misses.
_PIPELINE_ELEMENTS = 256


@cpu_helper
def _chunk_count(rows, width):
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(width, 1))
    return max(1, min((rows + rows_per_chunk - 1) // rows_per_chunk, _MAX_CHUNKS))


@cpu_helper
def _chunk_bounds(t, rows, chunks):
    return t * rows // chunks, (t + 1) * rows // chunks


@cpu_helper
def _param_vector(param, size, default, like):
    """A per-channel or per-element parameter in the dtype of array ``like``; ``default``
    everywhere if ``param`` has size 0."""
    out = np.full(size, default, like.dtype)
    if param.size > 0:
        for k in range(size):
            out[k] = param[k]
    return out


@cpu_helper
def _split(value, like):
    """A float64 ``value`` as ``hi + lo``, both in the dtype of array ``like``.

    ``(x - hi) - lo`` centres a value ``x`` of that dtype on a float64 mean with the dtype's
    relative accuracy however large the mean (``x - hi`` is exact near the mean), so the
    elementwise passes run in the input's dtype and a constant row still centres to exactly 0.
    """
    hi = like.dtype.type(value)
    return hi, like.dtype.type(value - hi)


# Statistics, shared by every kernel of the family.


@cpu_helper
def _sums(row, shift, s1, s2):
    """``s1``, ``s2`` plus the sums of ``d`` and ``d*d`` over ``row`` (``d = row - shift``)."""
    for j in range(row.size):
        d = np.float64(row[j]) - shift
        s1 += d
        s2 += d * d
    return s1, s2


@cpu_helper
def _finish(s1, s2, shift, count, eps, rms):
    """A row's ``(mean, invstd)`` from its shifted sums over ``count`` elements.

    An empty row has mean 0 and, as in torch (``0/0`` variance), invstd NaN.
    """
    if count == 0:
        return 0.0, np.nan
    if rms:
        return 0.0, 1.0 / np.sqrt(s2 / count + eps)
    delta = s1 / count
    var = max((s2 - s1 * delta) / count, 0.0)
    return shift + delta, 1.0 / np.sqrt(var + eps)


@cpu_helper
def _grad_sums(dy, x, mu):
    """The sums of ``dy`` and ``dy * (x - mu)`` over a row."""
    sdy = 0.0
    sdyx = 0.0
    for j in range(x.size):
        g = np.float64(dy[j])
        sdy += g
        sdyx += g * (np.float64(x[j]) - mu)
    return sdy, sdyx


@cpu_helper
def _input_grad_coefficients(sum_g, sum_gx, inv, count, rms):
    """``(k_x, m)`` of ``dx = (dy*w - m)*inv - (x - mean)*k_x`` for one row.

    ``sum_g`` and ``sum_gx`` are the row's sums of ``dy*w`` and ``dy*w*(x - mean)``: the input
    gradient loses its projections on the constant (``m``, the mean of ``dy*w``; 0 for RMSNorm)
    and on ``x - mean``. ``m`` is subtracted (in float64) before the scaling by ``inv``, which
    is large where the variance is small next to eps, so that a row whose ``dy*w`` are all
    equal, a one-element row for one, gets exactly 0 when those products are exact (float32
    input; see the module docstring for float64).
    """
    if count == 0:
        return 0.0, 0.0
    k_x = inv * inv * inv * sum_gx / count
    return k_x, 0.0 if rms else sum_g / count


# Elementwise passes over one contiguous stretch of a row, in the input's dtype.


@cpu_helper
def _normalize(x, hi, lo, scale, offset, y):
    for j in range(x.size):
        y[j] = ((x[j] - hi) - lo) * scale + offset


@cpu_helper
def _input_grad(dy, x, hi, lo, w, m, inv, k_x, dx):
    """``dx = (dy*w - m)*inv - ((x - hi) - lo)*k_x`` with float64 ``w`` and ``m``: ``dy*w - m``
    in float64 (exact for a row of float32 input whose ``dy*w`` are all equal, with or without
    fused multiply-adds: the products are exact), the rest in the input's dtype."""
    for j in range(x.size):
        dx[j] = x.dtype.type(np.float64(dy[j]) * w - m) * inv - ((x[j] - hi) - lo) * k_x


# GroupNorm, (N, C, S) view. The float32 forward splits the rows (sample, group) in contiguous
# ranges and pipelines each range: while it normalizes a row, stretch by stretch, it sums the same
# stretch of the next row, so that reading the next row from memory overlaps writing this one. The
# ranges depend on the shape alone, so the bits do not depend on the thread count.


@cpu_helper
def _group_start(t, groups, per_group):
    """Sample and first channel of row ``t``."""
    i = t // groups
    c0 = (t - i * groups) * per_group
    return i, c0


@cpu_helper
def _group_sums(x, i, c0, per_group, shift):
    """The shifted sums of row ``(i, c0 // per_group)``, stretch by stretch as in the pipeline."""
    s1 = 0.0
    s2 = 0.0
    s = x.shape[2]
    for c in range(c0, c0 + per_group):
        for j0 in range(0, s, _PIPELINE_ELEMENTS):
            s1, s2 = _sums(x[i, c, j0 : j0 + _PIPELINE_ELEMENTS], shift, s1, s2)
    return s1, s2


@cpu_helper
def _normalize_group(x, i, c0, per_group, hi, lo, inv, w, b, y):
    for c in range(c0, c0 + per_group):
        _normalize(x[i, c], hi, lo, x.dtype.type(w[c] * inv), b[c], y[i, c])


@cpu_helper
def _normalize_group_sum_next(x, i, c0, i_next, c0_next, per_group, hi, lo, inv, w, b, y, shift):
    """Normalize row ``(i, c0 // per_group)`` while summing the next one (as ``_group_sums``)."""
    s1 = 0.0
    s2 = 0.0
    s = x.shape[2]
    for cc in range(per_group):
        c = c0 + cc
        scale = x.dtype.type(w[c] * inv)
        for j0 in range(0, s, _PIPELINE_ELEMENTS):
            j1 = j0 + _PIPELINE_ELEMENTS
            _normalize(x[i, c, j0:j1], hi, lo, scale, b[c], y[i, c, j0:j1])
            s1, s2 = _sums(x[i_next, c0_next + cc, j0:j1], shift, s1, s2)
    return s1, s2


@cpu_helper
def _group_shift(x, i, c0):
    return np.float64(x[i, c0, 0]) if x.shape[2] > 0 and x.shape[1] > 0 else 0.0


@cpu_helper
def _group_statistics(x, i, c0, per_group, s1, s2, shift, count, eps, mean, invstd):
    """Store row ``(i, c0 // per_group)``'s mean and invstd; return ``(hi, lo, inv)``."""
    mu, inv = _finish(s1, s2, shift, count, eps, False)
    mean[i, c0 // per_group] = mu
    invstd[i, c0 // per_group] = inv
    hi, lo = _split(mu, x)
    return hi, lo, inv


@cpu_kernel
def group_norm_forward_ncs(x, groups, weight, bias, eps, y, mean, invstd):
    """GroupNorm forward on an ``(N, C, S)`` view: ``y``, and ``mean``, ``invstd`` per row.

    Float32 rows are pipelined (see above). Float64 rows are summed, then normalized, one row
    after the other: on a znver4 host, at (32, 64, 3136), 3.6-4.4 ms against 4.3-5.2 ms
    pipelined, in one process, alternating calls (float32 level either way; on an earlier AVX2
    host pipelining made float32 1.45x faster, float64 1.05x). Both sum each row in the same
    stretches, in the same order: the same bits.
    """
    n, channels, s = x.shape
    per_group = channels // groups
    count = per_group * s
    w = _param_vector(weight, channels, 1.0, mean)
    b = _param_vector(bias, channels, 0.0, x)
    tasks = n * groups
    if x.itemsize == 8:
        for t in prange(tasks):
            i, c0 = _group_start(t, groups, per_group)
            shift = _group_shift(x, i, c0)
            s1, s2 = _group_sums(x, i, c0, per_group, shift)
            hi, lo, inv = _group_statistics(x, i, c0, per_group, s1, s2, shift, count, eps,
                                            mean, invstd)  # fmt: skip
            _normalize_group(x, i, c0, per_group, hi, lo, inv, w, b, y)
        return
    ranges = _chunk_count(tasks, count)
    for k in prange(ranges):
        start, stop = _chunk_bounds(k, tasks, ranges)
        if start == stop:
            continue
        i, c0 = _group_start(start, groups, per_group)
        shift = _group_shift(x, i, c0)
        s1, s2 = _group_sums(x, i, c0, per_group, shift)
        for t in range(start, stop):
            i, c0 = _group_start(t, groups, per_group)
            hi, lo, inv = _group_statistics(x, i, c0, per_group, s1, s2, shift, count, eps,
                                            mean, invstd)  # fmt: skip
            if t + 1 == stop:
                _normalize_group(x, i, c0, per_group, hi, lo, inv, w, b, y)
            else:
                i_next, c0_next = _group_start(t + 1, groups, per_group)
                shift = _group_shift(x, i_next, c0_next)
                s1, s2 = _normalize_group_sum_next(x, i, c0, i_next, c0_next, per_group, hi, lo,
                                                   inv, w, b, y, shift)  # fmt: skip


@cpu_helper
def _sum_samples(parts, out):
    """``out[c] = sum over k of parts[k, c]``, in order of ``k``; nothing if ``out`` has size 0."""
    if out.size == 0:
        return
    for c in range(parts.shape[1]):
        total = 0.0
        for k in range(parts.shape[0]):
            total += parts[k, c]
        out[c] = total


@cpu_kernel
def group_norm_backward_ncs(dy, x, groups, weight, mean, invstd, dx, dweight, dbias):
    """GroupNorm backward on ``(N, C, S)`` views of ``dy`` and ``x``.

    ``dx``, ``dweight``, ``dbias`` of size 0 are not computed.
    """
    n, channels, s = x.shape
    per_group = channels // groups
    count = per_group * s
    w = _param_vector(weight, channels, 1.0, mean)
    # Each sample's share of dweight and dbias, summed over samples in a fixed order below.
    part_dw = np.zeros((n, channels))
    part_db = np.zeros((n, channels))
    for t in prange(n * groups):
        i = t // groups
        g = t - i * groups
        c0 = g * per_group
        mu = mean[i, g]
        inv = invstd[i, g]
        sum_g = 0.0
        sum_gx = 0.0
        for c in range(c0, c0 + per_group):
            sdy, sdyx = _grad_sums(dy[i, c], x[i, c], mu)
            part_db[i, c] = sdy
            part_dw[i, c] = sdyx * inv
            sum_g += w[c] * sdy
            sum_gx += w[c] * sdyx
        if dx.size > 0:
            k_x, m = _input_grad_coefficients(sum_g, sum_gx, inv, count, False)
            hi, lo = _split(mu, x)
            a = x.dtype.type(inv)
            kx = x.dtype.type(k_x)
            for c in range(c0, c0 + per_group):
                _input_grad(dy[i, c], x[i, c], hi, lo, w[c], m, a, kx, dx[i, c])
    _sum_samples(part_dw, dweight)
    _sum_samples(part_db, dbias)


# GroupNorm, (N, S, C) view: each sample's positions go in chunks, each chunk summing into its
# own row of per-channel partials; the channels of a group share the group's shift, so that their
# partials add up directly.


@cpu_helper
def _moment_rows(x, shift, p1, p2, start, stop):
    """Add the shifted sums ``d`` and ``d*d`` (``d = x - shift``) of rows ``[start, stop)`` of a
    2-D ``(S, C)`` slab to the per-channel partials.

    Loading and storing the float64 partials bounds the loop. Float32 rows go in pairs, loading
    and storing them once per two rows: 1.04-1.17 ms against 1.26-1.34 ms one row at a time, at
    (32, 3136, 64); four rows at a time varied from 1.12 to 1.42 ms. Float64 rows go one at a
    time: the whole forward at (32, 3136, 64) on a znver4 host 4.1-4.6 ms against 5.7-6.6 ms
    four rows at a time, as on an AVX2 host (2.06-2.10 ms against 3.0-3.2 ms for the sums); a
    znver5 host had four rows faster (the sums 1.19 against 2.19 ms).
    """
    j = start
    if x.itemsize == 4:
        while j + 2 <= stop:
            for c in range(x.shape[1]):
                d0 = np.float64(x[j, c]) - shift[c]
                d1 = np.float64(x[j + 1, c]) - shift[c]
                p1[c] += d0 + d1
                p2[c] += d0 * d0 + d1 * d1
            j += 2
    for r in range(j, stop):
        for c in range(x.shape[1]):
            d = np.float64(x[r, c]) - shift[c]
            p1[c] += d
            p2[c] += d * d


@cpu_helper
def _grad_moment_rows(dy, x, mu, p_dy, p_dyx, start, stop):
    """Add the sums of ``dy`` and ``dy * (x - mu)`` of rows ``[start, stop)`` of ``(S, C)`` slabs
    to the per-channel partials, one row at a time."""
    for r in range(start, stop):
        for c in range(x.shape[1]):
            g = np.float64(dy[r, c])
            p_dy[c] += g
            p_dyx[c] += g * (np.float64(x[r, c]) - mu[c])


@cpu_helper
def _sample_statistics_nsc(x, shift, part1, part2, groups, eps, w, mean, invstd, hi, lo, scale):
    """One sample's group statistics from its chunks' partials (``part1``, ``part2``, summed in
    chunk order), and its per-channel ``y = ((x - hi) - lo) * scale + b`` coefficients."""
    s, channels = x.shape
    per_group = channels // groups
    for g in range(groups):
        c0 = g * per_group
        s1 = 0.0
        s2 = 0.0
        for k in range(part1.shape[0]):
            for c in range(c0, c0 + per_group):
                s1 += part1[k, c]
                s2 += part2[k, c]
        mu, inv = _finish(s1, s2, shift[c0], per_group * s, eps, False)
        mean[g] = mu
        invstd[g] = inv
        for c in range(c0, c0 + per_group):
            hi[c], lo[c] = _split(mu, x)
            scale[c] = w[c] * inv


@cpu_helper
def _normalize_rows_nsc(x, hi, lo, scale, b, y, start, stop):
    """``y = ((x - hi) - lo) * scale + b`` on rows ``[start, stop)`` of ``(S, C)`` slabs."""
    for j in range(start, stop):
        for c in range(x.shape[1]):
            y[j, c] = ((x[j, c] - hi[c]) - lo[c]) * scale[c] + b[c]


@cpu_kernel
def group_norm_forward_nsc(x, groups, weight, bias, eps, y, mean, invstd):
    """GroupNorm forward on an ``(N, S, C)`` view (channels-last), arguments as the ncs kernel."""
    n, s, channels = x.shape
    per_group = channels // groups
    chunks = _chunk_count(s, channels)
    w = _param_vector(weight, channels, 1.0, mean)
    b = _param_vector(bias, channels, 0.0, x)
    shift = np.zeros((n, channels))
    if s > 0:
        for i in range(n):
            for c in range(channels):
                shift[i, c] = x[i, 0, (c // per_group) * per_group]
    part1 = np.zeros((n * chunks, channels))
    part2 = np.zeros((n * chunks, channels))
    hi = np.empty((n, channels), x.dtype)
    lo = np.empty((n, channels), x.dtype)
    scale = np.empty((n, channels), x.dtype)
    if n >= _SAMPLE_TASKS_MIN:
        for i in prange(n):
            rows = slice(i * chunks, (i + 1) * chunks)
            for k in range(chunks):
                start, stop = _chunk_bounds(k, s, chunks)
                _moment_rows(x[i], shift[i], part1[i * chunks + k], part2[i * chunks + k],
                             start, stop)  # fmt: skip
            _sample_statistics_nsc(x[i], shift[i], part1[rows], part2[rows], groups, eps, w,
                                   mean[i], invstd[i], hi[i], lo[i], scale[i])  # fmt: skip
            _normalize_rows_nsc(x[i], hi[i], lo[i], scale[i], b, y[i], 0, s)
        return
    for t in prange(n * chunks):
        i = t // chunks
        start, stop = _chunk_bounds(t - i * chunks, s, chunks)
        _moment_rows(x[i], shift[i], part1[t], part2[t], start, stop)
    for i in range(n):
        rows = slice(i * chunks, (i + 1) * chunks)
        _sample_statistics_nsc(x[i], shift[i], part1[rows], part2[rows], groups, eps, w,
                               mean[i], invstd[i], hi[i], lo[i], scale[i])  # fmt: skip
    for t in prange(n * chunks):
        i = t // chunks
        start, stop = _chunk_bounds(t - i * chunks, s, chunks)
        _normalize_rows_nsc(x[i], hi[i], lo[i], scale[i], b, y[i], start, stop)


@cpu_helper
def _sample_grad_coefficients_nsc(
    x, part_dy, part_dyx, groups, w, mu, invstd, part_dw, part_db, hi, lo, m, a, k_x
):
    """One sample's shares of dweight and dbias from its chunks' partials (summed in chunk
    order), and its per-channel ``dx = (dy * w - m) * a - ((x - hi) - lo) * k_x`` coefficients
    (see ``_input_grad``); ``mu`` is the sample's mean per channel."""
    s, channels = x.shape
    per_group = channels // groups
    for g in range(groups):
        c0 = g * per_group
        inv = invstd[g]
        sum_g = 0.0
        sum_gx = 0.0
        for c in range(c0, c0 + per_group):
            sdy = 0.0
            sdyx = 0.0
            for k in range(part_dy.shape[0]):
                sdy += part_dy[k, c]
                sdyx += part_dyx[k, c]
            part_db[c] = sdy
            part_dw[c] = sdyx * inv
            sum_g += w[c] * sdy
            sum_gx += w[c] * sdyx
        kx, mg = _input_grad_coefficients(sum_g, sum_gx, inv, per_group * s, False)
        for c in range(c0, c0 + per_group):
            hi[c], lo[c] = _split(mu[c], x)
            m[c] = mg
            a[c] = inv
            k_x[c] = kx


@cpu_helper
def _input_grad_rows_nsc(dy, x, w, hi, lo, m, a, k_x, dx, start, stop):
    """``dx`` on rows ``[start, stop)`` of ``(S, C)`` slabs, as ``_input_grad``."""
    for j in range(start, stop):
        for c in range(x.shape[1]):
            residual = x.dtype.type(np.float64(dy[j, c]) * w[c] - m[c])
            dx[j, c] = residual * a[c] - ((x[j, c] - hi[c]) - lo[c]) * k_x[c]


@cpu_kernel
def group_norm_backward_nsc(dy, x, groups, weight, mean, invstd, dx, dweight, dbias):
    """GroupNorm backward on ``(N, S, C)`` views, arguments as the ncs kernel."""
    n, s, channels = x.shape
    per_group = channels // groups
    chunks = _chunk_count(s, channels)
    w = _param_vector(weight, channels, 1.0, mean)
    mu = np.empty((n, channels))
    for i in range(n):
        for c in range(channels):
            mu[i, c] = mean[i, c // per_group]
    part_dy = np.zeros((n * chunks, channels))
    part_dyx = np.zeros((n * chunks, channels))
    part_dw = np.zeros((n, channels))
    part_db = np.zeros((n, channels))
    hi = np.empty((n, channels), x.dtype)
    lo = np.empty((n, channels), x.dtype)
    m = np.empty((n, channels))
    a = np.empty((n, channels), x.dtype)
    k_x = np.empty((n, channels), x.dtype)
    if n >= _SAMPLE_TASKS_MIN:
        for i in prange(n):
            rows = slice(i * chunks, (i + 1) * chunks)
            for k in range(chunks):
                start, stop = _chunk_bounds(k, s, chunks)
                _grad_moment_rows(dy[i], x[i], mu[i], part_dy[i * chunks + k],
                                  part_dyx[i * chunks + k], start, stop)  # fmt: skip
            _sample_grad_coefficients_nsc(x[i], part_dy[rows], part_dyx[rows], groups, w, mu[i],
                                          invstd[i], part_dw[i], part_db[i], hi[i], lo[i], m[i],
                                          a[i], k_x[i])  # fmt: skip
            if dx.size > 0:
                _input_grad_rows_nsc(dy[i], x[i], w, hi[i], lo[i], m[i], a[i], k_x[i], dx[i], 0, s)
    else:
        for t in prange(n * chunks):
            i = t // chunks
            start, stop = _chunk_bounds(t - i * chunks, s, chunks)
            _grad_moment_rows(dy[i], x[i], mu[i], part_dy[t], part_dyx[t], start, stop)
        for i in range(n):
            rows = slice(i * chunks, (i + 1) * chunks)
            _sample_grad_coefficients_nsc(x[i], part_dy[rows], part_dyx[rows], groups, w, mu[i],
                                          invstd[i], part_dw[i], part_db[i], hi[i], lo[i], m[i],
                                          a[i], k_x[i])  # fmt: skip
        if dx.size > 0:
            for t in prange(n * chunks):
                i = t // chunks
                start, stop = _chunk_bounds(t - i * chunks, s, chunks)
                _input_grad_rows_nsc(dy[i], x[i], w, hi[i], lo[i], m[i], a[i], k_x[i], dx[i],
                                     start, stop)  # fmt: skip
    _sum_samples(part_dw, dweight)
    _sum_samples(part_db, dbias)


# LayerNorm and RMSNorm, (R, D) rows: one task per row in the forward; the backward takes rows in
# chunks, each chunk adding its rows' shares of dweight and dbias to its own row of partials.


@cpu_kernel
def layer_norm_forward(x, weight, bias, eps, rms, y, mean, invstd):
    """LayerNorm (or, with ``rms``, RMSNorm) forward on ``(R, D)`` rows: ``y``, and ``mean``,
    ``invstd`` ``(R,)``; ``weight`` and ``bias`` are per element of a row."""
    rows, d = x.shape
    w = _param_vector(weight, d, 1.0, x)
    b = _param_vector(bias, d, 0.0, x)
    for r in prange(rows):
        shift = 0.0 if rms or d == 0 else np.float64(x[r, 0])
        s1, s2 = _sums(x[r], shift, 0.0, 0.0)
        mu, inv = _finish(s1, s2, shift, d, eps, rms)
        mean[r] = mu
        invstd[r] = inv
        hi, lo = _split(mu, x)
        a = x.dtype.type(inv)
        for j in range(d):
            y[r, j] = ((x[r, j] - hi) - lo) * (a * w[j]) + b[j]


@cpu_kernel
def layer_norm_backward(dy, x, weight, mean, invstd, rms, dx, dweight, dbias):
    """LayerNorm (or RMSNorm) backward on ``(R, D)`` rows of ``dy`` and ``x``.

    ``dx``, ``dweight``, ``dbias`` of size 0 are not computed. Each row is read twice, the second
    time from cache: once for its sums and its shares of dweight and dbias (always formed: one
    pass for all three is 20% faster than skipping the unwanted ones in passes of their own), once
    for ``dx``.
    """
    rows, d = x.shape
    w = _param_vector(weight, d, 1.0, x)
    chunks = _chunk_count(rows, d)
    part_dw = np.zeros((chunks, d))
    part_db = np.zeros((chunks, d))
    for t in prange(chunks):
        start, stop = _chunk_bounds(t, rows, chunks)
        chunk_dw = part_dw[t]
        chunk_db = part_db[t]
        for r in range(start, stop):
            mu = mean[r]
            inv = invstd[r]
            sum_g = 0.0
            sum_gx = 0.0
            for j in range(d):
                g = np.float64(dy[r, j])
                centred = np.float64(x[r, j]) - mu
                scaled = g * w[j]
                sum_g += scaled
                sum_gx += scaled * centred
                chunk_dw[j] += g * centred * inv
                chunk_db[j] += g
            if dx.size > 0:
                k_x, m = _input_grad_coefficients(sum_g, sum_gx, inv, d, rms)
                hi, lo = _split(mu, x)
                a = x.dtype.type(inv)
                kx = x.dtype.type(k_x)
                for j in range(d):
                    residual = x.dtype.type(np.float64(dy[r, j]) * w[j] - m)
                    dx[r, j] = residual * a - ((x[r, j] - hi) - lo) * kx
    _sum_samples(part_dw, dweight)
    _sum_samples(part_db, dbias)
