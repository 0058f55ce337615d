"""The CPU backend: numpy arrays and the ``@njit`` kernels of ``numbanorm.kernels.cpu``."""

import importlib
from types import ModuleType
from typing import Any

import numpy as np

DEVICE = "cpu"
empty = np.empty
full = np.full


def asarray(data: Any, dtype: Any = None) -> np.ndarray:
    """``data`` as a numpy array, copied only when it does not live on the host or needs a cast."""
    if hasattr(data, "copy_to_host"):
        data = data.copy_to_host()
    return np.asarray(data, dtype=dtype)


def to_host(array: np.ndarray) -> np.ndarray:
    return array


def kernels(family: str) -> ModuleType:
    """The kernel module of ``family`` (``"batch_norm"``); importing it imports numba."""
    return importlib.import_module(f"numbanorm.kernels.cpu.{family}")
