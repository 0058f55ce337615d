"""2-D convolution on the CPU: im2col / col2im kernels around a BLAS matrix product.

A convolution of ``x`` (N, C, H, W) with a kernel of ``kh x kw`` taps, ``stride`` (sh, sw),
``dilation`` (dh, dw) and zero padding of ``pt`` rows on top and ``pl`` columns on the left
(the bottom and right padding only show in the output size ``ho x wo``) is a matrix product with
the input's *columns*:

- ``nchw``: ``cols`` (N, C*kh*kw, ho*wo), row ``(c*kh + i)*kw + j``, column ``oh*wo + ow``, holds
  ``x[n, c, oh*sh - pt + i*dh, ow*sw - pl + j*dw]`` (zero outside the input); the output of
  sample ``n`` is ``weight (O, C*kh*kw) @ cols[n]``, already in NCHW order.
- ``nhwc``: ``cols`` (N*ho*wo, kh*kw*C) from a channels-last ``x`` viewed as (N, H, W, C), row
  ``(n*ho + oh)*wo + ow``, column ``(i*kw + j)*C + c``: runs of ``C`` contiguous values are copied
  whole, and ``cols @ weight (O, kh*kw*C).T`` is the channels-last output in one product.

``col2im`` is the adjoint: it sums the columns' gradient back into the input's. The nchw kernel
gives each thread whole (n, c) planes; the nhwc one gathers, for each input row, the output
pixels that read it, so no two threads write the same element and no atomics are needed.
"""

from numba import prange

from numbanorm.kernels.config import cpu_helper, cpu_kernel


@cpu_helper
def _valid_range(offset, step, size, count):
    """The ``o`` in ``[0, count)`` with ``0 <= o*step + offset < size``, as ``[lo, hi)``."""
    lo = 0
    if offset < 0:
        lo = (-offset + step - 1) // step
    last = size - 1 - offset
    hi = 0 if last < 0 else min(count, last // step + 1)
    return lo, max(lo, hi)


@cpu_kernel
def im2col_nchw(x, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, cols):
    """``cols`` (N, C*kh*kw, ho*wo) from ``x`` (N, C, H, W), any strides."""
    n, channels, h, w = x.shape
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        for i in range(kh):
            row_lo, row_hi = _valid_range(i * dh - pt, sh, h, ho)
            for j in range(kw):
                row = (c * kh + i) * kw + j
                col_lo, col_hi = _valid_range(j * dw - pl, sw, w, wo)
                for oh in range(ho):
                    base = oh * wo
                    if oh < row_lo or oh >= row_hi:
                        for ow in range(wo):
                            cols[b, row, base + ow] = 0
                        continue
                    ih = oh * sh - pt + i * dh
                    for ow in range(col_lo):
                        cols[b, row, base + ow] = 0
                    for ow in range(col_lo, col_hi):
                        cols[b, row, base + ow] = x[b, c, ih, ow * sw - pl + j * dw]
                    for ow in range(col_hi, wo):
                        cols[b, row, base + ow] = 0


@cpu_kernel
def col2im_nchw(dcols, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, dx):
    """``dx`` (N, C, H, W) = the adjoint of ``im2col_nchw`` applied to ``dcols``."""
    n, channels, h, w = dx.shape
    for t in prange(n * channels):
        b = t // channels
        c = t - b * channels
        for ih in range(h):
            for iw in range(w):
                dx[b, c, ih, iw] = 0
        for i in range(kh):
            row_lo, row_hi = _valid_range(i * dh - pt, sh, h, ho)
            for j in range(kw):
                row = (c * kh + i) * kw + j
                col_lo, col_hi = _valid_range(j * dw - pl, sw, w, wo)
                for oh in range(row_lo, row_hi):
                    ih = oh * sh - pt + i * dh
                    base = oh * wo
                    for ow in range(col_lo, col_hi):
                        dx[b, c, ih, ow * sw - pl + j * dw] += dcols[b, row, base + ow]


@cpu_kernel
def im2col_nhwc(x, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, cols):
    """``cols`` (N*ho*wo, kh*kw*C) from ``x`` viewed as (N, H, W, C)."""
    n, h, w, channels = x.shape
    for t in prange(n * ho):
        b = t // ho
        oh = t - b * ho
        for ow in range(wo):
            r = t * wo + ow
            for i in range(kh):
                ih = oh * sh - pt + i * dh
                for j in range(kw):
                    iw = ow * sw - pl + j * dw
                    base = (i * kw + j) * channels
                    if ih < 0 or ih >= h or iw < 0 or iw >= w:
                        for c in range(channels):
                            cols[r, base + c] = 0
                    else:
                        for c in range(channels):
                            cols[r, base + c] = x[b, ih, iw, c]


@cpu_kernel
def col2im_nhwc(dcols, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, dx):
    """``dx`` viewed as (N, H, W, C) = the adjoint of ``im2col_nhwc`` applied to ``dcols``."""
    n, h, w, channels = dx.shape
    for t in prange(n * h):
        b = t // h
        ih = t - b * h
        for iw in range(w):
            for c in range(channels):
                dx[b, ih, iw, c] = 0
            for i in range(kh):
                u = ih + pt - i * dh
                if u < 0 or u % sh != 0 or u // sh >= ho:
                    continue
                oh = u // sh
                for j in range(kw):
                    v = iw + pl - j * dw
                    if v < 0 or v % sw != 0 or v // sw >= wo:
                        continue
                    r = (b * ho + oh) * wo + v // sw
                    base = (i * kw + j) * channels
                    for c in range(channels):
                        dx[b, ih, iw, c] += dcols[r, base + c]
