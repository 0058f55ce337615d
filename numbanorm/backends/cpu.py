"""The CPU backend: numpy arrays and the ``@njit`` kernels of ``numbanorm.kernels.cpu``."""

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from numbanorm.backends.host_cache import empty
from numbanorm.kernels.config import PARALLEL_MIN_SIZE

__all__ = ["DEVICE", "asarray", "empty", "full", "kernel", "to_host"]

DEVICE = "cpu"
full = np.full


def asarray(data: Any, dtype: Any = None) -> np.ndarray:
    """``data`` as a numpy array, copied only when it does not live on the host or needs a cast."""
    if hasattr(data, "copy_to_host"):
        data = data.copy_to_host()
    return np.asarray(data, dtype=dtype)


def to_host(array: np.ndarray) -> np.ndarray:
    return array


def kernel(family: str, name: str, size: int) -> Callable:
    """Kernel ``name`` of module ``family`` (importing it imports numba): the parallel kernel, or
    its serial twin for an input of fewer than ``NUMBANORM_PARALLEL_MIN_SIZE`` elements."""
    function = getattr(importlib.import_module(f"numbanorm.kernels.cpu.{family}"), name)
    return function if size >= PARALLEL_MIN_SIZE else function.serial
