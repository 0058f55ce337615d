"""Pick the kernels and the array library of the device that arrays live on.

numpy arrays live on ``cpu``. Arrays exposing ``__cuda_array_interface__`` (CuPy, torch CUDA
tensors, numba device arrays) or numba's ``copy_to_host`` (numba device arrays, also those of the
CUDA simulator, which have no interface) live on ``cuda``; the
CUDA backend is imported only when such an array first appears, so the CPU path never pays for
``numba.cuda``. A backend is a module with ``DEVICE``, ``kernel(family, name, size)``, which
returns the kernel to run on an input of ``size`` elements, and the array operations the
Functions use, under numpy's names: ``empty``, ``empty_like``, ``full``, ``asarray``,
``to_host``, ``astype``, ``ascontiguousarray``, ``permute``, ``broadcast_to``, ``copyto``,
``add`` and ``inverse_std``, and ``increment`` for a counter (see ``numbanorm.backends.cpu`` and
``numbanorm.backends.cuda``).
"""

import importlib
from types import ModuleType
from typing import Any

import numpy as np

_BACKEND_MODULES = {"cpu": "numbanorm.backends.cpu", "cuda": "numbanorm.backends.cuda"}
_loaded: dict[str, ModuleType] = {}  # a dict lookup: every kernel call goes through backend()


def device_of(array: Any) -> str:
    """The device an array lives on: ``"cuda"`` for a CUDA array, ``"cpu"`` otherwise."""
    if type(array) is np.ndarray:  # the common case, asked several times per call
        return "cpu"
    cuda = hasattr(array, "__cuda_array_interface__") or hasattr(array, "copy_to_host")
    return "cuda" if cuda else "cpu"


def backend(device: str) -> ModuleType:
    """The backend module for ``device`` (``"cpu"`` or ``"cuda"``), imported on first use."""
    module = _loaded.get(device)
    if module is not None:
        return module
    try:
        name = _BACKEND_MODULES[device]
    except KeyError:
        raise RuntimeError(
            f"Expected one of cpu, cuda device type at start of device string: {device}"
        ) from None
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name not in (name, "numba.cuda"):
            raise
        raise RuntimeError(
            f"numbanorm has no kernels for device '{device}' here: {error.msg} (CUDA needs the "
            "numba-cuda package)"
        ) from None
    _loaded[device] = module
    return module


def common_device(*arrays: Any) -> str:
    """The one device all non-None ``arrays`` live on; torch's error if they disagree."""
    devices = {device_of(a) for a in arrays if a is not None}
    if len(devices) > 1:
        first, second = sorted(devices, key=lambda d: d != "cuda")
        raise RuntimeError(
            "Expected all tensors to be on the same device, but found at least two devices, "
            f"{first}:0 and {second}!"
        )
    return devices.pop() if devices else "cpu"
