"""2-D pooling on the CPU: max, average and adaptive average, forward and backward.

Every kernel takes 4-D arrays ``(N, C, H, W)`` of any strides (a channels-last array is read in
place) and gives each thread whole ``(n, c)`` planes, so the backward kernels scatter into their
own plane without atomics. Windows follow torch's CPU kernels: a window of ``kh x kw`` taps
``dilation`` apart starts at ``o*stride - pad`` and is clipped to the input; ``ceil_mode`` only
shows in the output size the caller allocates.

- max: NaN wins (the last NaN of the window), otherwise the first maximum, as torch's
  ``val > max || isnan(val)``; ``indices`` hold ``ih*W + iw`` within the plane (torch's).
- average: floating inputs sum in float64; int64 inputs sum exactly and divide rounding toward
  zero, as C++ does. The divisor is ``divisor`` when nonzero, else the window's size clipped to
  the padded input (``count_include_pad``) or to the input itself.
- adaptive average: output ``o`` of ``O`` averages input ``[floor(o*I/O), ceil((o+1)*I/O))``.
"""

import numpy as np
from numba import prange

from numbanorm.kernels.config import cpu_helper, cpu_kernel


@cpu_helper
def _first_tap(start, step):
    """The first of the taps ``start, start + step, ...`` that is not negative."""
    if start >= 0:
        return start
    return start + ((-start + step - 1) // step) * step


@cpu_kernel
def max_pool2d(x, kh, kw, sh, sw, ph, pw, dh, dw, y, indices):
    """``y`` and ``indices`` (N, C, ho, wo): each window's maximum and where it is."""
    n, channels, h, w = x.shape
    ho, wo = y.shape[2], y.shape[3]
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        for oh in range(ho):
            h0 = oh * sh - ph
            h1 = min(h0 + (kh - 1) * dh + 1, h)
            h0 = _first_tap(h0, dh)
            for ow in range(wo):
                w0 = ow * sw - pw
                w1 = min(w0 + (kw - 1) * dw + 1, w)
                w0 = _first_tap(w0, dw)
                best = h0 * w + w0
                value = x[b, c, min(h0, h - 1), min(w0, w - 1)]
                for ih in range(h0, h1, dh):
                    for iw in range(w0, w1, dw):
                        v = x[b, c, ih, iw]
                        if v > value or v != v:
                            value = v
                            best = ih * w + iw
                y[b, c, oh, ow] = value
                indices[b, c, oh, ow] = best


@cpu_kernel
def max_pool2d_backward(dy, indices, dx):
    """``dx`` (N, C, H, W): each output's gradient added where its maximum was."""
    n, channels, h, w = dx.shape
    ho, wo = dy.shape[2], dy.shape[3]
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        for ih in range(h):
            for iw in range(w):
                dx[b, c, ih, iw] = 0
        for oh in range(ho):
            for ow in range(wo):
                k = indices[b, c, oh, ow]
                i = k // w
                dx[b, c, i, k - i * w] += dy[b, c, oh, ow]


@cpu_helper
def _avg_window(o, stride, pad, kernel, size, count_include_pad):
    """The window of output ``o`` clipped to the input, and its size for the divisor."""
    start = o * stride - pad
    end = min(start + kernel, size + pad)
    padded = end - start
    start = max(start, 0)
    end = min(end, size)
    return start, end, padded if count_include_pad else end - start


@cpu_kernel
def avg_pool2d(x, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, y):
    """``y`` (N, C, ho, wo): each window's mean (floating ``x``)."""
    n, channels = x.shape[0], x.shape[1]
    h, w = x.shape[2], x.shape[3]
    ho, wo = y.shape[2], y.shape[3]
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        for oh in range(ho):
            h0, h1, hcount = _avg_window(oh, sh, ph, kh, h, count_include_pad)
            for ow in range(wo):
                w0, w1, wcount = _avg_window(ow, sw, pw, kw, w, count_include_pad)
                total = 0.0
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        total += np.float64(x[b, c, ih, iw])
                y[b, c, oh, ow] = total / (divisor if divisor != 0 else hcount * wcount)


@cpu_helper
def _divide_toward_zero(a, b):
    q = a // b
    if q < 0 and q * b != a:
        q += 1
    return q


@cpu_kernel
def avg_pool2d_int(x, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, y):
    """``y`` (N, C, ho, wo): each window's mean (integer ``x``), rounded toward zero."""
    n, channels = x.shape[0], x.shape[1]
    h, w = x.shape[2], x.shape[3]
    ho, wo = y.shape[2], y.shape[3]
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        for oh in range(ho):
            h0, h1, hcount = _avg_window(oh, sh, ph, kh, h, count_include_pad)
            for ow in range(wo):
                w0, w1, wcount = _avg_window(ow, sw, pw, kw, w, count_include_pad)
                total = np.int64(0)
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        total += np.int64(x[b, c, ih, iw])
                d = np.int64(divisor if divisor != 0 else hcount * wcount)
                y[b, c, oh, ow] = _divide_toward_zero(total, d)


@cpu_kernel
def avg_pool2d_backward(dy, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, dx):
    """``dx`` (N, C, H, W): each output's gradient spread evenly over its window."""
    n, channels, h, w = dx.shape
    ho, wo = dy.shape[2], dy.shape[3]
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        for ih in range(h):
            for iw in range(w):
                dx[b, c, ih, iw] = 0
        for oh in range(ho):
            h0, h1, hcount = _avg_window(oh, sh, ph, kh, h, count_include_pad)
            for ow in range(wo):
                w0, w1, wcount = _avg_window(ow, sw, pw, kw, w, count_include_pad)
                g = np.float64(dy[b, c, oh, ow]) / (divisor if divisor != 0 else hcount * wcount)
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        dx[b, c, ih, iw] += g


@cpu_helper
def _adaptive_window(o, out_size, in_size):
    return (o * in_size) // out_size, ((o + 1) * in_size + out_size - 1) // out_size


@cpu_kernel
def adaptive_avg_pool2d(x, y):
    """``y`` (N, C, ho, wo): the mean of each adaptive window of ``x``."""
    n, channels, h, w = x.shape
    ho, wo = y.shape[2], y.shape[3]
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        for oh in range(ho):
            h0, h1 = _adaptive_window(oh, ho, h)
            for ow in range(wo):
                w0, w1 = _adaptive_window(ow, wo, w)
                total = 0.0
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        total += np.float64(x[b, c, ih, iw])
                y[b, c, oh, ow] = total / ((h1 - h0) * (w1 - w0))


@cpu_kernel
def adaptive_avg_pool2d_backward(dy, dx):
    """``dx`` (N, C, H, W): each output's gradient spread evenly over its adaptive window."""
    n, channels, h, w = dx.shape
    ho, wo = dy.shape[2], dy.shape[3]
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        for ih in range(h):
            for iw in range(w):
                dx[b, c, ih, iw] = 0
        for oh in range(ho):
            h0, h1 = _adaptive_window(oh, ho, h)
            for ow in range(wo):
                w0, w1 = _adaptive_window(ow, wo, w)
                g = np.float64(dy[b, c, oh, ow]) / ((h1 - h0) * (w1 - w0))
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        dx[b, c, ih, iw] += g
