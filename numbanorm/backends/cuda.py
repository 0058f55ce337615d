"""The CUDA backend: numba device arrays and the kernels of ``numbanorm.kernels.cuda``.

numba's device arrays have none of numpy's methods, so every array operation the Functions do
(casts, contiguous copies, transposed and broadcast views, fills, adds) is a function here with
the name, arguments and meaning of its numpy counterpart in ``numbanorm.backends.cpu``: the
Functions are written once against either backend. The elementwise work runs on the kernels of
``numbanorm.backends.cuda_arrays``.

Arrays exposing ``__cuda_array_interface__`` (CuPy, torch) are taken without a copy; numba's own
device arrays as they are. Under numba's simulator (``NUMBA_ENABLE_CUDASIM=1``) device arrays
wrap numpy arrays, and views are made on those.
"""

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import cuda
from numba.cuda.cudadrv import devicearray

from numbanorm.backends import cuda_arrays
from numbanorm.kernels.config import THREADS_PER_BLOCK

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
    "sum_all",
    "to_host",
]

DEVICE = "cuda"

if hasattr(devicearray, "FakeCUDAArray"):  # numba's simulator: numpy arrays underneath

    def _view(array: Any, shape: tuple, strides: tuple) -> Any:
        """A view of ``array``'s memory, from its first element, with ``shape`` and byte
        ``strides``."""
        host = np.lib.stride_tricks.as_strided(array._ary, shape, strides)
        return devicearray.FakeCUDAArray(host, stream=array.stream)

else:

    def _view(array: Any, shape: tuple, strides: tuple) -> Any:
        """A view of ``array``'s memory, from its first element, with ``shape`` and byte
        ``strides``."""
        return devicearray.DeviceNDArray(
            shape, strides, array.dtype, array.stream, gpu_data=array.gpu_data
        )


def _dense_order(shape: tuple, strides: tuple, itemsize: int) -> list[int] | None:
    """The axes, outermost first, in whose order an array is C-contiguous (channels-last is
    ``[0, 2, 3, 1]``), or None when its elements do not fill one run of memory."""
    order = sorted(range(len(shape)), key=lambda d: -strides[d])
    expected = itemsize
    for d in reversed(order):
        if shape[d] != 1:
            if strides[d] != expected:
                return None
            expected *= shape[d]
    return order


def _inverse(order: list[int]) -> list[int]:
    inverse = [0] * len(order)
    for position, axis in enumerate(order):
        inverse[axis] = position
    return inverse


def permute(array: Any, axes: Any) -> Any:
    """A view with the axes in the order ``axes`` (numpy's ``transpose``)."""
    return _view(array, tuple(array.shape[a] for a in axes), tuple(array.strides[a] for a in axes))


def broadcast_to(array: Any, shape: tuple) -> Any:
    """A view of ``array`` repeated to ``shape`` by numpy's broadcasting rules (strides of 0)."""
    shape = tuple(shape)
    lead = len(shape) - array.ndim
    if lead < 0:
        raise ValueError(f"could not broadcast an array of shape {tuple(array.shape)} to {shape}")
    strides = []
    for d, n in enumerate(shape):
        own = d - lead
        if own >= 0 and array.shape[own] == n:
            strides.append(array.strides[own])
        elif own < 0 or array.shape[own] == 1:
            strides.append(0)
        else:
            raise ValueError(
                f"could not broadcast an array of shape {tuple(array.shape)} to {shape}"
            )
    return _view(array, shape, tuple(strides))


def _six_dim_views(arrays: tuple) -> list:
    """``arrays`` (one shape) as 6-D views: size-1 dimensions dropped, neighbours that every
    array steps through as one run merged, leading size-1 dimensions added."""
    merged: list[tuple[int, list[int]]] = []
    for d, n in enumerate(arrays[0].shape):
        if n == 1:
            continue
        strides = [a.strides[d] for a in arrays]
        if merged and all(
            outer == inner * n for outer, inner in zip(merged[-1][1], strides, strict=True)
        ):
            merged[-1] = (merged[-1][0] * n, strides)
        else:
            merged.append((n, strides))
    pad = cuda_arrays.MAX_DIMS - len(merged)
    if pad < 0:
        raise NotImplementedError(
            f"numbanorm's CUDA arrays handle at most {cuda_arrays.MAX_DIMS} dimensions that do not "
            f"merge in memory, got {len(merged)} (shape {tuple(arrays[0].shape)})"
        )
    shape = (1,) * pad + tuple(n for n, _ in merged)
    return [
        _view(a, shape, (0,) * pad + tuple(strides[k] for _, strides in merged))
        for k, a in enumerate(arrays)
    ]


def _elementwise(kernel: Callable, arrays: tuple, *scalars: Any) -> None:
    """Launch an elementwise ``kernel`` on ``arrays`` (one shape; the last one is written)."""
    size = arrays[-1].size
    if size:
        views = _six_dim_views(arrays)
        kernel[cuda_arrays.blocks_for(size), THREADS_PER_BLOCK](*views, *scalars)


def empty(shape: Any, dtype: Any = float) -> Any:
    """An uninitialized C-contiguous device array (numpy's ``empty``)."""
    return cuda.device_array(shape, np.dtype(dtype))


def empty_like(array: Any, dtype: Any = None) -> Any:
    """An uninitialized array of ``array``'s shape and memory layout where that layout is dense
    (channels-last stays so), C-contiguous otherwise (numpy's ``empty_like``)."""
    dtype = array.dtype if dtype is None else np.dtype(dtype)
    order = _dense_order(array.shape, array.strides, array.dtype.itemsize)
    if order is None:
        return empty(array.shape, dtype)
    stored = empty(tuple(array.shape[d] for d in order), dtype)
    return permute(stored, _inverse(order))


def copyto(dst: Any, src: Any) -> None:
    """``dst[...] = src``, cast to ``dst``'s dtype: ``src`` a number, or an array on either device
    that broadcasts to ``dst``'s shape."""
    if isinstance(src, (bool, int, float, np.generic)):
        _elementwise(cuda_arrays.fill, (dst,), src)
    else:
        _elementwise(cuda_arrays.copy, (broadcast_to(asarray(src), dst.shape), dst))


def full(shape: Any, fill_value: Any, dtype: Any = None) -> Any:
    """A C-contiguous device array of ``fill_value`` (numpy's ``full``)."""
    out = empty(shape, np.asarray(fill_value).dtype if dtype is None else dtype)
    copyto(out, fill_value)
    return out


def ascontiguousarray(array: Any) -> Any:
    """``array`` itself when C-contiguous, else a C-contiguous copy."""
    if array.is_c_contiguous():
        return array
    out = empty(array.shape, array.dtype)
    copyto(out, array)
    return out


def astype(array: Any, dtype: Any) -> Any:
    """``array`` itself when of ``dtype``, else a cast copy in its layout (numpy's
    ``astype(dtype, copy=False)``)."""
    dtype = np.dtype(dtype)
    if array.dtype == dtype:
        return array
    out = empty_like(array, dtype)
    copyto(out, array)
    return out


def increment(counter: Any) -> None:
    """Add 1 to a 0-d device array in place (a module's ``num_batches_tracked``)."""
    add(counter, 1, out=counter)


def add(a: Any, b: Any, out: Any = None) -> Any:
    """``a + b`` (numpy's ``add``): ``b`` a number or a device array that broadcasts to ``a``'s
    shape; into ``out`` (``a`` itself for an in-place add), or a new array in ``a``'s layout."""
    if isinstance(b, (bool, int, float, np.generic)):
        b = full((), b, np.result_type(a.dtype, b))
    if out is None:
        out = empty_like(a, np.result_type(a.dtype, b.dtype))
    _elementwise(cuda_arrays.add, (a, broadcast_to(b, a.shape), out))
    return out


def _host_to_device(host: np.ndarray) -> Any:
    """A device copy of a host array, in its layout when that is dense (numba copies only
    contiguous memory: a dense layout goes over as its C-contiguous transpose)."""
    if host.flags.c_contiguous:
        return cuda.to_device(host)
    order = _dense_order(host.shape, host.strides, host.itemsize)
    if order is None:
        return cuda.to_device(np.ascontiguousarray(host))
    return permute(cuda.to_device(host.transpose(order)), _inverse(order))


def asarray(data: Any, dtype: Any = None) -> Any:
    """``data`` as a device array of ``dtype``: numba device arrays as they are, arrays exposing
    ``__cuda_array_interface__`` without a copy, host data copied over (in its layout)."""
    if hasattr(data, "copy_to_host"):
        array = data
    elif hasattr(data, "__cuda_array_interface__"):
        array = cuda.as_cuda_array(data)
    else:
        return _host_to_device(np.asarray(data, dtype=dtype))
    return array if dtype is None else astype(array, dtype)


def to_host(array: Any) -> np.ndarray:
    """A host copy of a device array, in its layout."""
    return asarray(array).copy_to_host()


def sum_all(array: Any) -> Any:
    """The sum of every element of a floating ``array`` as a 0-d array of its dtype, added in
    float64 in an order fixed by the size (what ``Tensor.sum()`` runs on CUDA)."""
    if array.dtype.kind != "f":
        raise NotImplementedError(
            f"sum of a CUDA tensor of dtype {array.dtype} is not implemented in numbanorm"
        )
    flat = ascontiguousarray(array).reshape(array.size)
    blocks = cuda_arrays.blocks_for(flat.size)
    out = empty(1, array.dtype)
    if blocks == 1:
        cuda_arrays.block_sums[1, THREADS_PER_BLOCK](flat, out)
    else:
        partials = empty(blocks, np.float64)
        cuda_arrays.block_sums[blocks, THREADS_PER_BLOCK](flat, partials)
        cuda_arrays.block_sums[1, THREADS_PER_BLOCK](partials, out)
    return out.reshape(())


def inverse_std(var: Any, eps: float) -> Any:
    """``1/sqrt(var + eps)`` as a flat float64 array (inf or NaN where torch gives them)."""
    flat = ascontiguousarray(var).reshape(var.size)
    out = empty(var.size, np.float64)
    if out.size:
        cuda_arrays.inverse_std[cuda_arrays.blocks_for(out.size), THREADS_PER_BLOCK](
            flat, float(eps), out
        )
    return out


def kernel(family: str, name: str, size: int) -> Callable:
    """Kernel ``name`` of ``numbanorm.kernels.cuda.<family>`` (one for every input size)."""
    return getattr(importlib.import_module(f"numbanorm.kernels.cuda.{family}"), name)
