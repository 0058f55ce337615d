"""dtype and device arguments as torch takes them, turned into numpy dtypes and ``Device``."""

import re
from typing import Any

import numpy as np

DEFAULT_DTYPE = np.dtype(np.float32)


def as_dtype(dtype: Any) -> np.dtype:
    """A numpy dtype from a numpy dtype, a name (``"float32"``) or a torch dtype."""
    name = str(dtype)
    if name.startswith("torch."):
        dtype = name[len("torch.") :]
    return np.dtype(dtype)


_TORCH_DEVICE_TYPES = (
    "cpu, cuda, ipu, xpu, mkldnn, opengl, opencl, ideep, hip, ve, fpga, maia, xla, lazy, vulkan, "
    "mps, meta, hpu, mtia, privateuseone"
)
_DEVICE_STRING = re.compile(r"([a-zA-Z_]+)(?::([1-9]\d*|0))?")


def _is_device_like(obj: Any) -> bool:
    """A torch.device (or this module's Device): has ``type`` and ``index``; dtypes have not."""
    return not isinstance(obj, (str, np.dtype)) and hasattr(obj, "type") and hasattr(obj, "index")


class Device:
    """A device (torch.device): ``type`` is ``"cpu"`` or ``"cuda"``; compares equal to its name.

    Takes what torch.device takes (``"cuda:1"``, ``("cuda", 1)``, a Device) and raises torch's
    errors for malformed strings; device types torch knows but numbanorm has no kernels for are
    refused too.
    """

    __slots__ = ("index", "type")

    def __init__(self, spec: "str | int | Device | None" = None, index: int | None = None):
        if isinstance(spec, Device) or _is_device_like(spec):  # torch.device too
            spec = str(spec)
        elif spec is None:
            spec = "cpu"
        elif isinstance(spec, int) and not isinstance(spec, bool):
            spec, index = "cuda", spec
        if not isinstance(spec, str):
            raise TypeError(
                f"device() received an invalid combination of arguments - got "
                f"({type(spec).__name__}), but expected one of:\n * (torch.device device)\n"
                f"      didn't match because some of the arguments have invalid types: "
                f"(!{type(spec).__name__}!)\n * (str type, int index = -1)\n"
            )
        if not spec:
            raise RuntimeError("Device string must not be empty")
        match = _DEVICE_STRING.fullmatch(spec)
        if match is None:
            raise RuntimeError(f"Invalid device string: '{spec}'")
        kind, parsed = match.groups()
        if kind not in _TORCH_DEVICE_TYPES.split(", "):
            raise RuntimeError(
                f"Expected one of {_TORCH_DEVICE_TYPES} device type at start of device string: "
                f"{kind}"
            )
        if index is not None:
            if parsed is not None:
                raise RuntimeError(
                    "type (string) must not include an index because index was passed "
                    f"explicitly: {spec}"
                )
            if index < 0:
                raise RuntimeError("Device index must not be negative")
        if kind not in ("cpu", "cuda"):
            raise RuntimeError(f"numbanorm has no kernels for device '{kind}'")
        self.type = kind
        self.index = index if parsed is None else int(parsed)

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return (
            f"device(type='{self.type}')"
            if self.index is None
            else (f"device(type='{self.type}', index={self.index})")
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = Device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


def device_type(device: Any) -> str:
    """The backend that runs ``device`` (anything Device takes; None is the CPU): ``"cpu"`` or
    ``"cuda"``. numbanorm drives one GPU, numba's current device, which it calls ``cuda:0``."""
    device = device if isinstance(device, Device) else Device(device)
    if device.type == "cuda" and device.index not in (None, 0):
        raise RuntimeError(
            f"numbanorm runs on one GPU, cuda:0 (numba's current device), not on {device}"
        )
    return device.type


_TO_KEYWORDS = ("device", "dtype", "non_blocking", "copy")


def _is_dtype_name(name: str) -> bool:
    try:
        np.dtype(name)
    except TypeError:
        return False
    return True


def parse_to(args: tuple, kwargs: dict) -> "tuple[Device | None, np.dtype | None]":
    """The device and dtype of ``to(device)``, ``to(dtype)``, ``to(device, dtype)`` and their
    keyword forms (torch.Tensor.to and torch.nn.Module.to); a string is a device unless it
    names a numpy dtype (``"float64"``)."""
    for key in kwargs:
        if key not in _TO_KEYWORDS:
            raise TypeError(f"to() got an unexpected keyword argument '{key}'")
    device = kwargs.get("device")
    dtype = kwargs.get("dtype")
    for arg in args:
        if (
            isinstance(arg, (Device, int))
            or _is_device_like(arg)
            or (isinstance(arg, str) and not _is_dtype_name(arg))
        ):
            device = arg
        else:
            dtype = arg
    return (
        None if device is None else Device(device),
        None if dtype is None else as_dtype(dtype),
    )


def size_str(shape: tuple) -> str:
    """A shape as torch prints it in messages: ``torch.Size([2, 3])``."""
    return f"torch.Size({list(shape)})"


_TORCH_NAMES = {
    "float16": "Half",
    "float32": "Float",
    "float64": "Double",
    "complex64": "ComplexFloat",
    "complex128": "ComplexDouble",
    "int8": "Char",
    "int16": "Short",
    "int32": "Int",
    "int64": "Long",
    "uint8": "Byte",
    "uint16": "UInt16",
    "uint32": "UInt32",
    "uint64": "UInt64",
    "bool": "Bool",
}


def torch_name(dtype: np.dtype) -> str:
    """A dtype's name in torch's messages: ``Float`` for float32, ``Long`` for int64."""
    return _TORCH_NAMES.get(np.dtype(dtype).name, np.dtype(dtype).name)
