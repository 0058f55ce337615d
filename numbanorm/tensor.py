"""``Tensor``: an array on a device, with the tape's bookkeeping (torch.Tensor's subset)."""

from __future__ import annotations

from typing import Any

import numpy as np

from numbanorm import autograd
from numbanorm.dispatch import backend, device_of
from numbanorm.types import (
    DEFAULT_DTYPE,
    Device,
    as_dtype,
    device_type,
    parse_to,
    size_str,
    torch_name,
)

# What ``Tensor.device`` says: numbanorm drives one GPU, numba's current device.
_DEVICES = {"cpu": Device("cpu"), "cuda": Device("cuda", 0)}

# torch words the same refusal three ways: in the constructor, the setter and requires_grad_().
_NOT_DIFFERENTIABLE = "Only Tensors of floating point and complex dtype can require gradients"
_NOT_DIFFERENTIABLE_SET = "only Tensors of floating point and complex dtype can require gradients"
_NOT_FLOATING = "only Tensors of floating point dtype can require gradients"
_NOT_LEAF = (
    "you can only change requires_grad flags of leaf variables. If you want to use a computed "
    "variable in a subgraph that doesn't require differentiation use var_no_grad = var.detach()."
)
# The C names torch's messages give dtypes (``double`` for float64).
_C_NAMES = {
    "float16": "c10::Half",
    "float32": "float",
    "float64": "double",
    "complex64": "c10::complex<float>",
    "complex128": "c10::complex<double>",
    "int8": "signed char",
    "int16": "short int",
    "int32": "int",
    "int64": "long int",
    "uint8": "unsigned char",
    "bool": "bool",
}


def _check_can_require_grad(dtype: np.dtype) -> None:
    if dtype.kind not in "fc":
        raise RuntimeError(_NOT_DIFFERENTIABLE)


_SCALAR_DTYPES = {
    bool: np.dtype(np.bool_),
    int: np.dtype(np.int64),
    float: np.dtype(np.float32),
    complex: np.dtype(np.complex64),
}
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def _promote(a: np.dtype, b: np.dtype) -> np.dtype:
    """torch.promote_types: the higher category wins whatever the sizes (int64 and float32 give
    float32, where numpy gives float64); within a category, the larger type."""
    ca, cb = _CATEGORY.get(a.kind, 2), _CATEGORY.get(b.kind, 2)
    if ca == cb or {ca, cb} == {2, 3}:
        return np.promote_types(a, b)
    return a if ca > cb else b


def _infer_dtype(data: Any) -> np.dtype:
    """torch.tensor's dtype for ``data``: arrays, numpy scalars and tensors keep their dtype,
    Python bools/ints/floats/complexes give bool/int64/float32/complex64, and a sequence
    promotes its elements' types as torch does (``[np.float64(1), 2.0]`` is float64)."""
    if isinstance(data, Tensor):
        return data.dtype
    if hasattr(data, "dtype"):
        return as_dtype(data.dtype)
    for kind, dtype in _SCALAR_DTYPES.items():
        if type(data) is kind:
            return dtype
    if isinstance(data, (list, tuple)):
        result = None
        for item in data:
            item_dtype = _infer_dtype(item)
            result = item_dtype if result is None else _promote(result, item_dtype)
        return DEFAULT_DTYPE if result is None else result
    inferred = np.asarray(data).dtype  # another array-like: numpy's kind, torch's default size
    defaults = {"b": bool, "u": int, "i": int, "f": float, "c": complex}
    return _SCALAR_DTYPES[defaults[inferred.kind]] if inferred.kind in defaults else inferred


class Tensor:
    """An array with ``grad``, ``requires_grad`` and the Function that made it (torch.Tensor)."""

    __slots__ = ("__weakref__", "_ctx", "_grad", "_requires_grad", "data")
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False):
        if type(data) is not np.ndarray and device_of(data) == "cuda":
            data = backend("cuda").asarray(data)  # a numba view of a CUDA array interface
        self.data = data
        self._grad: Tensor | None = None
        self._ctx: autograd.Context | None = None
        if requires_grad:
            _check_can_require_grad(self.dtype)
        self._requires_grad = bool(requires_grad)

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, requires_grad: bool) -> None:
        if not isinstance(requires_grad, bool):
            raise RuntimeError("requires_grad must be a bool")
        if self._ctx is not None and requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables.")
        self._set_requires_grad(requires_grad, _NOT_DIFFERENTIABLE_SET)

    def _set_requires_grad(self, requires_grad: bool, message: str) -> None:
        if self._ctx is not None:
            if not requires_grad:
                raise RuntimeError(_NOT_LEAF)
            return
        if requires_grad and self.dtype.kind not in "fc":
            raise RuntimeError(message)
        self._requires_grad = requires_grad

    @property
    def grad(self) -> Tensor | None:
        """The gradient accumulated by ``backward()`` (leaves only); None until then."""
        return self._grad

    @grad.setter
    def grad(self, grad: Tensor | None) -> None:
        if grad is not None:
            if not isinstance(grad, Tensor):
                raise TypeError(
                    "assigned grad expected to be a Tensor or None but got grad of type "
                    f"{type(grad).__name__}"
                )
            if grad.shape != self.shape:
                raise RuntimeError(
                    f"attempting to assign a gradient of size '{list(grad.shape)}' to a tensor "
                    f"of size '{list(self.shape)}'. Please ensure that the gradient and the "
                    "tensor are the same size"
                )
            if grad.dtype != self.dtype:
                c_name = _C_NAMES.get(grad.dtype.name, grad.dtype.name)
                raise RuntimeError(
                    f"attempting to assign a gradient with dtype '{c_name}' "
                    f"to a tensor with grad_dtype '{torch_name(self.dtype)}'. The gradient must "
                    "match the tensor's grad_dtype (defaults to the tensor's dtype). You can set "
                    "the tensor's grad_dtype attribute with a specific dtype, or None to allow "
                    "any dtype. Set grad_dtype with caution. Diverging the dtypes of a tensor "
                    "and its gradient may break downstream systems that assume they match."
                )
        self._grad = grad

    @classmethod
    def _wrap(cls, data: Any, requires_grad: bool = False) -> Tensor:
        return cls(data, requires_grad)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> Device:
        """``cpu`` or ``cuda:0`` (torch.Tensor.device)."""
        return _DEVICES[device_of(self.data)]

    @property
    def ndim(self) -> int:
        return len(self.data.shape)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> autograd.Context | None:
        return self._ctx

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return self.shape[0]

    def numpy(self) -> np.ndarray:
        """The host array, shared with the tensor (torch.Tensor.numpy)."""
        if self.requires_grad:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
                "instead."
            )
        if self.device.type != "cpu":
            raise TypeError(
                f"can't convert {self.device.type}:0 device type tensor to numpy. Use "
                "Tensor.cpu() to copy the tensor to host memory first."
            )
        return self.data

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        host = backend(self.device.type).to_host(self.data)
        return host if dtype is None else host.astype(dtype, copy=False)

    def item(self) -> float | int | bool:
        if self.numel() != 1:
            raise RuntimeError(
                f"a Tensor with {self.numel()} elements cannot be converted to Scalar"
            )
        return np.asarray(self).reshape(()).item()

    def detach(self) -> Tensor:
        """The same data, cut from the tape."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self._set_requires_grad(bool(requires_grad), _NOT_FLOATING)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """This tensor on a device and/or as a dtype; itself if unchanged (torch.Tensor.to).

        Takes ``to(device)``, ``to(dtype)``, ``to(device, dtype)`` and keywords. As in torch the
        copy is on the tape: gradients flow back to this tensor, cast back to its dtype.
        """
        device, dtype = parse_to(args, kwargs)
        source = device_of(self.data)
        target = source if device is None else device_type(device)
        new_dtype = self.dtype if dtype is None else dtype
        if target == source and new_dtype == self.dtype:
            return self
        if new_dtype.kind not in "fc":  # not differentiable: a plain copy
            return Tensor(backend(target).asarray(self.data, dtype=new_dtype))
        return _ToCopy.apply(self, target, new_dtype)

    def cpu(self) -> Tensor:
        """This tensor in host memory; itself if already there (torch.Tensor.cpu)."""
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Tensor:
        """This tensor on the GPU; itself if already there (torch.Tensor.cuda)."""
        return self.to("cuda" if device is None else device)

    def sum(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        """The sum over ``dim`` (an int or a tuple; all elements when None), torch.Tensor.sum.

        On CUDA only the sum of all elements of a floating tensor is implemented."""
        if dim is None and not keepdim and device_of(self.data) == "cuda":
            return _SumAll.apply(self)
        if dim is None and not keepdim:
            return reduce.Sum.apply(self)
        return reduce.Sum.apply(self, dim, keepdim)

    def mean(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        """The mean over ``dim`` (an int or a tuple; all elements when None), torch.Tensor.mean."""
        return reduce.Mean.apply(self, dim, keepdim)

    # Arithmetic: Tensors and Python numbers, with torch's broadcasting and type promotion.

    def _binary(self, function_name: str, other: Any, reflected: bool = False) -> Tensor:
        if isinstance(other, np.generic):
            other = other.item()
        if not isinstance(other, (Tensor, bool, int, float, complex)):
            return NotImplemented
        function = getattr(elementwise, function_name)
        return function.apply(other, self) if reflected else function.apply(self, other)

    def __add__(self, other: Any) -> Tensor:
        return self._binary("Add", other)

    def __radd__(self, other: Any) -> Tensor:
        return self._binary("Add", other, reflected=True)

    def __sub__(self, other: Any) -> Tensor:
        return self._binary("Sub", other)

    def __rsub__(self, other: Any) -> Tensor:
        return self._binary("Sub", other, reflected=True)

    def __mul__(self, other: Any) -> Tensor:
        return self._binary("Mul", other)

    def __rmul__(self, other: Any) -> Tensor:
        return self._binary("Mul", other, reflected=True)

    def __truediv__(self, other: Any) -> Tensor:
        return self._binary("Div", other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._binary("Div", other, reflected=True)

    def __neg__(self) -> Tensor:
        return elementwise.Neg.apply(self)

    def __matmul__(self, other: Any) -> Tensor:
        if not isinstance(other, Tensor):
            return NotImplemented
        return matmul.MatMul.apply(self, other)

    def __getitem__(self, key: Any) -> Tensor:
        """Basic indexing (ints, slices, None, Ellipsis) and integer or boolean array indexing."""
        items = key if isinstance(key, tuple) else (key,)
        items = tuple(
            item.data
            if isinstance(item, Tensor)
            else np.asarray(item)
            if isinstance(item, list)
            else item
            for item in items
        )
        return shaping.Index.apply(self, items)

    # Shapes.

    def reshape(self, *shape: Any) -> Tensor:
        """The same elements in ``shape`` (one entry may be -1), torch.Tensor.reshape."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return shaping.Reshape.apply(self, shape)

    def view(self, *shape: Any) -> Tensor:
        """As reshape, refusing (as torch) a shape that this memory layout cannot view."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        target = shaping.infer_shape(shape, self.numel())
        try:
            # A device array's own reshape (in Reshape) refuses what would need a copy.
            if isinstance(self.data, np.ndarray):
                np.reshape(self.data, target, copy=False)
        except ValueError:
            raise RuntimeError(
                "view size is not compatible with input tensor's size and stride (at least one "
                "dimension spans across two contiguous subspaces). Use .reshape(...) instead."
            ) from None
        return self.reshape(target)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        """This tensor with dimensions ``dim0`` and ``dim1`` swapped, torch.Tensor.transpose."""
        return shaping.Transpose.apply(self, dim0, dim1)

    def t(self) -> Tensor:
        """The transpose of a tensor of at most 2 dimensions, torch.Tensor.t."""
        if self.ndim > 2:
            raise RuntimeError(
                f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D"
            )
        return self.transpose(0, self.ndim - 1 if self.ndim else 0)

    @property
    def T(self) -> Tensor:
        """The dimensions reversed (torch.Tensor.T; torch deprecates it beyond 2-D)."""
        if self.ndim != 2:
            import warnings

            warnings.warn(
                "The use of `x.T` on tensors of dimension other than 2 to reverse their shape is "
                "deprecated and it will throw an error in a future release. Consider `x.mT` to "
                "transpose batches of matrices or `x.permute(*torch.arange(x.ndim - 1, -1, -1))` "
                "to reverse the dimensions of a tensor.",
                UserWarning,
                stacklevel=2,
            )
        result = self
        for dim in range(self.ndim // 2):
            result = result.transpose(dim, self.ndim - 1 - dim)
        return result

    def backward(self, gradient: Any = None, retain_graph: bool | None = None) -> None:
        """Accumulate gradients into the leaves this tensor depends on (torch.Tensor.backward)."""
        if not self.requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn"
            )
        place = device_of(self.data)
        if gradient is None:
            if self.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            grad = backend(place).full(self.shape, 1, dtype=self.dtype)
        else:
            grad = gradient.data if isinstance(gradient, Tensor) else gradient
            xp = backend(device_of(grad))
            grad = xp.asarray(grad)
            if tuple(grad.shape) != self.shape:
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[0] has a shape of {size_str(grad.shape)} "
                    f"and output[0] has a shape of {size_str(self.shape)}."
                )
            if grad.dtype != self.dtype:  # torch casts the gradient to the output's dtype
                grad = xp.astype(grad, self.dtype)
            if place != xp.DEVICE:  # torch moves a 0-d gradient, and refuses any other
                if grad.ndim:
                    raise RuntimeError(
                        f"invalid gradient at index 0 - expected device {_DEVICES[place]} but "
                        f"got {_DEVICES[xp.DEVICE]}"
                    )
                grad = backend(place).asarray(grad)
        autograd.run_backward(self, grad, bool(retain_graph))

    def _accumulate_grad(self, grad: Any, owned: bool = False) -> None:
        """Add ``grad`` into ``.grad``: the first time a copy, or ``grad`` itself when the engine
        ``owned`` it alone and it has the leaf's strides; then in place (torch's AccumulateGrad),
        so a reference to ``.grad`` sees later backward calls. As torch's layout contract, a new
        ``.grad`` has the leaf's memory layout (channels-last stays so)."""
        if self._grad is None:
            if owned and grad.strides == self.data.strides and grad.dtype == self.data.dtype:
                copy = grad
            else:
                xp = backend(device_of(grad))
                copy = xp.empty_like(self.data, grad.dtype)
                xp.copyto(copy, grad)
            self._grad = Tensor(copy)
        elif (held := self._grad.data).shape == tuple(grad.shape) and held.dtype == grad.dtype:
            backend(device_of(grad)).add(held, grad, out=held)
        else:
            self._grad = Tensor(backend(device_of(grad)).add(held, grad))

    def __repr__(self) -> str:
        body = np.array2string(
            np.asarray(self), separator=", ", prefix="tensor(", precision=4, threshold=1000
        )
        extras = []
        if self.dtype not in (np.float32, np.int64, np.bool_):
            extras.append(f"dtype={self.dtype}")
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{self._ctx.function.__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"


class _ToCopy(autograd.Function):
    """``Tensor.to`` on the tape: a copy on another ``device`` (``"cpu"`` or ``"cuda"``) or with
    another floating dtype."""

    devices = autograd.ALL_DEVICES

    @staticmethod
    def forward(ctx: autograd.Context, x: Any, device: str, dtype: np.dtype) -> Any:
        ctx.source = (device_of(x), x.dtype)
        return backend(device).asarray(x, dtype=dtype)

    @staticmethod
    def backward(ctx: autograd.Context, grad: Any) -> tuple:
        device, dtype = ctx.source
        return backend(device).asarray(grad, dtype=dtype), None, None


class _SumAll(autograd.Function):
    """``Tensor.sum()`` of a CUDA tensor: the sum of every element, floating dtypes only."""

    devices = frozenset({"cuda"})

    @staticmethod
    def forward(ctx: autograd.Context, x: Any) -> Any:
        ctx.shape = x.shape
        return backend("cuda").sum_all(x)

    @staticmethod
    def backward(ctx: autograd.Context, grad: Any) -> Any:
        xp = backend("cuda")
        return xp.ascontiguousarray(xp.broadcast_to(grad, ctx.shape))


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (torch.tensor), with torch's dtype inference.

    Without ``device`` a CUDA tensor or array is copied on the GPU, anything else to the host.
    """
    target = as_dtype(dtype) if dtype is not None else _infer_dtype(data)
    source = data.data if isinstance(data, Tensor) else data
    place = device_of(source) if device is None else device_type(device)
    if device_of(source) == "cuda":
        xp = backend("cuda")
        source = xp.asarray(source)
        array = xp.empty_like(source, target)
        xp.copyto(array, source)
    else:
        if isinstance(source, (list, tuple)):
            source = _host_items(source)
        array = np.array(source, dtype=target, copy=True)
    return Tensor(backend(place).asarray(array), requires_grad=requires_grad)


def _host_items(data: list | tuple) -> list | tuple:
    """``data`` with every Tensor in it (at any depth) replaced by its host array."""
    if not any(isinstance(item, (Tensor, list, tuple)) for item in data):
        return data
    return [
        np.asarray(item)
        if isinstance(item, Tensor)
        else _host_items(item)
        if isinstance(item, (list, tuple))
        else item
        for item in data
    ]


# Last: these modules build their Functions on numbanorm.autograd, which imports this module.
# Module-level names, since an import statement in a method costs a microsecond on every call.
from numbanorm.functions import elementwise, matmul, reduce  # noqa: E402
from numbanorm.functions import shape as shaping  # noqa: E402
