"""Pick the kernels and the array library of the device that arrays live on.

numpy arrays live on ``cpu``. Arrays exposing ``__cuda_array_interface__`` (CuPy, torch CUDA
tensors, numba device arrays) or numba's ``copy_to_host`` (numba device arrays, also those of the
CUDA simulator, which have no interface) live on ``cuda``; the
CUDA backend is imported only when such an array first appears, so the CPU path never pays for
``numba.cuda``. A backend is a module with ``DEVICE``, ``empty``, ``full``, ``asarray``, ``to_host``
and ``kernel(family, name, size)``, which returns the kernel to run on an input of ``size``
elements.
"""

import importlib
from types import ModuleType
from typing import Any

_BACKEND_MODULES = {"cpu": "numbanorm.backends.cpu", "cuda": "numbanorm.backends.cuda"}


def device_of(array: Any) -> str:
    """The device an array lives on: ``"cuda"`` for a CUDA array, ``"cpu"`` otherwise."""
    cuda = hasattr(array, "__cuda_array_interface__") or hasattr(array, "copy_to_host")
    return "cuda" if cuda else "cpu"


def backend(device: str) -> ModuleType:
    """The backend module for ``device`` (``"cpu"`` or ``"cuda"``), imported on first use."""
    try:
        name = _BACKEND_MODULES[device]
    except KeyError:
        raise RuntimeError(
            f"Expected one of cpu, cuda device type at start of device string: {device}"
        ) from None
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        raise RuntimeError(f"numbanorm has no kernels for device '{device}' yet") from None


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
