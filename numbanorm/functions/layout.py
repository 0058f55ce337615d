"""3-D views of ``(N, C, *spatial)`` arrays for the channel-wise kernels, copying only when the
strides leave no choice. See ``numbanorm.kernels.cpu.batch_norm`` for the two layouts. Arrays of
either device: the views and copies are the backend's.
"""

from math import prod
from typing import Any

from numbanorm.dispatch import backend, device_of

NCS = "ncs"
NSC = "nsc"


def _channels_to_end(xp: Any, a: Any) -> Any:
    # a literal order: np.moveaxis costs more than the kernel on a tiny input
    return xp.permute(a, (0, *range(2, a.ndim), 1))


def _channels_to_front(xp: Any, a: Any) -> Any:
    return xp.permute(a, (0, a.ndim - 1, *range(1, a.ndim - 1)))


def channel_view(x: Any) -> tuple[Any, str]:
    """``x`` as ``(N, C, S)`` (contiguous NCHW) or ``(N, S, C)`` (channels-last), and which."""
    n, c = x.shape[:2]
    s = prod(x.shape[2:])
    # flags["C_CONTIGUOUS"]: numpy's flags and numba's device arrays' flags both answer it
    if x.flags["C_CONTIGUOUS"]:
        # without spatial axes the two layouts are one; the channels-last kernels take it
        return (x.reshape(n, c, s), NCS) if s > 1 else (x.reshape(n, s, c), NSC)
    xp = backend(device_of(x))
    channels_last = _channels_to_end(xp, x)
    if channels_last.flags["C_CONTIGUOUS"]:
        return channels_last.reshape(n, s, c), NSC
    return xp.ascontiguousarray(x).reshape(n, c, s), NCS


def as_layout(a: Any, layout: str) -> Any:
    """``a`` (shape ``(N, C, *spatial)``) as a contiguous 3-D view in ``layout``."""
    xp = backend(device_of(a))
    n, c = a.shape[:2]
    s = prod(a.shape[2:])
    if layout == NCS:
        return xp.ascontiguousarray(a).reshape(n, c, s)
    if s == 1:  # the two layouts are one; the transpose costs more than a tiny kernel
        return xp.ascontiguousarray(a).reshape(n, s, c)
    return xp.ascontiguousarray(_channels_to_end(xp, a)).reshape(n, s, c)


def empty_in_layout(shape: tuple, dtype: Any, layout: str, device: str = "cpu") -> tuple[Any, Any]:
    """A new ``(N, C, *spatial)`` array on ``device`` stored in ``layout``, and its 3-D view."""
    xp = backend(device)
    n, c = shape[:2]
    spatial = tuple(shape[2:])
    s = prod(spatial)
    if layout == NCS or s == 1:
        out = xp.empty(shape, dtype)
        return out, out.reshape((n, c, s) if layout == NCS else (n, s, c))
    stored = xp.empty((n, *spatial, c), dtype)
    return _channels_to_front(xp, stored), stored.reshape(n, s, c)
