"""3-D views of ``(N, C, *spatial)`` arrays for the channel-wise kernels, copying only when the
strides leave no choice. See ``numbanorm.kernels.cpu.batch_norm`` for the two layouts.
"""

from math import prod
from typing import Any

import numpy as np

from numbanorm.backends.host_cache import empty

NCS = "ncs"
NSC = "nsc"


def _channels_to_end(a: Any) -> Any:
    # transpose with a literal order: np.moveaxis costs more than the kernel on a tiny input
    return a.transpose(0, *range(2, a.ndim), 1)


def _channels_to_front(a: Any) -> Any:
    return a.transpose(0, a.ndim - 1, *range(1, a.ndim - 1))


def channel_view(x: Any) -> tuple[Any, str]:
    """``x`` as ``(N, C, S)`` (contiguous NCHW) or ``(N, S, C)`` (channels-last), and which."""
    n, c = x.shape[:2]
    s = prod(x.shape[2:])
    if s > 1 and x.flags.c_contiguous:
        return x.reshape(n, c, s), NCS
    channels_last = _channels_to_end(x)
    if channels_last.flags.c_contiguous:
        return channels_last.reshape(n, s, c), NSC
    return np.ascontiguousarray(x).reshape(n, c, s), NCS


def as_layout(a: Any, layout: str) -> Any:
    """``a`` (shape ``(N, C, *spatial)``) as a contiguous 3-D view in ``layout``."""
    n, c = a.shape[:2]
    s = prod(a.shape[2:])
    if layout == NCS:
        return np.ascontiguousarray(a).reshape(n, c, s)
    return np.ascontiguousarray(_channels_to_end(a)).reshape(n, s, c)


def empty_in_layout(shape: tuple, dtype: Any, layout: str) -> tuple[Any, Any]:
    """A new ``(N, C, *spatial)`` array stored in ``layout``, and its 3-D view."""
    n, c = shape[:2]
    spatial = tuple(shape[2:])
    s = prod(spatial)
    if layout == NCS:
        out = empty(shape, dtype)
        return out, out.reshape(n, c, s)
    stored = empty((n, *spatial, c), dtype)
    return _channels_to_front(stored), stored.reshape(n, s, c)
