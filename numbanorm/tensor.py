"""``Tensor``: an array on a device, with the tape's bookkeeping (torch.Tensor's subset)."""

from __future__ import annotations

from typing import Any

import numpy as np

from numbanorm import autograd
from numbanorm.dispatch import backend, device_of
from numbanorm.types import Device, as_dtype, size_str

_NOT_DIFFERENTIABLE = "Only Tensors of floating point and complex dtype can require gradients"


def _check_can_require_grad(dtype: np.dtype) -> None:
    if dtype.kind not in "fc":
        raise RuntimeError(_NOT_DIFFERENTIABLE)


def _default_dtype(data: Any) -> np.dtype | None:
    """torch.tensor's inference: arrays keep their dtype, Python floats become float32."""
    if hasattr(data, "dtype"):
        return None
    kind = np.asarray(data).dtype.kind
    return {"f": np.dtype(np.float32), "c": np.dtype(np.complex64), "i": np.dtype(np.int64)}.get(
        kind
    )


class Tensor:
    """An array with ``grad``, ``requires_grad`` and the Function that made it (torch.Tensor)."""

    __slots__ = ("_ctx", "data", "grad", "requires_grad")
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False):
        self.data = data
        self.grad: Tensor | None = None
        self._ctx: autograd.Context | None = None
        if requires_grad:
            _check_can_require_grad(self.dtype)
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, data: Any, requires_grad: bool = False) -> Tensor:
        return cls(data, requires_grad)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    @property
    def device(self) -> Device:
        return Device(device_of(self.data))

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
        return int(np.prod(self.shape, dtype=np.int64))

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
        if requires_grad:
            _check_can_require_grad(self.dtype)
        self.requires_grad = requires_grad
        return self

    def to(self, device: Any = None, dtype: Any = None) -> Tensor:
        """This tensor on ``device`` and/or as ``dtype``; itself if unchanged (torch.Tensor.to)."""
        target = self.device if device is None else Device(device)
        new_dtype = self.dtype if dtype is None else as_dtype(dtype)
        if target == self.device and new_dtype == self.dtype:
            return self
        data = backend(target.type).asarray(self.data, dtype=new_dtype)
        return Tensor(data, requires_grad=self.requires_grad and new_dtype.kind in "fc")

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def sum(self) -> Tensor:
        """The sum of all elements, as a 0-d tensor (torch.Tensor.sum without ``dim``)."""
        from numbanorm.functions.reduce import Sum

        return Sum.apply(self)

    def backward(self, gradient: Any = None, retain_graph: bool | None = None) -> None:
        """Accumulate gradients into the leaves this tensor depends on (torch.Tensor.backward)."""
        if not self.requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn"
            )
        if gradient is None:
            if self.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            grad = backend(self.device.type).full(self.shape, 1, dtype=self.dtype)
        else:
            grad = gradient.data if isinstance(gradient, Tensor) else gradient
            if tuple(grad.shape) != self.shape:
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[0] has a shape of {size_str(grad.shape)} "
                    f"and output[0] has a shape of {size_str(self.shape)}."
                )
        autograd.run_backward(self, grad, bool(retain_graph))

    def _accumulate_grad(self, grad: Any) -> None:
        if self.grad is None:
            self.grad = Tensor(grad.copy())
        else:
            self.grad = Tensor(self.grad.data + grad)

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


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (torch.tensor)."""
    if isinstance(data, Tensor):
        data = np.asarray(data)
    target = as_dtype(dtype) if dtype is not None else _default_dtype(data)
    array = np.array(data, dtype=target, copy=True)
    if device is not None and Device(device).type != "cpu":
        array = backend(Device(device).type).asarray(array)
    return Tensor(array, requires_grad=requires_grad)
