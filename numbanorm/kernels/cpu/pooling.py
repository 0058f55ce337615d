"""2-D pooling on the CPU: max, average and adaptive average, forward and backward.

Every kernel takes 4-D arrays ``(N, C, H, W)`` of any strides (a channels-last array is read in
place) and gives each thread whole ``(n, c)`` planes, so the backward kernels scatter into their
own plane without atomics. Windows follow torch's CPU kernels: a window of ``kh x kw`` taps
``dilation`` apart starts at ``o*stride - pad`` and is clipped to the input; ``ceil_mode`` only
shows in the output size the caller allocates.

- max: NaN wins (the last NaN of the window), otherwise the first maximum, as torch's
  ``val > max || isnan(val)`` from ``max = lowest`` (-inf, or an integer type's minimum) and the
  index of the window's first tap; ``indices`` hold ``ih*W + iw`` within the plane (torch's). A
  window that dilation leaves without a tap in the input (torch allows it) keeps ``lowest`` and
  that first index, which may lie outside the plane: the backward skips those.
- average: floating inputs sum in float64; int64 inputs sum exactly and divide rounding toward
  zero, as C++ does. The divisor is ``divisor`` when nonzero, else the window's size clipped to
  the padded input (``count_include_pad``) or to the input itself.
- adaptive average: output ``o`` of ``O`` averages input ``[floor(o*I/O), ceil((o+1)*I/O))``.

Window bounds depend on the output row or column only, so each kernel works them out once per
call (``_*_windows``), not once per plane: the adaptive ones cost two integer divisions each.
"""

import numpy as np
from numba import prange

from numbanorm.kernels.config import cpu_helper, cpu_kernel


@cpu_helper
def _max_windows(size, out, kernel, stride, pad, dilation):
    """Along one axis: each output's first tap inside the input (torch's ``while (i0 < 0) i0 +=
    dilation``, so it may lie past the input) and the end of its taps, clipped to ``size``."""
    first = np.empty(out, np.int64)
    end = np.empty(out, np.int64)
    for o in range(out):
        start = o * stride - pad
        end[o] = min(start + (kernel - 1) * dilation + 1, size)
        if start < 0:
            start += ((-start + dilation - 1) // dilation) * dilation
        first[o] = start
    return first, end


@cpu_kernel
def max_pool2d(x, kh, kw, sh, sw, ph, pw, dh, dw, lowest, y, indices):
    """``y`` and ``indices`` (N, C, ho, wo): each window's maximum and where it is."""
    n, channels, h, w = x.shape
    ho, wo = y.shape[2], y.shape[3]
    h_first, h_end = _max_windows(h, ho, kh, sh, ph, dh)
    w_first, w_end = _max_windows(w, wo, kw, sw, pw, dw)
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        plane = x[b, c]
        for oh in range(ho):
            for ow in range(wo):
                # torch's test ``v > value || isnan(v)`` on every tap costs twice the plain
                # ``v > value``: take the plain one, and redo the window with torch's only when
                # ``v - v`` says it held a NaN (or an infinity, which needs no redo but is rare).
                value = lowest
                best = h_first[oh] * w + w_first[ow]
                special = 0.0
                for ih in range(h_first[oh], h_end[oh], dh):
                    for iw in range(w_first[ow], w_end[ow], dw):
                        v = plane[ih, iw]
                        special += v - v
                        if v > value:
                            value = v
                            best = ih * w + iw
                if special != special:
                    value = lowest
                    best = h_first[oh] * w + w_first[ow]
                    for ih in range(h_first[oh], h_end[oh], dh):
                        for iw in range(w_first[ow], w_end[ow], dw):
                            v = plane[ih, iw]
                            if v > value or v != v:
                                value = v
                                best = ih * w + iw
                y[b, c, oh, ow] = value
                indices[b, c, oh, ow] = best


@cpu_kernel
def max_pool2d_backward(dy, indices, dx):
    """``dx`` (N, C, H, W): each output's gradient added where its maximum was (nothing for an
    index outside the plane)."""
    n, channels, h, w = dx.shape
    ho, wo = dy.shape[2], dy.shape[3]
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        plane = dx[b, c]
        plane[:, :] = 0
        for oh in range(ho):
            for ow in range(wo):
                k = indices[b, c, oh, ow]
                if 0 <= k < h * w:
                    i = k // w
                    plane[i, k - i * w] += dy[b, c, oh, ow]


@cpu_helper
def _avg_windows(size, out, kernel, stride, pad, count_include_pad):
    """Along one axis: each output's window clipped to the input, and its size for the divisor
    (clipped to the padded input with ``count_include_pad``, else to the input)."""
    start = np.empty(out, np.int64)
    end = np.empty(out, np.int64)
    count = np.empty(out, np.int64)
    for o in range(out):
        s = o * stride - pad
        e = min(s + kernel, size + pad)
        padded = e - s
        start[o] = max(s, 0)
        end[o] = min(e, size)
        count[o] = padded if count_include_pad else end[o] - start[o]
    return start, end, count


@cpu_kernel
def avg_pool2d(x, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, y):
    """``y`` (N, C, ho, wo): each window's mean (floating ``x``)."""
    n, channels, h, w = x.shape
    ho, wo = y.shape[2], y.shape[3]
    h0, h1, hcount = _avg_windows(h, ho, kh, sh, ph, count_include_pad)
    w0, w1, wcount = _avg_windows(w, wo, kw, sw, pw, count_include_pad)
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        plane = x[b, c]
        for oh in range(ho):
            for ow in range(wo):
                total = 0.0
                for ih in range(h0[oh], h1[oh]):
                    for iw in range(w0[ow], w1[ow]):
                        total += np.float64(plane[ih, iw])
                y[b, c, oh, ow] = total / (divisor if divisor != 0 else hcount[oh] * wcount[ow])


@cpu_helper
def _divide_toward_zero(a, b):
    q = a // b
    if q < 0 and q * b != a:
        q += 1
    return q


@cpu_kernel
def avg_pool2d_int(x, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, y):
    """``y`` (N, C, ho, wo): each window's mean (integer ``x``), rounded toward zero."""
    n, channels, h, w = x.shape
    ho, wo = y.shape[2], y.shape[3]
    h0, h1, hcount = _avg_windows(h, ho, kh, sh, ph, count_include_pad)
    w0, w1, wcount = _avg_windows(w, wo, kw, sw, pw, count_include_pad)
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        plane = x[b, c]
        for oh in range(ho):
            for ow in range(wo):
                total = np.int64(0)
                for ih in range(h0[oh], h1[oh]):
                    for iw in range(w0[ow], w1[ow]):
                        total += np.int64(plane[ih, iw])
                d = np.int64(divisor if divisor != 0 else hcount[oh] * wcount[ow])
                y[b, c, oh, ow] = _divide_toward_zero(total, d)


@cpu_kernel
def avg_pool2d_backward(dy, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, dx):
    """``dx`` (N, C, H, W): each output's gradient spread evenly over its window."""
    n, channels, h, w = dx.shape
    ho, wo = dy.shape[2], dy.shape[3]
    h0, h1, hcount = _avg_windows(h, ho, kh, sh, ph, count_include_pad)
    w0, w1, wcount = _avg_windows(w, wo, kw, sw, pw, count_include_pad)
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        plane = dx[b, c]
        plane[:, :] = 0
        for oh in range(ho):
            for ow in range(wo):
                d = divisor if divisor != 0 else hcount[oh] * wcount[ow]
                g = np.float64(dy[b, c, oh, ow]) / d
                for ih in range(h0[oh], h1[oh]):
                    for iw in range(w0[ow], w1[ow]):
                        plane[ih, iw] += g


@cpu_helper
def _adaptive_windows(size, out):
    """Along one axis: output ``o`` averages ``[floor(o*size/out), ceil((o+1)*size/out))``."""
    start = np.empty(out, np.int64)
    end = np.empty(out, np.int64)
    for o in range(out):
        start[o] = (o * size) // out
        end[o] = ((o + 1) * size + out - 1) // out
    return start, end


@cpu_kernel
def adaptive_avg_pool2d(x, y):
    """``y`` (N, C, ho, wo): the mean of each adaptive window of ``x``."""
    n, channels, h, w = x.shape
    ho, wo = y.shape[2], y.shape[3]
    h0, h1 = _adaptive_windows(h, ho)
    w0, w1 = _adaptive_windows(w, wo)
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        plane = x[b, c]
        for oh in range(ho):
            for ow in range(wo):
                total = 0.0
                for ih in range(h0[oh], h1[oh]):
                    for iw in range(w0[ow], w1[ow]):
                        total += np.float64(plane[ih, iw])
                y[b, c, oh, ow] = total / ((h1[oh] - h0[oh]) * (w1[ow] - w0[ow]))


@cpu_kernel
def adaptive_avg_pool2d_backward(dy, dx):
    """``dx`` (N, C, H, W): each output's gradient spread evenly over its adaptive window."""
    n, channels, h, w = dx.shape
    ho, wo = dy.shape[2], dy.shape[3]
    h0, h1 = _adaptive_windows(h, ho)
    w0, w1 = _adaptive_windows(w, wo)
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        plane = dx[b, c]
        plane[:, :] = 0
        for oh in range(ho):
            for ow in range(wo):
                g = np.float64(dy[b, c, oh, ow]) / ((h1[oh] - h0[oh]) * (w1[ow] - w0[ow]))
                for ih in range(h0[oh], h1[oh]):
                    for iw in range(w0[ow], w1[ow]):
                        plane[ih, iw] += g
