"""``save``/``load``: state dicts on disk without pickle (torch.save / torch.load's role).

The file is a zip archive like numpy's ``.npz``: each array is an ``.npy`` member under
``arrays/`` and the nested structure is the JSON member ``numbanorm.json``. Arrays are read with
``allow_pickle=False``, so loading a file never runs code.

What can be stored: ``None``, ``bool``, ``int``, ``float``, ``str``; numpy arrays (any dtype but
object, 0-d included) and numpy scalars; numbanorm Tensors (saved as their host arrays, loaded as
numpy arrays); ``list``, ``tuple``, ``dict`` and ``OrderedDict`` of those, dict keys being
``str``, ``int``, ``float``, ``bool`` or ``None``. Types survive the round trip: int keys stay
ints, tuples stay tuples, OrderedDicts keep their order and the ``_metadata`` that
``Module.state_dict()`` attaches.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = ["SerializationError", "load", "save"]

FORMAT = "numbanorm"
VERSION = 1
STRUCTURE = "numbanorm.json"


class SerializationError(ValueError):
    """A file ``numbanorm.load`` cannot read: truncated, corrupt, or not numbanorm's format."""


def _key_path(path: tuple) -> str:
    return "obj" + "".join(f"[{key!r}]" for key in path)


class _Encoder:
    """Turns an object into a JSON-able tree, collecting its arrays in order."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self._active: set[int] = set()

    def _array(self, array: np.ndarray, path: tuple) -> int:
        if array.dtype.hasobject:
            raise TypeError(
                f"cannot save an array of dtype {array.dtype} (Python objects) at {_key_path(path)}"
            )
        self.arrays.append(array)
        return len(self.arrays) - 1

    def _key(self, key: Any, path: tuple) -> Any:
        if key is None or isinstance(key, (bool, str)):
            return {"t": type(key).__name__.lower() if key is not None else "none", "v": key}
        if type(key) is int:
            return {"t": "int", "v": key}
        if type(key) is float:
            return {"t": "float", "v": repr(key)}
        raise TypeError(
            f"cannot save a dict key of type {type(key).__module__}.{type(key).__qualname__} "
            f"({key!r}) at {_key_path(path)}"
        )

    def encode(self, obj: Any, path: tuple = ()) -> Any:
        from numbanorm.tensor import Tensor

        if obj is None:
            return {"t": "none"}
        kind = type(obj)
        if kind is bool:
            return {"t": "bool", "v": obj}
        if kind is int:
            return {"t": "int", "v": obj}
        if kind is float:
            return {"t": "float", "v": repr(obj)}
        if kind is str:
            return {"t": "str", "v": obj}
        if isinstance(obj, Tensor):
            from numbanorm.dispatch import backend

            return {"t": "array", "v": self._array(backend("cpu").asarray(obj.data), path)}
        if isinstance(obj, np.ndarray):
            return {"t": "array", "v": self._array(obj, path)}
        if isinstance(obj, np.generic):
            return {"t": "scalar", "v": self._array(np.asarray(obj), path)}
        if isinstance(obj, (list, tuple, dict)):
            if id(obj) in self._active:
                raise TypeError(f"cannot save a circular reference at {_key_path(path)}")
            self._active.add(id(obj))
            try:
                return self._container(obj, path)
            finally:
                self._active.discard(id(obj))
        raise TypeError(
            f"cannot save an object of type {kind.__module__}.{kind.__qualname__} "
            f"at {_key_path(path)}"
        )

    def _container(self, obj: Any, path: tuple) -> Any:
        if isinstance(obj, tuple) and type(obj) is not tuple:
            raise TypeError(
                f"cannot save an object of type {type(obj).__module__}.{type(obj).__qualname__} "
                f"(a tuple subclass) at {_key_path(path)}"
            )
        if isinstance(obj, (list, tuple)):
            items = [self.encode(item, (*path, i)) for i, item in enumerate(obj)]
            return {"t": "tuple" if isinstance(obj, tuple) else "list", "v": items}
        items = [
            [self._key(key, path), self.encode(value, (*path, key))] for key, value in obj.items()
        ]
        node: dict[str, Any] = {"t": "odict" if isinstance(obj, OrderedDict) else "dict"}
        node["v"] = items
        metadata = getattr(obj, "_metadata", None)
        if metadata is not None:
            node["metadata"] = self.encode(metadata, (*path, "_metadata"))
        return node


def _create_mode(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_array(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(name, "w", force_zip64=True) as member:
        np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def save(obj: Any, f: str | os.PathLike) -> None:
    """Write ``obj`` (a state dict, nested containers of arrays and scalars) to the file ``f``.

    The write is atomic: a temporary file in the same directory is renamed over ``f`` once it is
    complete, so ``f`` is either the old file or the new one, never half written. Raises
    TypeError, before touching the disk, naming the type and key path of what cannot be stored.
    """
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"save() expects a str or os.PathLike path, got {type(f).__name__}")
    path = os.fspath(f)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    encoder = _Encoder()
    tree = encoder.encode(obj)
    structure = json.dumps(
        {"format": FORMAT, "version": VERSION, "arrays": len(encoder.arrays), "object": tree},
        allow_nan=False,
    )
    directory = os.path.dirname(os.path.abspath(path))
    mode = _create_mode(path)
    fd, temporary = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                archive.writestr(STRUCTURE, structure)
                for index, array in enumerate(encoder.arrays):
                    _write_array(archive, f"arrays/{index}.npy", array)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class _Decoder:
    def __init__(self, archive: zipfile.ZipFile, count: int, path: str):
        self.archive = archive
        self.count = count
        self.path = path

    def fail(self, what: str) -> SerializationError:
        return SerializationError(f"{self.path}: corrupt numbanorm file: {what}")

    def _array(self, index: Any) -> np.ndarray:
        if type(index) is not int or not 0 <= index < self.count:
            raise self.fail(f"bad array index {index!r}")
        name = f"arrays/{index}.npy"
        try:
            with self.archive.open(name) as member:
                return np.lib.format.read_array(member, allow_pickle=False)
        except KeyError:
            raise self.fail(f"member {name} is missing") from None
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
            raise self.fail(f"member {name} cannot be read ({error})") from error

    def _key(self, node: Any) -> Any:
        value = self.decode(node)
        if isinstance(value, (list, tuple, dict, np.ndarray, np.generic)):
            raise self.fail(f"bad dict key {node!r}")
        return value

    def decode(self, node: Any) -> Any:
        if not isinstance(node, dict) or "t" not in node:
            raise self.fail(f"bad node {node!r:.80}")
        kind = node["t"]
        value = node.get("v")
        try:
            if kind == "none":
                return None
            if kind in ("bool", "int", "str"):
                expected = {"bool": bool, "int": int, "str": str}[kind]
                if type(value) is not expected:
                    raise self.fail(f"bad {kind} {value!r:.80}")
                return value
            if kind == "float":
                return float(value)
            if kind == "array":
                return self._array(value)
            if kind == "scalar":
                return self._array(value)[()]
            if kind in ("list", "tuple"):
                items = [self.decode(item) for item in value]
                return tuple(items) if kind == "tuple" else items
            if kind in ("dict", "odict"):
                result = OrderedDict() if kind == "odict" or "metadata" in node else {}
                for key, item in value:
                    result[self._key(key)] = self.decode(item)
                if "metadata" in node:
                    result._metadata = self.decode(node["metadata"])
                return result
        except SerializationError:
            raise
        except (TypeError, ValueError) as error:
            raise self.fail(f"bad {kind} node ({error})") from error
        raise self.fail(f"unknown node type {kind!r:.80}")


def load(f: str | os.PathLike) -> Any:
    """Read back what ``save`` wrote to the file ``f``; arrays come back as numpy arrays.

    Raises SerializationError (a ValueError) naming the file when it is truncated, corrupt or not
    a numbanorm file (a torch checkpoint, a plain ``.npz``, anything else).
    """
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"load() expects a str or os.PathLike path, got {type(f).__name__}")
    path = os.fspath(f)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    try:
        archive = zipfile.ZipFile(path, "r")
    except zipfile.BadZipFile as error:
        raise SerializationError(
            f"{path}: not a numbanorm file: not a zip archive, or truncated ({error})"
        ) from error
    with archive:
        names = set(archive.namelist())
        if STRUCTURE not in names:
            if any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
                hint = "it looks like a torch checkpoint (torch.save); load it with torch"
            elif names and all(name.endswith(".npy") for name in names):
                hint = "it looks like a plain numpy .npz file; load it with numpy.load"
            else:
                hint = "a zip archive of another kind"
            raise SerializationError(
                f"{path}: not a numbanorm file: it has no {STRUCTURE} member ({hint})"
            )
        try:
            header = json.loads(archive.read(STRUCTURE).decode("utf-8"))
        except (zipfile.BadZipFile, EOFError, OSError, UnicodeDecodeError, ValueError) as error:
            raise SerializationError(
                f"{path}: corrupt numbanorm file: {STRUCTURE} cannot be read ({error})"
            ) from error
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise SerializationError(f"{path}: not a numbanorm file: bad {STRUCTURE} header")
        if header.get("version") != VERSION:
            raise SerializationError(
                f"{path}: numbanorm file format version {header.get('version')!r} is not "
                f"supported (this numbanorm reads version {VERSION})"
            )
        count = header.get("arrays")
        if type(count) is not int or "object" not in header:
            raise SerializationError(f"{path}: corrupt numbanorm file: bad {STRUCTURE} header")
        return _Decoder(archive, count, path).decode(header["object"])
