"""Local response normalization (LocalResponseNorm) on the CPU: ``@njit(parallel=True)`` kernels.

``y = x * d**-beta`` with ``d = k + alpha/size * (sum of x*x over the channels c - size//2 ..
c + (size-1)//2)``, zero-padded at both ends and always divided by ``size`` (torch's avg_pool with
count_include_pad). The input is a 3-D view in one of two layouts, as the BatchNorm kernels:

- ``ncs``: shape ``(N, C, S)``, ``S`` the product of the spatial sizes (contiguous NCHW);
- ``nsc``: shape ``(N, S, C)`` (channels-last), where the window runs along the innermost axis.

Any strides are correct. Each task copies a block of columns (one ``(n, s)`` position each) into a
float64 ``(C, B)`` buffer, so that everything after the copy runs on contiguous rows of ``B``
columns that vectorize, whatever the layout; tasks never share a sum, so the results are the same
bits whatever the thread count. The kernels skip the copy where they can: windows of up to
``_DIRECT_WINDOW`` channels whose powers take the binomial series run along each channels-last
row (``_forward_rows``, ``_backward_rows``) or down each contiguous task's channel rows
(``_forward_columns``, ``_backward_columns``), in the output's precision: a float32 output is
computed in float32 there (twice the lanes of float64; a forward within 2 float32 ulps of the
float64 result, the same bits in both layouts); a float64 forward has the block's bits. Whether
the series applies is known when a task's output is written: if it does not, the task is
computed again as blocks, so an output must not overlap an input.

Windows of up to ``_DIRECT_WINDOW`` channels are summed directly, in one pass. Longer ones are
van Herk / Gil-Werman block sums, not a running sum that adds the entering value and subtracts
the leaving one: the padded channel axis is cut into blocks of ``size`` rows and each window is a
suffix of one block plus a prefix of the next. That costs O(1) per output for any ``size`` (a sum
per window costs ``size``), and every partial sum holds only values of the window
itself, so a window's sum is as accurate as summing it directly. A running sum would carry the
rounding error of every large square it has seen: after a channel of 1e4 next to channels of 1e-3
its float64 error already exceeds float32's tolerance when ``k`` is 0, and a window of zeros after
nonzero channels would not sum to exactly 0 (torch gives 0/0 = NaN there).

``d**-beta`` is computed by a vectorized exp/log pair (about 1e-15 relative error for a float64
result, 1e-10 with shorter series for a narrower one); libm's scalar ``pow`` would cost more than
the rest of the kernel, and values outside its range go to ``pow``. A block whose every ``d`` lies
within 2**-6 of ``k`` (the usual case with torch's default ``alpha``) takes a binomial series in
``t = d/k - 1 = alpha/(size*k) * window sum`` instead (the forward kernel about twice as fast).

Each public kernel has a serial twin, ``kernel.serial``, for inputs too small to split.
"""

import numpy as np
from numba import prange

from numbanorm.kernels.config import cpu_helper, cpu_kernel

# Columns per task. A channels-last block is 64 columns: wider ones make its transposing copies
# several times slower (256: 0.26-0.54x). An ncs block gathers a stretch of each of its C channel
# rows, a whole spatial plane apart, and 64-column stretches starve the prefetchers: it takes up
# to _NCS_ELEMENTS values (each float64 buffer 128 KiB, all of them within a 1 MiB L2), 64 to 256
# columns. Against 64 columns everywhere, forward and backward: 1.47-1.77x at (32, 64, 12544),
# 1.15-1.36x at (16, 64, 784), 1.15-1.25x at (8, 96, 3136) (170 columns), 1.61-2.30x at
# (8, 3, 50176), level at (8, 256, 3136) (64 columns; 256 columns there were 0.38x).
_BLOCK = 64
_NCS_ELEMENTS = 16384
_NCS_MAX_BLOCK = 256
# The blocks go to at most this many lanes, each allocating its scratch once and running its
# blocks one after the other. Scratch allocated per block (an ncs block's arrays are 128 KiB
# each) came from mmap past glibc's threshold, with page faults on every block: 100-115 ms
# against 29-30 ms for the forward at (32, 64, 12544) in a process that had not yet freed a
# large block (one without torch, loading its kernels from numba's cache). Fewer lanes fault in
# less fresh scratch per call: 16 lanes 31-36 ms there, 64 lanes 39-49 ms.
_LANES = 16
# Windows up to this many channels are summed directly; longer ones by blocks.
_DIRECT_WINDOW = 8
# Bytes of each channel row per task of the contiguous forward, whose column walk
# (_forward_columns) needs no (C, B) block: a multiple of the blocks, each channel row read in
# stretches the prefetchers follow further. Float32 at (32, 64, 12544), against the blocks'
# 256 columns (1 KiB): 4 KiB 1.15x, 16 KiB 1.26x.
_WALK_BYTES = 16384
# d within this share of k takes the binomial series for d**-beta.
_NEAR = 2.0**-6

_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_INV_LN2 = 1.4426950408889634
_SQRT2 = 1.4142135623730951
_MIN_NORMAL = 2.2250738585072014e-308
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000


@cpu_helper
def _atanh_series(z, precise):
    """``atanh(f) / f`` for ``z = f*f <= 0.0295`` (``|f| <= 3 - 2*sqrt(2)``), by Estrin's scheme:
    to ``z**10`` (truncation below 1e-17) when ``precise``, else to ``z**5`` (below 5e-11, for
    float32 results). Estrin's pairs keep the dependency chain short where Horner's rule would
    leave the vector units waiting on one multiply-add after another."""
    z2 = z * z
    z4 = z2 * z2
    low = (1.0 + z * (1.0 / 3.0)) + z2 * (1.0 / 5.0 + z * (1.0 / 7.0))
    if not precise:
        return low + z4 * (1.0 / 9.0 + z * (1.0 / 11.0))
    high = (1.0 / 9.0 + z * (1.0 / 11.0)) + z2 * (1.0 / 13.0 + z * (1.0 / 15.0))
    top = (1.0 / 17.0 + z * (1.0 / 19.0)) + z2 * (1.0 / 21.0)
    return (low + z4 * high) + (z4 * z4) * top


@cpu_helper
def _exp_series(r, precise):
    """``exp(r)`` for ``|r| <= ln2/2``, Taylor to ``r**13`` (truncation below 1e-17) when
    ``precise``, else to ``r**9`` (below 1e-11), by Estrin's scheme."""
    r2 = r * r
    r4 = r2 * r2
    low = ((1.0 + r) + r2 * (0.5 + r * (1.0 / 6.0))) + r4 * (
        (1.0 / 24.0 + r * (1.0 / 120.0)) + r2 * (1.0 / 720.0 + r * (1.0 / 5040.0))
    )
    if not precise:
        return low + (r4 * r4) * (1.0 / 40320.0 + r * (1.0 / 362880.0))
    high = (
        (1.0 / 40320.0 + r * (1.0 / 362880.0)) + r2 * (1.0 / 3628800.0 + r * (1.0 / 39916800.0))
    ) + r4 * (1.0 / 479001600.0 + r * (1.0 / 6227020800.0))
    return low + (r4 * r4) * high


@cpu_helper
def _negative_power(d, beta, precise, out, mantissa, exponent):
    """``out[i] = d[i] ** -beta`` for 1-D contiguous float64 arrays; ``mantissa`` and
    ``exponent`` are float64 scratch arrays of the same size. ``precise``: to float64's accuracy;
    else to about 1e-10 relative, ample for a float32 result and a third fewer operations.

    ``log(d)`` from the exponent bits and an atanh series on the mantissa in [sqrt(1/2),
    sqrt(2)), ``exp`` by a Taylor series on ``|r| <= ln2/2`` scaled by a power of two built from
    bits. Every loop vectorizes; zeros, subnormals, negatives, inf, NaN and results that would
    overflow or underflow go to ``pow`` in the last loop.
    """
    n = d.size
    d_bits = d.view(np.int64)
    m_bits = mantissa.view(np.int64)
    for i in range(n):
        bits = d_bits[i]
        m_bits[i] = (bits & _MANTISSA) | _ONE_BITS
        exponent[i] = np.float64(((bits >> 52) & 0x7FF) - 1023)
    for i in range(n):
        m = mantissa[i]
        e = exponent[i]
        # Both sides of each choice are computed and blended: a conditional load would be a
        # masked load, slow on this machine's AMD cores.
        big = m > _SQRT2
        m = m * 0.5 if big else m
        e = e + 1.0 if big else e
        f = (m - 1.0) / (m + 1.0)
        y = -beta * (e * _LN2_HI + (e * _LN2_LO + 2.0 * f * _atanh_series(f * f, precise)))
        twos = np.floor(y * _INV_LN2 + 0.5)
        out[i] = _exp_series((y - twos * _LN2_HI) - twos * _LN2_LO, precise)
        exponent[i] = twos
    for i in range(n):
        twos = exponent[i]
        m_bits[i] = (np.int64(twos if abs(twos) <= 1020.0 else 0.0) + 1023) << 52
    for i in range(n):
        out[i] *= mantissa[i]
    outside = 0
    for i in range(n):
        value = d[i]
        fast = value >= _MIN_NORMAL and value < np.inf and abs(exponent[i]) <= 1020.0
        outside += 0 if fast else 1
    if outside == 0:
        return
    # Apart from this test, the vectorizer would evaluate pow on every element.
    for i in range(n):
        value = d[i]
        if not (value >= _MIN_NORMAL and value < np.inf and abs(exponent[i]) <= 1020.0):
            out[i] = value**-beta


@cpu_helper
def _near_center(v, offset, slope, center, beta):
    """Whether ``_binomial_power`` applies to every ``d = offset + slope * v[i]``: ``center > 0``,
    ``|beta| <= 1`` and each ``d`` within ``center * _NEAR`` of ``center`` (a NaN is not)."""
    if not (center > 0.0 and abs(beta) <= 1.0):
        return False
    limit = center * _NEAR
    outside = 0
    for i in range(v.size):
        outside += 0 if abs((offset + slope * v[i]) - center) <= limit else 1
    return outside == 0


@cpu_helper
def _binomial_coefficients(beta):
    """The binomial coefficients ``c_1 .. c_9`` of ``-beta``:
    ``c_j = c_(j-1) * (-beta - (j-1)) / j``."""
    c1 = -beta
    c2 = c1 * (c1 - 1.0) / 2.0
    c3 = c2 * (c1 - 2.0) / 3.0
    c4 = c3 * (c1 - 3.0) / 4.0
    c5 = c4 * (c1 - 4.0) / 5.0
    c6 = c5 * (c1 - 5.0) / 6.0
    c7 = c6 * (c1 - 6.0) / 7.0
    c8 = c7 * (c1 - 7.0) / 8.0
    c9 = c8 * (c1 - 8.0) / 9.0
    return c1, c2, c3, c4, c5, c6, c7, c8, c9


@cpu_helper
def _binomial_series(t, c, precise):
    """``(1 + t)**-beta`` for ``|t| <= 2**-6``, ``c`` the coefficients ``1, c_1 .. c_9`` (the
    leading 1 a value of their dtype, so that a float32 ``t`` stays float32): 10 terms when
    ``precise``, else 6."""
    t2 = t * t
    t4 = t2 * t2
    low = (c[0] + c[1] * t) + t2 * (c[2] + c[3] * t)
    if precise:
        low = low + t4 * ((c[4] + c[5] * t) + t2 * (c[6] + c[7] * t))
        return low + (t4 * t4) * (c[8] + c[9] * t)
    return low + t4 * (c[4] + c[5] * t)


@cpu_helper
def _binomial_power(d, law, precise, out):
    """``out[i] = d[i] ** -beta`` as ``center**-beta * (1 + t)**-beta``, ``t = d/center - 1``, by
    the binomial series, where ``_near_center`` holds: with torch's default ``alpha = 1e-4``,
    wherever the mean square over each window stays under ``k / (64 * alpha)``, 156 for ``k = 1``.

    ``|t| <= 2**-6`` and ``|beta| <= 1`` (so every coefficient is at most 1 in size) bound the
    truncation after 10 terms by 2**-59 and after 6 (``precise`` false) by 2**-35; no division,
    logarithm or range reduction per element. ``law`` from ``_law``, ``center`` its ``k``.
    """
    center, factor, inverse = law[2], law[4], law[5]
    c = law[8:18]
    for i in range(d.size):
        out[i] = factor * _binomial_series((d[i] - center) * inverse, c, precise)


@cpu_helper
def _window_sums(v, q, channels, before, after):
    """Sums over windows of ``before + 1 + after`` rows of ``v``, written to ``v[:channels]``.

    ``v`` is ``(channels + before + after, B)``: the values in rows ``before .. before+channels``,
    zeros around them; ``q`` is scratch of the same shape. Row ``c`` of the result is the sum of
    the values of rows ``c - before .. c + after``.
    """
    w = before + 1 + after
    length = v.shape[0]
    width = v.shape[1]
    if w <= _DIRECT_WINDOW:
        # Row c is added up in place: the rows after it are still the values.
        for c in range(channels):
            for j in range(1, w):
                for b in range(width):
                    v[c, b] += v[c + j, b]
        return
    # Suffix sums within each block of w rows.
    for p in range(length - 1, -1, -1):
        if (p + 1) % w == 0 or p == length - 1:
            for b in range(width):
                q[p, b] = v[p, b]
        else:
            for b in range(width):
                q[p, b] = q[p + 1, b] + v[p, b]
    # Prefix sums within each block, in place.
    for p in range(1, length):
        if p % w != 0:
            for b in range(width):
                v[p, b] += v[p - 1, b]
    # Window c covers padded rows c .. c+w-1: the suffix of its first block plus the prefix of
    # the next. Row c is written after every row it still needs (c+w-1 >= c) has been read.
    for c in range(channels):
        if c % w == 0:
            for b in range(width):
                v[c, b] = q[c, b]
        else:
            for b in range(width):
                v[c, b] = q[c, b] + v[c + w - 1, b]


@cpu_helper
def _clipped(size, channels):
    """The window's rows before and after a channel, clipped to the channel axis (a window
    longer than the axis sums the same values), and the padded length."""
    edge = max(channels - 1, 0)
    before = min(size // 2, edge)
    after = min((size - 1) // 2, edge)
    return before, after, channels + before + after


@cpu_helper
def _window_squares(xb, size, v, q):
    """The window sums of the squares of a ``(C, B)`` float64 block ``xb``, into
    ``v[:C]``; ``v`` and ``q`` are padded scratch (see ``_scratch``)."""
    channels, width = xb.shape
    before, after, length = _clipped(size, channels)
    for p in range(before):
        for b in range(width):
            v[p, b] = 0.0
    for c in range(channels):
        for b in range(width):
            v[before + c, b] = xb[c, b] * xb[c, b]
    for p in range(before + channels, length):
        for b in range(width):
            v[p, b] = 0.0
    _window_sums(v, q, channels, before, after)


@cpu_helper
def _powers(v, channels, size, law, floor_mean, precise, d, s, mantissa, exponent):
    """``d`` and ``s = d**-beta`` of a block from its window sums ``v[:channels]``; ``law`` from
    ``_law``, ``precise`` as in ``_negative_power``.

    ``floor_mean``: average the squares with integer division, as torch's avg_pool does on int64
    input. ``mantissa``, ``exponent`` (C*B) are scratch.
    """
    alpha, beta, k, slope = law[:4]
    width = d.shape[1]
    for c in range(channels):
        if floor_mean:
            for b in range(width):
                d[c, b] = k + alpha * np.floor(v[c, b] / size)
        else:
            for b in range(width):
                d[c, b] = k + slope * v[c, b]
    if _near_center(d.reshape(-1), 0.0, 1.0, k, beta):
        _binomial_power(d.reshape(-1), law, precise, s.reshape(-1))
    else:
        _negative_power(d.reshape(-1), beta, precise, s.reshape(-1), mantissa, exponent)


@cpu_helper
def _law(size, alpha, beta, k):
    """The floats the blocks take: ``alpha``, ``beta``, ``k``, ``alpha/size``, ``k**-beta``,
    ``1/k``, ``alpha/(size*k)`` (``t`` per window sum), ``_NEAR``, the binomial coefficients
    ``1, c_1 .. c_9``, then ``2*alpha*beta/size`` (the backward's); one tuple of one type, as a
    parallel loop takes its arguments.

    A kernel computes it once, before its parallel loop, and hands it in: there LLVM sees
    values it cannot fold. Computed in the block, fast-math reassociation moved their divisions
    (``alpha/size``, ``1/k`` and the coefficients' ``/j``) into each element's arithmetic, a
    vector division per term.
    """
    slope = alpha / size
    return (
        alpha, beta, k, slope, k**-beta, 1.0 / k, slope / k, _NEAR, 1.0,
        *_binomial_coefficients(beta), 2.0 * alpha * beta / size,
    )  # fmt: skip


@cpu_helper
def _law_as(law, y):
    """``law`` rounded to the dtype of ``y``, for the direct forwards, which compute in the
    output's precision: a float32 output in float32, twice the lanes of float64 (the window sums
    of at most ``_DIRECT_WINDOW`` squares and a series in ``|t| <= 2**-6`` lose no more than a
    float32 ulp or two), where the blocks compute in float64 whatever the output.

    Numba types a literal as float64, and float32 arithmetic with it as float64: the values go
    through an array of ``y``'s dtype and come back as a tuple of its scalars.
    """
    a = np.empty(len(law), y.dtype)
    for j, value in enumerate(law):
        a[j] = value
    return (
        a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8],
        a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18],
    )  # fmt: skip


@cpu_helper
def _series_may_apply(law):
    """Whether the binomial series can take any ``t``: ``k > 0`` and ``|beta| <= 1`` (so that
    every coefficient is at most 1 in size); ``law`` from ``_law`` or ``_law_as``."""
    return law[2] > 0.0 and abs(law[1]) <= 1.0


@cpu_helper
def _series_applies(v, law):
    """Whether the binomial series takes every window sum of ``v``: ``_series_may_apply`` and
    each ``t = v * alpha/(size*k)`` within ``2**-6`` (a NaN is not); ``law`` from ``_law`` or
    ``_law_as``."""
    ratio, near, one = law[6], law[7], law[8]
    if not _series_may_apply(law):
        return False
    # Counted in law's dtype: an int64 count holds a float32 loop to 8 lanes.
    zero = one - one
    outside = zero
    for i in range(v.size):
        outside += zero if abs(v[i] * ratio) <= near else one
    return outside == zero


@cpu_helper
def _lane_buffers(channels, block, size):
    """Flat scratch for blocks of ``channels`` rows and up to ``block`` columns: one lane's
    input and gradient blocks, then those of ``_scratch``."""
    length = _clipped(size, channels)[2]
    area = channels * block
    return (
        np.empty(area),
        np.empty(area),
        np.empty(length * block),
        np.empty(length * block),
        np.empty(area),
        np.empty(area),
        np.empty(area),
        np.empty(area),
    )


@cpu_helper
def _block(buffer, rows, width):
    """A ``(rows, width)`` C-contiguous array at the start of the flat ``buffer``."""
    return buffer[: rows * width].reshape(rows, width)


@cpu_helper
def _scratch(buffers, channels, width, size):
    """``_lane_buffers``' scratch shaped for a block of ``width`` columns: ``v``, ``q``
    (padded), ``d``, ``s``, and the flat ``mantissa`` and ``exponent``."""
    length = _clipped(size, channels)[2]
    area = channels * width
    return (
        _block(buffers[2], length, width),
        _block(buffers[3], length, width),
        _block(buffers[4], channels, width),
        _block(buffers[5], channels, width),
        buffers[6][:area],
        buffers[7][:area],
    )


@cpu_helper
def _forward_block(xb, buffers, size, law, floor_mean, precise):
    """``y`` of a ``(C, B)`` float64 block, in place; ``buffers`` from ``_lane_buffers``, ``law``
    from ``_law``.

    Where the binomial series applies, ``t = v * alpha/(size*k)`` and its power are formed on
    the fly from the window sums in the pass that scales ``xb``, without writing and reading
    back ``d`` and ``s``.
    """
    factor, ratio = law[4], law[6]
    c = law[8:18]
    channels, width = xb.shape
    v, q, d, s, mantissa, exponent = _scratch(buffers, channels, width, size)
    _window_squares(xb, size, v, q)
    if not floor_mean and _series_applies(v[:channels].reshape(-1), law):
        for ch in range(channels):
            for b in range(width):
                xb[ch, b] *= factor * _binomial_series(v[ch, b] * ratio, c, precise)
        return
    _powers(v, channels, size, law, floor_mean, precise, d, s, mantissa, exponent)
    for ch in range(channels):
        for b in range(width):
            xb[ch, b] *= s[ch, b]


@cpu_helper
def _backward_block(gb, xb, buffers, size, law, precise):
    """``dx`` of ``(C, B)`` float64 blocks of ``dy`` and ``x``, into ``gb``; ``buffers`` from
    ``_lane_buffers``, ``law`` from ``_law``.

    ``dx_j = g_j s_j - (2 alpha beta / size) x_j * sum over the outputs i whose window holds j of
    g_i x_i s_i / d_i``: those i are j - (size-1)//2 .. j + size//2, the window reversed.
    """
    coefficient = law[18]
    channels, width = xb.shape
    v, q, d, s, mantissa, exponent = _scratch(buffers, channels, width, size)
    _window_squares(xb, size, v, q)
    _powers(v, channels, size, law, False, precise, d, s, mantissa, exponent)
    if coefficient == 0.0:
        # alpha or beta 0: d does not depend on x (torch's pow backward gives exact zeros).
        for c in range(channels):
            for b in range(width):
                gb[c, b] *= s[c, b]
        return
    before, after, length = _clipped(size, channels)
    for p in range(after):
        for b in range(width):
            v[p, b] = 0.0
    for c in range(channels):
        for b in range(width):
            v[after + c, b] = gb[c, b] * xb[c, b] * s[c, b] / d[c, b]
    for p in range(after + channels, length):
        for b in range(width):
            v[p, b] = 0.0
    _window_sums(v, q, channels, after, before)
    for c in range(channels):
        for b in range(width):
            gb[c, b] = gb[c, b] * s[c, b] - coefficient * xb[c, b] * v[c, b]


@cpu_helper
def _copy(source, out):
    """``out[:] = source`` for 1-D arrays of any dtypes, indexed from 0: an index with an offset
    (``x[i, c, start + b]``) keeps numba's wraparound test for negative indices in the loop,
    which then does not vectorize."""
    for b in range(source.size):
        out[b] = source[b]


@cpu_helper
def _squares(source, out):
    """``out[:] = source**2`` in ``out``'s dtype (each value converted before it is squared), for
    1-D arrays indexed from 0 (see ``_copy``)."""
    for b in range(source.size):
        out[b] = source[b]
        out[b] *= out[b]


@cpu_helper
def _ncs_span(t, per_sample, block, s):
    """Sample and columns ``[start, stop)`` of block ``t`` of an ``(N, C, S)`` view."""
    i = t // per_sample
    start = (t - i * per_sample) * block
    return i, start, min(start + block, s)


@cpu_helper
def _gather_columns(x, i, start, xb):
    """Columns ``start ..`` of sample ``i`` of an ``(N, C, S)`` view into the ``(C, B)`` block
    ``xb``."""
    for c in range(xb.shape[0]):
        _copy(x[i, c, start : start + xb.shape[1]], xb[c])


@cpu_helper
def _scatter_columns(xb, i, start, y):
    """The inverse of ``_gather_columns``: ``xb`` into columns ``start ..`` of sample ``i``."""
    for c in range(xb.shape[0]):
        _copy(xb[c], y[i, c, start : start + xb.shape[1]])


@cpu_helper
def _gather_rows(x, start, xb):
    """Rows ``start ..`` of an ``(N, S, C)`` view (rows counted over ``N*S``), one a column of
    the ``(C, B)`` block ``xb``."""
    s = x.shape[1]
    for b in range(xb.shape[1]):
        i = (start + b) // s
        j = start + b - i * s
        for c in range(xb.shape[0]):
            xb[c, b] = x[i, j, c]


@cpu_helper
def _scatter_rows(xb, start, y):
    """The inverse of ``_gather_rows``: the columns of ``xb`` into rows ``start ..`` of ``y``."""
    s = y.shape[1]
    for b in range(xb.shape[1]):
        i = (start + b) // s
        j = start + b - i * s
        for c in range(xb.shape[0]):
            y[i, j, c] = xb[c, b]


@cpu_helper
def _blocks(count, width):
    return (count + width - 1) // width


@cpu_helper
def _lane_tasks(lane, tasks, lanes):
    """The range of blocks of ``lane``: contiguous, split by the shape alone."""
    return lane * tasks // lanes, (lane + 1) * tasks // lanes


@cpu_helper
def _window_row(rows, r, j, w, before, channels):
    """Row ``j`` of the window at padded row ``r`` of a ring ``rows`` of 8 rows and a zero row
    (the last): the row of channel ``r + j - before`` in slot ``(r + j) % 8``, or the zero row
    past the window (``j >= w``) or off the channel axis."""
    q = r + j
    if j < w and before <= q < before + channels:
        return rows[q % _DIRECT_WINDOW]
    return rows[_DIRECT_WINDOW]


@cpu_helper
def _window_rows(rows, r, w, before, channels):
    """The 8 rows of the window at padded row ``r`` of a ring (see ``_window_row``)."""
    return (
        _window_row(rows, r, 0, w, before, channels),
        _window_row(rows, r, 1, w, before, channels),
        _window_row(rows, r, 2, w, before, channels),
        _window_row(rows, r, 3, w, before, channels),
        _window_row(rows, r, 4, w, before, channels),
        _window_row(rows, r, 5, w, before, channels),
        _window_row(rows, r, 6, w, before, channels),
        _window_row(rows, r, 7, w, before, channels),
    )


@cpu_helper
def _row_sum(window, b):
    """Column ``b`` of the 8 rows of ``window`` summed in order: rows past the window are
    zeros, and adding 0 keeps the bits of the shorter sum."""
    return (
        window[0][b] + window[1][b] + window[2][b] + window[3][b]
        + window[4][b] + window[5][b] + window[6][b] + window[7][b]
    )  # fmt: skip


@cpu_helper
def _shifts(p, z, w):
    """The rows whose ``c + j``-th values (``j = 1 .. 7``) are the window's ``j``-th: the padded
    row ``p`` inside the window, the zeros ``z`` past it."""
    return (
        p if w > 1 else z, p if w > 2 else z, p if w > 3 else z, p if w > 4 else z,
        p if w > 5 else z, p if w > 6 else z, p if w > 7 else z,
    )  # fmt: skip


@cpu_helper
def _shifted_sum(p, q, c):
    """The window starting at ``c`` of the padded row ``p``, ``q`` from ``_shifts``, summed in
    order. ``c`` unsigned: an index with an offset would keep numba's wraparound test for
    negative indices in the loop, which then does not vectorize."""
    return (
        p[c] + q[0][c + np.uint64(1)] + q[1][c + np.uint64(2)] + q[2][c + np.uint64(3)]
        + q[3][c + np.uint64(4)] + q[4][c + np.uint64(5)] + q[5][c + np.uint64(6)]
        + q[6][c + np.uint64(7)]
    )  # fmt: skip


@cpu_helper
def _forward_columns(x, i, start, stop, size, law, precise, ring, y):
    """The forward of columns ``[start, stop)`` of sample ``i`` of an ``(N, C, S)`` view, along
    its channel rows, without copying them into a block, for windows of up to
    ``_DIRECT_WINDOW`` channels whose every ``t`` takes the binomial series. ``law`` from
    ``_law_as``: the same operations, in the same order, as ``_forward_block``, in the
    output's precision. Returns whether it applied.

    Each channel's squares go to a ring of 8 rows (``ring``: float64 scratch for ``9 * (stop -
    start)`` values of ``y``'s dtype, the ninth row zeros) as the window reaches them, and each
    output row is written as soon as its window is complete, so the input is read once from
    memory and again from L1. A window is summed in registers, 8 rows whatever its size (rows
    past it the zero row: adding 0 keeps the bits of the shorter sum), in one pass with the
    series and the product: separate passes adding row after row into a window row stored and
    loaded it for every row (1.24x in cache).
    Whether the series applies is known only at the end: if it does not, the caller computes
    the columns again from ``x`` (``y`` must not overlap ``x``).
    """
    factor, ratio, near = law[4], law[6], law[7]
    coefficients = law[8:18]
    channels = x.shape[1]
    before, after = _clipped(size, channels)[:2]
    w = before + 1 + after
    if w > _DIRECT_WINDOW or not _series_may_apply(law):
        return False
    rows = _block(ring.view(y.dtype), _DIRECT_WINDOW + 1, stop - start)
    rows[_DIRECT_WINDOW] = 0.0
    for c in range(after):
        _squares(x[i, c, start:stop], rows[(before + c) % _DIRECT_WINDOW])
    one = coefficients[0]
    zero = one - one
    outside = zero  # in law's dtype, as in _series_applies
    for c in range(channels):
        if c + after < channels:
            _squares(x[i, c + after, start:stop], rows[(before + c + after) % _DIRECT_WINDOW])
        window = _window_rows(rows, c, w, before, channels)
        source = x[i, c, start:stop]
        out = y[i, c, start:stop]
        for b in range(stop - start):
            t = _row_sum(window, b) * ratio
            outside += zero if abs(t) <= near else one
            out[b] = source[b] * (factor * _binomial_series(t, coefficients, precise))
    return outside == zero


@cpu_helper
def _backward_columns(dy, x, i, start, stop, size, law, precise, ring, dx):
    """The input's gradient of columns ``[start, stop)`` of sample ``i`` of ``(N, C, S)`` views,
    along their channel rows as ``_forward_columns`` (``law`` from ``_law_as``, in the output's
    precision), where the binomial series takes every ``t``. Returns whether it applied; known
    only at the end: if not, the caller computes the columns again from ``dy`` and ``x`` (``dx``
    must overlap neither).

    ``ring`` holds three rings of 8 rows and a zero row (``26 * (stop - start)`` values of
    ``dx``'s dtype): the squares, the terms ``g*s*x/d`` of the outputs, and ``g*s``. Step ``c``
    squares channel ``c + after``, forms channel ``c``'s power and terms, and writes the
    gradient of channel ``c - before``, whose reversed window of terms is then complete.
    """
    k, slope, factor, ratio, near = law[2], law[3], law[4], law[6], law[7]
    coefficients, coefficient = law[8:18], law[18]
    channels = x.shape[1]
    before, after = _clipped(size, channels)[:2]
    w = before + 1 + after
    # alpha or beta 0: the blocks give torch's exact g*s whatever the terms (inf or NaN).
    if w > _DIRECT_WINDOW or coefficient == 0.0 or not _series_may_apply(law):
        return False
    rows = _block(ring.view(dx.dtype), 3 * _DIRECT_WINDOW + 2, stop - start)
    squares = rows[: _DIRECT_WINDOW + 1]
    terms = rows[_DIRECT_WINDOW + 1 : 2 * _DIRECT_WINDOW + 2]
    scaled = rows[2 * _DIRECT_WINDOW + 2 :]
    squares[_DIRECT_WINDOW] = 0.0
    terms[_DIRECT_WINDOW] = 0.0
    for c in range(after):
        _squares(x[i, c, start:stop], squares[(before + c) % _DIRECT_WINDOW])
    one = coefficients[0]
    zero = one - one
    outside = zero  # in law's dtype, as in _series_applies
    for c in range(channels + before):
        if c < channels:
            if c + after < channels:
                upcoming = squares[(before + c + after) % _DIRECT_WINDOW]
                _squares(x[i, c + after, start:stop], upcoming)
            window = _window_rows(squares, c, w, before, channels)
            g = dy[i, c, start:stop]
            source = x[i, c, start:stop]
            term = terms[(c + after) % _DIRECT_WINDOW]
            gs = scaled[c % _DIRECT_WINDOW]
            for b in range(stop - start):
                total = _row_sum(window, b)
                t = total * ratio
                outside += zero if abs(t) <= near else one
                gs[b] = g[b] * (factor * _binomial_series(t, coefficients, precise))
                term[b] = gs[b] * source[b] / (k + slope * total)
        j = c - before
        if j >= 0:
            window = _window_rows(terms, j, w, after, channels)
            source = x[i, j, start:stop]
            gs = scaled[j % _DIRECT_WINDOW]
            out = dx[i, j, start:stop]
            for b in range(stop - start):
                out[b] = gs[b] - coefficient * source[b] * _row_sum(window, b)
    return outside == zero


@cpu_helper
def _ncs_block(channels):
    """Columns per block of an ``(N, C, S)`` view."""
    return max(_BLOCK, min(_NCS_ELEMENTS // max(channels, 1), _NCS_MAX_BLOCK))


@cpu_kernel
def local_response_norm_ncs(x, size, alpha, beta, k, floor_mean, y):
    """torch.nn.functional.local_response_norm on an ``(N, C, S)`` view, into ``y``, which must
    not overlap ``x``.

    ``floor_mean`` (torch on int64 input): the mean of the squares is floored.
    """
    n, channels, s = x.shape
    block = _ncs_block(channels)
    span = block * max(_WALK_BYTES // (block * y.itemsize), 1)
    per_sample = _blocks(s, span)
    tasks = n * per_sample
    lanes = min(tasks, _LANES)
    precise = y.itemsize >= 8  # a float64 result; float32 needs fewer digits
    law = _law(size, alpha, beta, k)
    direct = _law_as(law, y)
    for lane in prange(lanes):
        buffers = _lane_buffers(channels, block, size)
        ring = np.empty((_DIRECT_WINDOW + 1) * min(span, s) * y.itemsize // 8 + 1)
        start_task, stop_task = _lane_tasks(lane, tasks, lanes)
        for t in range(start_task, stop_task):
            i, start, stop = _ncs_span(t, per_sample, span, s)
            if not floor_mean and _forward_columns(
                x, i, start, stop, size, direct, precise, ring, y
            ):
                continue
            for first in range(start, stop, block):
                xb = _block(buffers[0], channels, min(block, stop - first))
                _gather_columns(x, i, first, xb)
                _forward_block(xb, buffers, size, law, floor_mean, precise)
                _scatter_columns(xb, i, first, y)


@cpu_helper
def _forward_rows(x, start, width, size, law, precise, buffers, y):
    """The forward of rows ``[start, start + width)`` of an ``(N, S, C)`` view, along each row,
    without transposing it into a block, for windows of up to ``_DIRECT_WINDOW`` channels whose
    every ``t`` takes the binomial series. ``law`` from ``_law_as``: the same operations, in the
    same order, as ``_forward_columns``, in the output's precision. Returns whether it applied;
    known only at the end: if not, the caller computes the rows again from ``x`` (``y`` must
    not overlap ``x``).

    A row's squares go to a zero-padded row ``p``; each window sums 8 shifted loads, those past
    the window from a row of zeros ``z`` (adding 0 keeps the bits of the shorter sum), in the
    pass that forms the output. Indices are unsigned: an index with an offset (``p[c + w]``)
    would keep numba's wraparound test for negative indices in the loop, which then does not
    vectorize.
    """
    factor, ratio, near = law[4], law[6], law[7]
    coefficients = law[8:18]
    s, channels = x.shape[1], x.shape[2]
    before, after = _clipped(size, channels)[:2]
    w = before + 1 + after
    if w > _DIRECT_WINDOW or not _series_may_apply(law):
        return False
    padded = before + channels + _DIRECT_WINDOW
    p = buffers[3].view(y.dtype)[:padded]
    z = buffers[3].view(y.dtype)[padded : 2 * padded]
    p[:] = 0.0
    z[:] = 0.0
    q = _shifts(p, z, w)
    one = coefficients[0]
    zero = one - one
    outside = zero  # in law's dtype, as in _series_applies
    first = np.uint64(before)
    for b in range(width):
        i = (start + b) // s
        j = start + b - i * s
        source = x[i, j]
        out = y[i, j]
        for c in range(np.uint64(channels)):
            p[c + first] = source[c]
            p[c + first] *= p[c + first]
        for c in range(np.uint64(channels)):
            total = _shifted_sum(p, q, c)
            t = total * ratio
            outside += zero if abs(t) <= near else one
            out[c] = source[c] * (factor * _binomial_series(t, coefficients, precise))
    return outside == zero


@cpu_helper
def _backward_rows(dy, x, start, width, size, law, precise, buffers, dx):
    """The input's gradient of rows ``[start, start + width)`` of ``(N, S, C)`` views, along each
    row as ``_forward_rows`` (``law`` from ``_law_as``, in the output's precision), where the
    binomial series takes every ``t``. Returns whether it applied; known only at the end: if not,
    the caller computes the rows again from ``dy`` and ``x`` (``dx`` must overlap neither).

    Per row: the squares into a zero-padded row, the power, ``g*s`` and the terms ``g*s*x/d``
    into a second padded row, then each gradient from its reversed window of terms, both windows
    8 shifted loads as in ``_forward_rows``.
    """
    k, slope, factor, ratio, near = law[2], law[3], law[4], law[6], law[7]
    coefficients, coefficient = law[8:18], law[18]
    s, channels = x.shape[1], x.shape[2]
    before, after = _clipped(size, channels)[:2]
    w = before + 1 + after
    # alpha or beta 0: the blocks give torch's exact g*s whatever the terms (inf or NaN).
    if w > _DIRECT_WINDOW or coefficient == 0.0 or not _series_may_apply(law):
        return False
    padded = before + channels + _DIRECT_WINDOW
    scratch = buffers[3].view(dx.dtype)
    p = scratch[:padded]
    z = scratch[padded : 2 * padded]
    u = scratch[2 * padded : 3 * padded]
    gs = scratch[3 * padded : 3 * padded + channels]
    p[:] = 0.0
    z[:] = 0.0
    u[:] = 0.0
    q = _shifts(p, z, w)
    v = _shifts(u, z, w)
    one = coefficients[0]
    zero = one - one
    outside = zero  # in law's dtype, as in _series_applies
    first = np.uint64(before)
    shift = np.uint64(after)
    for b in range(width):
        i = (start + b) // s
        j = start + b - i * s
        source = x[i, j]
        g = dy[i, j]
        out = dx[i, j]
        for c in range(np.uint64(channels)):
            p[c + first] = source[c]
            p[c + first] *= p[c + first]
        for c in range(np.uint64(channels)):
            total = _shifted_sum(p, q, c)
            t = total * ratio
            outside += zero if abs(t) <= near else one
            gs[c] = g[c] * (factor * _binomial_series(t, coefficients, precise))
            u[c + shift] = gs[c] * source[c] / (k + slope * total)
        for c in range(np.uint64(channels)):
            out[c] = gs[c] - coefficient * source[c] * _shifted_sum(u, v, c)
    return outside == zero


@cpu_kernel
def local_response_norm_nsc(x, size, alpha, beta, k, floor_mean, y):
    """torch.nn.functional.local_response_norm on an ``(N, S, C)`` view (channels-last), into
    ``y``, which must not overlap ``x``; arguments as the ncs kernel."""
    n, s, channels = x.shape
    rows = n * s
    tasks = _blocks(rows, _BLOCK)
    lanes = min(tasks, _LANES)
    precise = y.itemsize >= 8  # a float64 result; float32 needs fewer digits
    law = _law(size, alpha, beta, k)
    direct = _law_as(law, y)
    for lane in prange(lanes):
        buffers = _lane_buffers(channels, _BLOCK, size)
        start_task, stop_task = _lane_tasks(lane, tasks, lanes)
        for t in range(start_task, stop_task):
            start = t * _BLOCK
            width = min(_BLOCK, rows - start)
            if not floor_mean and _forward_rows(x, start, width, size, direct, precise, buffers, y):
                continue
            xb = _block(buffers[0], channels, width)
            _gather_rows(x, start, xb)
            _forward_block(xb, buffers, size, law, floor_mean, precise)
            _scatter_rows(xb, start, y)


@cpu_kernel
def local_response_norm_backward_ncs(dy, x, size, alpha, beta, k, dx):
    """The input's gradient of local_response_norm on ``(N, C, S)`` views, into ``dx``, which must
    overlap neither ``dy`` nor ``x``: one pass that recomputes the window sums and ``d**-beta``
    from ``x`` (nothing saved by the forward)."""
    n, channels, s = x.shape
    block = _ncs_block(channels)
    span = block * max(_WALK_BYTES // (block * dx.itemsize), 1)
    per_sample = _blocks(s, span)
    tasks = n * per_sample
    lanes = min(tasks, _LANES)
    precise = dx.itemsize >= 8  # a float64 result; float32 needs fewer digits
    law = _law(size, alpha, beta, k)
    direct = _law_as(law, dx)
    for lane in prange(lanes):
        buffers = _lane_buffers(channels, block, size)
        ring = np.empty((3 * _DIRECT_WINDOW + 2) * min(span, s) * dx.itemsize // 8 + 1)
        start_task, stop_task = _lane_tasks(lane, tasks, lanes)
        for t in range(start_task, stop_task):
            i, start, stop = _ncs_span(t, per_sample, span, s)
            if _backward_columns(dy, x, i, start, stop, size, direct, precise, ring, dx):
                continue
            for first in range(start, stop, block):
                width = min(block, stop - first)
                xb = _block(buffers[0], channels, width)
                gb = _block(buffers[1], channels, width)
                _gather_columns(x, i, first, xb)
                _gather_columns(dy, i, first, gb)
                _backward_block(gb, xb, buffers, size, law, precise)
                _scatter_columns(gb, i, first, dx)


@cpu_kernel
def local_response_norm_backward_nsc(dy, x, size, alpha, beta, k, dx):
    """The input's gradient on ``(N, S, C)`` views, arguments as the ncs kernel."""
    n, s, channels = x.shape
    rows = n * s
    tasks = _blocks(rows, _BLOCK)
    lanes = min(tasks, _LANES)
    precise = dx.itemsize >= 8  # a float64 result; float32 needs fewer digits
    law = _law(size, alpha, beta, k)
    direct = _law_as(law, dx)
    for lane in prange(lanes):
        buffers = _lane_buffers(channels, _BLOCK, size)
        start_task, stop_task = _lane_tasks(lane, tasks, lanes)
        for t in range(start_task, stop_task):
            start = t * _BLOCK
            width = min(_BLOCK, rows - start)
            if _backward_rows(dy, x, start, width, size, direct, precise, buffers, dx):
                continue
            xb = _block(buffers[0], channels, width)
            gb = _block(buffers[1], channels, width)
            _gather_rows(x, start, xb)
            _gather_rows(dy, start, gb)
            _backward_block(gb, xb, buffers, size, law, precise)
            _scatter_rows(gb, start, dx)
