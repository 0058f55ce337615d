"""The CPU backend: numpy arrays and the ``@njit`` kernels of ``numbanorm.kernels.cpu``.

Its array operations are numpy's own (``numbanorm.backends.cuda`` has the same names for device
arrays), so the Functions are written once against either backend.
"""

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from numbanorm.backends.host_cache import empty
from numbanorm.dispatch import backend, device_of
from numbanorm.kernels.config import PARALLEL_MIN_SIZE

__all__ = [
    "DEVICE",
    "add",
    "asarray",
    "ascontiguousarray",
    "astype",
    "broadcast_to",
    "copyto",
    "empty",
    "empty_like",
    "full",
    "increment",
    "inverse_std",
    "kernel",
    "permute",
    "to_host",
]

DEVICE = "cpu"
full = np.full
empty_like = np.empty_like
ascontiguousarray = np.ascontiguousarray
broadcast_to = np.broadcast_to
add = np.add


def asarray(data: Any, dtype: Any = None) -> np.ndarray:
    """``data`` as a numpy array, copied only when it does not live on the host or needs a cast."""
    if device_of(data) == "cuda":
        data = backend("cuda").to_host(data)
    return np.asarray(data, dtype=dtype)


def increment(counter: np.ndarray) -> None:
    """Add 1 to a 0-d array in place (a module's ``num_batches_tracked``)."""
    counter[()] += 1  # a tenth of np.add(counter, 1, out=counter) on a 0-d array


def to_host(array: np.ndarray) -> np.ndarray:
    return array


def astype(array: np.ndarray, dtype: Any) -> np.ndarray:
    """``array`` itself when of ``dtype``, else a cast copy in its layout."""
    return array.astype(dtype, copy=False)


def permute(array: np.ndarray, axes: Any) -> np.ndarray:
    """A view with the axes in the order ``axes``."""
    return array.transpose(axes)


def copyto(dst: np.ndarray, src: Any) -> None:
    """``dst[...] = src``, cast to ``dst``'s dtype."""
    dst[...] = src


def inverse_std(var: np.ndarray, eps: float) -> np.ndarray:
    """``1/sqrt(var + eps)`` as a flat float64 array."""
    with np.errstate(divide="ignore", invalid="ignore"):  # inf or NaN, as in torch
        return 1.0 / np.sqrt(var.astype(np.float64).reshape(-1) + eps)


_kernels: dict[tuple[str, str], Callable] = {}


def kernel(family: str, name: str, size: int) -> Callable:
    """Kernel ``name`` of module ``family`` (importing it imports numba): the parallel kernel, or
    its serial twin for an input of fewer than ``NUMBANORM_PARALLEL_MIN_SIZE`` elements."""
    function = _kernels.get((family, name))
    if function is None:
        module = importlib.import_module(f"numbanorm.kernels.cpu.{family}")
        function = _kernels[family, name] = getattr(module, name)
    return function if size >= PARALLEL_MIN_SIZE else function.serial
