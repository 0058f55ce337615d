"""Large host arrays in reused buffers: a caching allocator for the CPU, as torch has one for
CUDA.

A fresh array of tens of MB costs page faults and the kernel's zeroing of every page on its first
write, and glibc hands blocks of 32 MB and more back to the system when they are freed, so a
training loop pays that on every call: about a third of a float64 GroupNorm forward at
(32, 64, 56, 56). Arrays of ``MIN_BYTES`` or more are therefore views of a buffer kept here: a
uint8 numpy array, so that numpy asks the kernel for transparent huge pages for it (madvise), as
it does for its own arrays of 4 MiB and more; a ``bytearray`` got 4 KiB pages. A buffer is free
again when no array refers to it any more (its reference count is back to the cache's own), so
views, slices and reshapes of an output keep it alive, as they would keep numpy's memory alive.
``NUMBANORM_HOST_CACHE_MB`` caps the bytes kept (default 1024; 0 turns the cache off); past the
cap, free buffers are dropped oldest first, and an array that still does not fit is a plain
``np.empty``.
"""

import os
import sys
import threading
from math import prod
from typing import Any

import numpy as np

MIN_BYTES = 1 << 20
CAPACITY = int(os.environ.get("NUMBANORM_HOST_CACHE_MB", "1024")) << 20
_PAGE = 4096
_MAX_ITEMSIZE = 16  # complex128

_lock = threading.Lock()
_buffers: list[np.ndarray] = []  # oldest first, 1-D uint8


def _references_in_scan(buffers: list) -> int:
    for buffer in buffers:
        return sys.getrefcount(buffer)
    raise AssertionError("unreachable")


# A buffer's reference count while ``_free`` looks at it and nothing else holds it: the list
# entry, the loop variable and getrefcount's argument, counted once here so that a Python that
# counts differently still agrees.
_FREE_REFERENCES = _references_in_scan([np.empty(0, np.uint8)])


def _free(size: int) -> np.ndarray | None:
    for buffer in _buffers:
        if len(buffer) == size and sys.getrefcount(buffer) == _FREE_REFERENCES:
            return buffer
    return None


def _drop_free_buffers(needed: int) -> None:
    """Drop free buffers, oldest first, until ``needed`` more bytes fit under the cap."""
    total = sum(len(b) for b in _buffers)
    kept = []
    for buffer in _buffers:
        # Tested before ``kept`` holds it too. Never list.remove: it compares numpy arrays by ==.
        if total + needed > CAPACITY and sys.getrefcount(buffer) == _FREE_REFERENCES:
            total -= len(buffer)
        else:
            kept.append(buffer)
    _buffers[:] = kept


def empty(shape: Any, dtype: Any = float) -> np.ndarray:
    """An uninitialized C-contiguous array, like ``np.empty(shape, dtype)``."""
    count = shape if isinstance(shape, int) else prod(shape)
    # Most arrays are small (statistics, parameters): those under MIN_BYTES in any dtype the
    # kernels use skip building a dtype object. np.empty is right for any array, cached or not.
    if count * _MAX_ITEMSIZE < MIN_BYTES:
        return np.empty(shape, dtype)
    dtype = np.dtype(dtype)
    nbytes = count * dtype.itemsize
    if nbytes < MIN_BYTES or nbytes > CAPACITY:
        return np.empty(shape, dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    size = -(-nbytes // _PAGE) * _PAGE
    with _lock:
        buffer = _free(size)
        if buffer is None:
            _drop_free_buffers(size)
            if sum(len(b) for b in _buffers) + size > CAPACITY:
                return np.empty(shape, dtype)
            buffer = np.empty(size, np.uint8)
            _buffers.append(buffer)
        return buffer[:nbytes].view(dtype).reshape(shape)


def holds(buffer: Any) -> bool:
    """Whether ``buffer`` is one of the cache's buffers (which the cache itself refers to)."""
    return any(b is buffer for b in _buffers)


def empty_cache() -> None:
    """Hand the free buffers back to the system (buffers in use stay until their arrays go)."""
    with _lock:
        _buffers[:] = [b for b in _buffers if sys.getrefcount(b) > _FREE_REFERENCES]
