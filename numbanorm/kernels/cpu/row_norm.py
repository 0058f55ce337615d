"""Row-wise normalization (GroupNorm, InstanceNorm, LayerNorm, RMSNorm) on the CPU.

Each kernel normalizes *rows*: the elements that share one mean and one ``invstd``.

- GroupNorm (and InstanceNorm, which is GroupNorm with ``groups = C``): a row is one sample's
  ``C // groups`` channels of one group, over all spatial positions. The input comes as a 3-D
  view, ``ncs`` = ``(N, C, S)`` (contiguous NCHW) or ``nsc`` = ``(N, S, C)`` (channels-last), never
  a copy; the affine parameters are per channel.
- LayerNorm and RMSNorm: a row is one row of a 2-D ``(R, D)`` view; the affine parameters are per
  element of the row. ``rms`` skips the centring (RMSNorm).

Any strides are correct; C-contiguous views are fast. Statistics accumulate in float64 whatever
the input dtype, shifted by the row's first value so that a large mean offset does not cancel the
variance away; every output is computed in float64 before its final rounding, and centring comes
before scaling, so a constant row gives exactly its bias. ``weight`` and ``bias`` of size 0 mean
"none" (weight 1, bias 0); an output of size 0 is not computed. ``mean`` and ``invstd`` are
float64, one per row (``(N, groups)`` or ``(R,)``), with ``invstd = 1/sqrt(var + eps)``, ``var``
the biased variance (the mean square for RMSNorm, whose ``mean`` is 0); an empty row has mean 0
and invstd 0. Gradients of the weight and bias sum over rows in per-chunk partials split by the
shape alone, so results are the same bits whatever the thread count.

Each public kernel has a serial twin, ``kernel.serial``, for inputs too small to split.
"""

import numpy as np
from numba import prange

from numbanorm.kernels.config import cpu_helper, cpu_kernel

# Reductions across rows and the channels-last passes go in chunks of about this many elements,
# each chunk into its own row of partials: the split depends on the shape only.
_CHUNK_ELEMENTS = 16384
_MAX_CHUNKS = 64


@cpu_helper
def _chunk_count(rows, width):
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(width, 1))
    return max(1, min((rows + rows_per_chunk - 1) // rows_per_chunk, _MAX_CHUNKS))


@cpu_helper
def _chunk_bounds(t, rows, chunks):
    return t * rows // chunks, (t + 1) * rows // chunks


@cpu_helper
def _param_vector(param, size, default):
    """A per-channel or per-element parameter in float64; ``default`` everywhere if size 0."""
    out = np.full(size, default)
    if param.size > 0:
        for k in range(size):
            out[k] = param[k]
    return out


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
    """A row's ``(mean, invstd)`` from its shifted sums over ``count`` elements."""
    if count == 0:
        return 0.0, 0.0
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
    """``(k_x, k_0)`` of ``dx = dy*w*inv - (x - mean)*k_x - k_0`` for one row.

    ``sum_g`` and ``sum_gx`` are the row's sums of ``dy*w`` and ``dy*w*(x - mean)``: the input
    gradient loses its projections on the constant (not for RMSNorm) and on ``x - mean``.
    """
    if count == 0:
        return 0.0, 0.0
    k_x = inv * inv * inv * sum_gx / count
    return k_x, 0.0 if rms else inv * sum_g / count


# GroupNorm, (N, C, S) view: one task per row (sample, group), read once from memory for its
# statistics and again, from cache, to normalize it.


@cpu_kernel
def group_norm_forward_ncs(x, groups, weight, bias, eps, y, mean, invstd):
    """GroupNorm forward on an ``(N, C, S)`` view: ``y``, and ``mean``, ``invstd`` per row."""
    n, channels, s = x.shape
    per_group = channels // groups
    count = per_group * s
    w = _param_vector(weight, channels, 1.0)
    b = _param_vector(bias, channels, 0.0)
    for t in prange(n * groups):
        i = t // groups
        g = t - i * groups
        c0 = g * per_group
        shift = np.float64(x[i, c0, 0]) if count > 0 else 0.0
        s1 = 0.0
        s2 = 0.0
        for c in range(c0, c0 + per_group):
            s1, s2 = _sums(x[i, c], shift, s1, s2)
        mu, inv = _finish(s1, s2, shift, count, eps, False)
        mean[i, g] = mu
        invstd[i, g] = inv
        for c in range(c0, c0 + per_group):
            scale = w[c] * inv
            offset = b[c]
            for j in range(s):
                y[i, c, j] = (np.float64(x[i, c, j]) - mu) * scale + offset


@cpu_kernel
def group_norm_backward_ncs(dy, x, groups, weight, mean, invstd, dx, dweight, dbias):
    """GroupNorm backward on ``(N, C, S)`` views of ``dy`` and ``x``.

    ``dx``, ``dweight``, ``dbias`` of size 0 are not computed.
    """
    n, channels, s = x.shape
    per_group = channels // groups
    count = per_group * s
    w = _param_vector(weight, channels, 1.0)
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
            k_x, k_0 = _input_grad_coefficients(sum_g, sum_gx, inv, count, False)
            for c in range(c0, c0 + per_group):
                k_dy = w[c] * inv
                for j in range(s):
                    dx[i, c, j] = (
                        np.float64(dy[i, c, j]) * k_dy - (np.float64(x[i, c, j]) - mu) * k_x - k_0
                    )
    _sum_samples(part_dw, dweight)
    _sum_samples(part_db, dbias)


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


# GroupNorm, (N, S, C) view: each sample's positions go in chunks, each chunk summing into its
# own row of per-channel partials; the channels of a group share the group's shift, so that their
# partials add up directly.


@cpu_helper
def _moment_rows(x, shift, p1, p2, start, stop):
    """Add the shifted sums ``d`` and ``d*d`` (``d = x - shift``) of rows ``[start, stop)`` of a
    2-D ``(S, C)`` slab to the per-channel partials; four rows at a time, so that the partials are
    loaded and stored once per four rows."""
    r = start
    while r + 4 <= stop:
        for c in range(x.shape[1]):
            k = shift[c]
            d0 = np.float64(x[r, c]) - k
            d1 = np.float64(x[r + 1, c]) - k
            d2 = np.float64(x[r + 2, c]) - k
            d3 = np.float64(x[r + 3, c]) - k
            p1[c] += (d0 + d1) + (d2 + d3)
            p2[c] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        r += 4
    for rest in range(r, stop):
        for c in range(x.shape[1]):
            d = np.float64(x[rest, c]) - shift[c]
            p1[c] += d
            p2[c] += d * d


@cpu_helper
def _grad_moment_rows(dy, x, mu, p_dy, p_dyx, start, stop):
    """Add the sums of ``dy`` and ``dy * (x - mu)`` of rows ``[start, stop)`` of ``(S, C)`` slabs
    to the per-channel partials, four rows at a time."""
    r = start
    while r + 4 <= stop:
        for c in range(x.shape[1]):
            m = mu[c]
            g0 = np.float64(dy[r, c])
            g1 = np.float64(dy[r + 1, c])
            g2 = np.float64(dy[r + 2, c])
            g3 = np.float64(dy[r + 3, c])
            p_dy[c] += (g0 + g1) + (g2 + g3)
            p_dyx[c] += (g0 * (np.float64(x[r, c]) - m) + g1 * (np.float64(x[r + 1, c]) - m)) + (
                g2 * (np.float64(x[r + 2, c]) - m) + g3 * (np.float64(x[r + 3, c]) - m)
            )
        r += 4
    for rest in range(r, stop):
        for c in range(x.shape[1]):
            g = np.float64(dy[rest, c])
            p_dy[c] += g
            p_dyx[c] += g * (np.float64(x[rest, c]) - mu[c])


@cpu_kernel
def group_norm_forward_nsc(x, groups, weight, bias, eps, y, mean, invstd):
    """GroupNorm forward on an ``(N, S, C)`` view (channels-last), arguments as the ncs kernel."""
    n, s, channels = x.shape
    per_group = channels // groups
    count = per_group * s
    chunks = _chunk_count(s, channels)
    b = _param_vector(bias, channels, 0.0)
    w = _param_vector(weight, channels, 1.0)
    shift = np.zeros((n, channels))
    if s > 0:
        for i in range(n):
            for c in range(channels):
                shift[i, c] = x[i, 0, (c // per_group) * per_group]
    part1 = np.zeros((n * chunks, channels))
    part2 = np.zeros((n * chunks, channels))
    for t in prange(n * chunks):
        i = t // chunks
        start, stop = _chunk_bounds(t - i * chunks, s, chunks)
        _moment_rows(x[i], shift[i], part1[t], part2[t], start, stop)
    mu_c = np.empty((n, channels))
    scale = np.empty((n, channels))
    for i in range(n):
        for g in range(groups):
            c0 = g * per_group
            s1 = 0.0
            s2 = 0.0
            for k in range(i * chunks, (i + 1) * chunks):
                for c in range(c0, c0 + per_group):
                    s1 += part1[k, c]
                    s2 += part2[k, c]
            mu, inv = _finish(s1, s2, shift[i, c0], count, eps, False)
            mean[i, g] = mu
            invstd[i, g] = inv
            for c in range(c0, c0 + per_group):
                mu_c[i, c] = mu
                scale[i, c] = w[c] * inv
    for t in prange(n * chunks):
        i = t // chunks
        start, stop = _chunk_bounds(t - i * chunks, s, chunks)
        for j in range(start, stop):
            for c in range(channels):
                y[i, j, c] = (np.float64(x[i, j, c]) - mu_c[i, c]) * scale[i, c] + b[c]


@cpu_kernel
def group_norm_backward_nsc(dy, x, groups, weight, mean, invstd, dx, dweight, dbias):
    """GroupNorm backward on ``(N, S, C)`` views, arguments as the ncs kernel."""
    n, s, channels = x.shape
    per_group = channels // groups
    count = per_group * s
    chunks = _chunk_count(s, channels)
    w = _param_vector(weight, channels, 1.0)
    mu_c = np.empty((n, channels))
    for i in range(n):
        for c in range(channels):
            mu_c[i, c] = mean[i, c // per_group]
    part_dy = np.zeros((n * chunks, channels))
    part_dyx = np.zeros((n * chunks, channels))
    for t in prange(n * chunks):
        i = t // chunks
        start, stop = _chunk_bounds(t - i * chunks, s, chunks)
        _grad_moment_rows(dy[i], x[i], mu_c[i], part_dy[t], part_dyx[t], start, stop)
    part_dw = np.zeros((n, channels))
    part_db = np.zeros((n, channels))
    k_dy = np.empty((n, channels))
    k_x = np.empty((n, channels))
    k_0 = np.empty((n, channels))
    for i in range(n):
        for g in range(groups):
            c0 = g * per_group
            inv = invstd[i, g]
            sum_g = 0.0
            sum_gx = 0.0
            for c in range(c0, c0 + per_group):
                sdy = 0.0
                sdyx = 0.0
                for k in range(i * chunks, (i + 1) * chunks):
                    sdy += part_dy[k, c]
                    sdyx += part_dyx[k, c]
                part_db[i, c] = sdy
                part_dw[i, c] = sdyx * inv
                sum_g += w[c] * sdy
                sum_gx += w[c] * sdyx
            kx, k0 = _input_grad_coefficients(sum_g, sum_gx, inv, count, False)
            for c in range(c0, c0 + per_group):
                k_dy[i, c] = w[c] * inv
                k_x[i, c] = kx
                k_0[i, c] = k0
    _sum_samples(part_dw, dweight)
    _sum_samples(part_db, dbias)
    if dx.size > 0:
        for t in prange(n * chunks):
            i = t // chunks
            start, stop = _chunk_bounds(t - i * chunks, s, chunks)
            for j in range(start, stop):
                for c in range(channels):
                    dx[i, j, c] = (
                        np.float64(dy[i, j, c]) * k_dy[i, c]
                        - (np.float64(x[i, j, c]) - mu_c[i, c]) * k_x[i, c]
                        - k_0[i, c]
                    )
