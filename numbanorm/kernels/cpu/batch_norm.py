"""Channel-wise normalization (BatchNorm) on the CPU: ``@njit(parallel=True)`` kernels.

Every kernel takes the input as a 3-D view in one of two layouts, neither of them a copy of a
contiguous NCHW or channels-last tensor:

- ``ncs``: shape ``(N, C, S)``, ``S`` the product of the spatial sizes (contiguous NCHW);
- ``nsc``: shape ``(N, S, C)`` (channels-last, and 2-D ``(N, C)`` input with ``S = 1``).

Any strides are correct; C-contiguous views are fast. Statistics accumulate in float64 whatever
the input dtype, shifted by the channel's first value so that a large mean offset does not cancel
the variance away, and every output is computed in float64 before its final rounding, but for the
eval forward's channels near zero mean, which run in the input's dtype as torch's (see
``_EVAL_NATIVE_MAX_MEAN``). Arguments
that are optional in torch are arrays here: ``weight`` and ``bias`` are always given (ones and
zeros without affine), and an output or running buffer of size 0 is neither computed nor
updated. ``mean`` and ``invstd`` are float64 ``(C,)`` arrays: written by the training forward,
read by the backward.

Each public kernel has a serial twin, ``kernel.serial``, for inputs too small to split.
"""

import numpy as np
from numba import prange

from numbanorm.kernels.config import cpu_helper, cpu_kernel

# Channels-last rows are summed in chunks of about this many elements, each chunk into its own
# row of partials. The split depends on the shape only, not on the thread count, so results are
# the same bits whatever NUMBA_NUM_THREADS is.
_CHUNK_ELEMENTS = 16384
_MAX_CHUNKS = 256
# An eval channel whose running mean lies within this many standard deviations (sqrt(var + eps))
# of 0 runs in the input's dtype, as torch's does: rounding scale and offset to float32 then costs
# at most about 2*8 + 1 float32 ulps of |weight| in y, and the pass is a quarter faster than in
# float64. A channel further out (a large mean offset, whose float32 offset would cancel most of
# y's digits) or with non-finite float32 coefficients runs in float64, rounded once at the end.
# Coefficients exact in the input's dtype (always, for float64 input) make the two passes one.
_EVAL_NATIVE_MAX_MEAN = 8.0


@cpu_helper
def _chunk_count(rows, channels):
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(channels, 1))
    return min((rows + rows_per_chunk - 1) // rows_per_chunk, _MAX_CHUNKS)


@cpu_helper
def _chunk_bounds(t, rows, chunks):
    return t * rows // chunks, (t + 1) * rows // chunks


@cpu_helper
def _finish_channel(
    c, s1, s2, shift, count, weight, eps, momentum, running_mean, running_var, mean, invstd
):
    """Turn one channel's shifted sums into mean/invstd, update its running stats.

    Returns the float64 ``scale`` with ``y = (x - mean) * scale + bias``: centring first keeps a
    constant channel at exactly ``bias`` however large its mean.
    """
    if count == 0:
        mean[c] = 0.0
        invstd[c] = 0.0
        return 0.0
    delta = s1 / count
    var = max((s2 - s1 * delta) / count, 0.0)
    mu = shift + delta
    inv = 1.0 / np.sqrt(var + eps)
    mean[c] = mu
    invstd[c] = inv
    if running_mean.size > 0:
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mu
        unbiased = var * count / (count - 1)
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * unbiased
    return weight[c] * inv


@cpu_helper
def _column_sum(part, c):
    """Column ``c`` of the partials ``part``, added in row order. A helper, not ``.sum()``: in a
    parallel kernel numba turns ``.sum()`` into a parallel reduction of its own, one launch (and
    thread wake-up) per channel, which cost more than the whole channels-last pass."""
    total = 0.0
    for t in range(part.shape[0]):
        total += part[t, c]
    return total


@cpu_helper
def _row(r, s):
    i = r // s
    return i, r - i * s


# The channels-last reductions can take rows four at a time: the per-channel partials are then
# loaded and stored once per four rows instead of once per row, which is what bounds the loop.


@cpu_helper
def _moment_rows(x, shift, p1, p2, start, stop):
    """Add the shifted sums ``d`` and ``d*d`` (``d = x - shift``) of rows ``[start, stop)``.

    Float32 rows go four at a time: at (32, 3136, 64), 1.1 ms against 1.4 ms one at a time (and
    0.98 against 1.33 ms on a znver4 host). Float64 rows go one at a time: on a znver4 host
    1.71-2.09 ms against 2.76-3.25 ms four at a time, as on an AVX2 host (2.4 against 3.5-3.8
    ms); a znver5 host had four rows 1.20-1.25x faster in the whole forward.
    """
    s = x.shape[1]
    r = start
    if x.itemsize == 4:
        while r + 4 <= stop:
            i0, j0 = _row(r, s)
            i1, j1 = _row(r + 1, s)
            i2, j2 = _row(r + 2, s)
            i3, j3 = _row(r + 3, s)
            for c in range(x.shape[2]):
                k = shift[c]
                d0 = np.float64(x[i0, j0, c]) - k
                d1 = np.float64(x[i1, j1, c]) - k
                d2 = np.float64(x[i2, j2, c]) - k
                d3 = np.float64(x[i3, j3, c]) - k
                p1[c] += (d0 + d1) + (d2 + d3)
                p2[c] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
            r += 4
    for rest in range(r, stop):
        i, j = _row(rest, s)
        for c in range(x.shape[2]):
            d = np.float64(x[i, j, c]) - shift[c]
            p1[c] += d
            p2[c] += d * d


@cpu_helper
def _grad_moment_rows(dy, x, mean, p_dy, p_dyx, start, stop):
    """Add the sums of ``dy`` and ``dy * (x - mean)`` of rows ``[start, stop)``."""
    s = x.shape[1]
    r = start
    while r + 4 <= stop:
        i0, j0 = _row(r, s)
        i1, j1 = _row(r + 1, s)
        i2, j2 = _row(r + 2, s)
        i3, j3 = _row(r + 3, s)
        for c in range(x.shape[2]):
            mu = mean[c]
            g0 = np.float64(dy[i0, j0, c])
            g1 = np.float64(dy[i1, j1, c])
            g2 = np.float64(dy[i2, j2, c])
            g3 = np.float64(dy[i3, j3, c])
            p_dy[c] += (g0 + g1) + (g2 + g3)
            p_dyx[c] += (
                g0 * (np.float64(x[i0, j0, c]) - mu) + g1 * (np.float64(x[i1, j1, c]) - mu)
            ) + (g2 * (np.float64(x[i2, j2, c]) - mu) + g3 * (np.float64(x[i3, j3, c]) - mu))
        r += 4
    for rest in range(r, stop):
        i, j = _row(rest, s)
        for c in range(x.shape[2]):
            g = np.float64(dy[i, j, c])
            p_dy[c] += g
            p_dyx[c] += g * (np.float64(x[i, j, c]) - mean[c])


@cpu_helper
def _normalize_nsc_rows(x, mean, scale, bias, y, start, stop):
    """``y = (x - mean)*scale + bias`` on rows ``[start, stop)``, each row a 1-D slice, its
    position carried from the last instead of divided out: float64 at (32, 3136, 64) on a znver4
    host 2.66 against 3.34 ms (a plain-store pass 2.60 ms), float32 level."""
    s = x.shape[1]
    i, j = _row(start, s)
    for _ in range(start, stop):
        x_row = x[i, j]
        y_row = y[i, j]
        for c in range(x.shape[2]):
            y_row[c] = (np.float64(x_row[c]) - mean[c]) * scale[c] + bias[c]
        j += 1
        if j == s:
            j = 0
            i += 1


@cpu_helper
def _affine(x, scale, offset, y):
    """``y = x*scale + offset`` along one stretch, in the wider of the dtypes of ``x`` and
    ``scale``."""
    for j in range(x.size):
        y[j] = x[j] * scale + offset


@cpu_helper
def _affine_nsc_rows(x, scale, offset, y, start, stop):
    s = x.shape[1]
    for r in range(start, stop):
        i = r // s
        j = r - i * s
        for c in range(x.shape[2]):
            y[i, j, c] = x[i, j, c] * scale[c] + offset[c]


@cpu_helper
def _affine_nsc_rows_mixed(x, native, scale, offset, scale_x, offset_x, y, start, stop):
    """``_affine_nsc_rows`` with each channel in the dtype ``native`` picks for it."""
    s = x.shape[1]
    for r in range(start, stop):
        i = r // s
        j = r - i * s
        for c in range(x.shape[2]):
            if native[c]:
                y[i, j, c] = x[i, j, c] * scale_x[c] + offset_x[c]
            else:
                y[i, j, c] = np.float64(x[i, j, c]) * scale[c] + offset[c]


@cpu_helper
def _eval_coefficients(weight, bias, mean, var, eps, like):
    """Per channel, ``scale`` and ``offset`` of ``y = x*scale + offset`` in float64 and rounded to
    the dtype of array ``like``, and whether the channel runs in that dtype (``native``); also
    whether every channel does.

    As torch: ``scale = weight * invstd``, ``invstd = 1/sqrt(var + eps)`` with no guard, so
    ``var + eps == 0`` gives inf/NaN.
    """
    channels = weight.size
    scale = np.empty(channels)
    offset = np.empty(channels)
    scale_x = np.empty(channels, like.dtype)
    offset_x = np.empty(channels, like.dtype)
    native = np.empty(channels, np.bool_)
    all_native = True
    for c in range(channels):
        inv = 1.0 / np.sqrt(np.float64(var[c]) + eps)
        scale[c] = weight[c] * inv
        offset[c] = bias[c] - mean[c] * scale[c]
        scale_x[c] = scale[c]
        offset_x[c] = offset[c]
        exact = scale_x[c] == scale[c] and offset_x[c] == offset[c]
        near = abs(np.float64(mean[c])) * inv <= _EVAL_NATIVE_MAX_MEAN
        native[c] = exact or (near and np.isfinite(scale_x[c]) and np.isfinite(offset_x[c]))
        all_native = all_native and native[c]
    return scale, offset, scale_x, offset_x, native, all_native


@cpu_kernel
def batch_norm_train_ncs(
    x, weight, bias, eps, momentum, running_mean, running_var, y, mean, invstd
):
    """Training forward on an ``(N, C, S)`` view: batch statistics, ``y``, running stats.

    One task per channel: the channel is read once from memory for its statistics and again,
    from cache, to normalize it, so a channel of up to a few MB costs one read and one write.
    """
    n, channels, s = x.shape
    count = n * s
    for c in prange(channels):
        shift = np.float64(x[0, c, 0]) if count > 0 else 0.0
        s1 = 0.0
        s2 = 0.0
        for i in range(n):
            for j in range(s):
                d = np.float64(x[i, c, j]) - shift
                s1 += d
                s2 += d * d
        scale = _finish_channel(
            c, s1, s2, shift, count, weight, eps, momentum,
            running_mean, running_var, mean, invstd,
        )  # fmt: skip
        mu = mean[c]
        b = np.float64(bias[c])
        for i in range(n):
            for j in range(s):
                y[i, c, j] = (np.float64(x[i, c, j]) - mu) * scale + b


@cpu_kernel
def batch_norm_train_nsc(
    x, weight, bias, eps, momentum, running_mean, running_var, y, mean, invstd
):
    """Training forward on an ``(N, S, C)`` view (channels-last), arguments as the ncs kernel.

    Rows are split in chunks; each chunk sums into its own row of partials, merged afterwards.
    """
    n, s, channels = x.shape
    rows = n * s
    chunks = _chunk_count(rows, channels)
    shift = np.zeros(channels)
    if rows > 0:
        for c in range(channels):
            shift[c] = x[0, 0, c]
    part1 = np.zeros((chunks, channels))
    part2 = np.zeros((chunks, channels))
    for t in prange(chunks):
        start, stop = _chunk_bounds(t, rows, chunks)
        _moment_rows(x, shift, part1[t], part2[t], start, stop)
    scale = np.empty(channels)
    for c in range(channels):
        scale[c] = _finish_channel(
            c, _column_sum(part1, c), _column_sum(part2, c), shift[c], rows, weight, eps,
            momentum, running_mean, running_var, mean, invstd,
        )  # fmt: skip
    for t in prange(chunks):
        start, stop = _chunk_bounds(t, rows, chunks)
        _normalize_nsc_rows(x, mean, scale, bias, y, start, stop)


@cpu_kernel
def batch_norm_eval_ncs(x, weight, bias, running_mean, running_var, eps, y):
    """Inference forward on an ``(N, C, S)`` view: ``y = x*scale + offset`` from running stats,
    torch's own formula, in the input's dtype where that is accurate (see
    ``_EVAL_NATIVE_MAX_MEAN``), in float64 elsewhere."""
    n, channels = x.shape[:2]
    scale, offset, scale_x, offset_x, native, _ = _eval_coefficients(
        weight, bias, running_mean, running_var, eps, x
    )
    for t in prange(n * channels):
        i = t // channels
        c = t - i * channels
        if native[c]:
            _affine(x[i, c], scale_x[c], offset_x[c], y[i, c])
        else:
            _affine(x[i, c], scale[c], offset[c], y[i, c])


@cpu_kernel
def batch_norm_eval_nsc(x, weight, bias, running_mean, running_var, eps, y):
    """Inference forward on an ``(N, S, C)`` view, arguments and numerics as the ncs kernel."""
    n, s, channels = x.shape
    rows = n * s
    chunks = _chunk_count(rows, channels)
    scale, offset, scale_x, offset_x, native, all_native = _eval_coefficients(
        weight, bias, running_mean, running_var, eps, x
    )
    for t in prange(chunks):
        start, stop = _chunk_bounds(t, rows, chunks)
        if all_native:
            _affine_nsc_rows(x, scale_x, offset_x, y, start, stop)
        else:
            _affine_nsc_rows_mixed(x, native, scale, offset, scale_x, offset_x, y, start, stop)


@cpu_helper
def _grad_coefficients(c, sdy, sdyx, count, weight, invstd, train, dweight, dbias):
    """Store channel ``c``'s dweight/dbias; return ``(k_dy, k_x, k_0)`` for its input gradient.

    ``dx = dy*k_dy - (x - mean)*k_x - k_0``: with batch statistics, the mean of ``dy`` and its
    projection on ``x - mean`` are removed; with running statistics only ``k_dy`` is left.
    """
    inv = invstd[c]
    if dweight.size > 0:
        dweight[c] = sdyx * inv
    if dbias.size > 0:
        dbias[c] = sdy
    k_dy = inv * weight[c]
    if not train or count == 0:
        return k_dy, 0.0, 0.0
    return k_dy, sdyx * inv * inv * k_dy / count, sdy * k_dy / count


@cpu_kernel
def batch_norm_backward_ncs(dy, x, weight, mean, invstd, train, dx, dweight, dbias):
    """Backward on ``(N, C, S)`` views of ``dy`` and ``x``.

    ``train`` says whether ``mean``/``invstd`` were the batch's own statistics (so they depend on
    ``x``) or running statistics (constants). ``dx``, ``dweight``, ``dbias`` of size 0 are skipped.
    """
    n, channels, s = x.shape
    count = n * s
    reduce = train or dweight.size > 0 or dbias.size > 0
    for c in prange(channels):
        mu = mean[c]
        sdy = 0.0
        sdyx = 0.0
        if reduce:
            for i in range(n):
                for j in range(s):
                    g = np.float64(dy[i, c, j])
                    sdy += g
                    sdyx += g * (np.float64(x[i, c, j]) - mu)
        k_dy, k_x, k_0 = _grad_coefficients(
            c, sdy, sdyx, count, weight, invstd, train, dweight, dbias
        )
        if dx.size > 0:
            for i in range(n):
                for j in range(s):
                    dx[i, c, j] = (
                        np.float64(dy[i, c, j]) * k_dy - (np.float64(x[i, c, j]) - mu) * k_x - k_0
                    )


@cpu_kernel
def batch_norm_backward_nsc(dy, x, weight, mean, invstd, train, dx, dweight, dbias):
    """Backward on ``(N, S, C)`` views, arguments as the ncs kernel."""
    n, s, channels = x.shape
    rows = n * s
    chunks = _chunk_count(rows, channels)
    part_dy = np.zeros((chunks, channels))
    part_dyx = np.zeros((chunks, channels))
    if train or dweight.size > 0 or dbias.size > 0:
        for t in prange(chunks):
            start, stop = _chunk_bounds(t, rows, chunks)
            _grad_moment_rows(dy, x, mean, part_dy[t], part_dyx[t], start, stop)
    k_dy = np.empty(channels)
    k_x = np.empty(channels)
    k_0 = np.empty(channels)
    for c in range(channels):
        k_dy[c], k_x[c], k_0[c] = _grad_coefficients(
            c, _column_sum(part_dy, c), _column_sum(part_dyx, c), rows, weight, invstd, train,
            dweight, dbias,
        )  # fmt: skip
    if dx.size > 0:
        for t in prange(chunks):
            start, stop = _chunk_bounds(t, rows, chunks)
            for r in range(start, stop):
                i = r // s
                j = r - i * s
                for c in range(channels):
                    dx[i, j, c] = (
                        np.float64(dy[i, j, c]) * k_dy[c]
                        - (np.float64(x[i, j, c]) - mean[c]) * k_x[c]
                        - k_0[c]
                    )
