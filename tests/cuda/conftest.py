"""A strict simulator for the CUDA tests where no GPU is present (``tests/conftest.py`` picks the
simulator and its block size).

The simulator's device arrays wrap numpy arrays and hand any attribute they lack to them, so
code that calls numpy methods on device arrays (``astype``, ``sum``, ``+``) passes there and
fails on a GPU, where numba's DeviceNDArray has none of them. The ``strict_simulator`` fixture
takes those away for every test here, leaving what DeviceNDArray has.
"""

import os

import numpy as np
import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

# What numba's DeviceNDArray answers that the simulator's array forwards to its numpy array;
# numpy's own conversion (DeviceNDArray has ``__array__``, a copy to the host) stays too.
_FORWARDED = frozenset(
    {"strides", "dtype", "size", "ndim", "flags", "__array_interface__", "__array_struct__"}
)
_OPERATORS = ("__add__", "__sub__", "__mul__", "__truediv__", "__floordiv__", "__mod__", "__pow__")


def _strict_getattr(self, name):
    if name not in _FORWARDED:
        raise AttributeError(f"numba's DeviceNDArray has no attribute '{name}'")
    return getattr(self._ary, name)


def _strict_reshape(self, *shape, **kwargs):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        view = np.reshape(self._ary, shape, copy=False, **kwargs)
    except ValueError:
        raise NotImplementedError("operation requires copying") from None
    return type(self)(view, stream=self.stream)


def _strict_transpose(self, axes=None):
    if self.ndim != 2:
        raise NotImplementedError("transposing a non-2D DeviceNDArray isn't supported")
    return type(self)(np.transpose(self._ary, axes))


def _no_operator(self, other):
    raise TypeError(f"numba's DeviceNDArray has no arithmetic (with {type(other).__name__})")


@pytest.fixture(autouse=True, scope="package")
def strict_simulator():
    """The simulator's device arrays with DeviceNDArray's attributes only (no-op on a GPU)."""
    if not SIMULATOR:
        yield
        return
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FakeCUDAArray, "__getattr__", _strict_getattr)
        patch.setattr(FakeCUDAArray, "reshape", _strict_reshape)
        patch.setattr(FakeCUDAArray, "transpose", _strict_transpose)
        for name in _OPERATORS:
            patch.setattr(FakeCUDAArray, name, _no_operator)
        yield
