"""dtype and device arguments as torch takes them, turned into numpy dtypes and ``Device``."""

from typing import Any

import numpy as np

DEFAULT_DTYPE = np.dtype(np.float32)


def as_dtype(dtype: Any) -> np.dtype:
    """A numpy dtype from a numpy dtype, a name (``"float32"``) or a torch dtype."""
    name = str(dtype)
    if name.startswith("torch."):
        dtype = name[len("torch.") :]
    return np.dtype(dtype)


class Device:
    """A device (torch.device): ``type`` is ``"cpu"`` or ``"cuda"``; compares equal to its name."""

    __slots__ = ("index", "type")

    def __init__(self, spec: "str | Device | None" = None):
        name = "cpu" if spec is None else str(spec)
        kind, _, index = name.partition(":")
        if kind not in ("cpu", "cuda"):
            raise RuntimeError(
                f"Expected one of cpu, cuda device type at start of device string: {name}"
            )
        self.type = kind
        self.index = int(index) if index else None

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
