"""``Parameter`` and the lazy modules' uninitialized tensors (torch.nn.parameter)."""

from typing import Any

import numpy as np

from numbanorm.dispatch import backend, device_of
from numbanorm.tensor import Tensor
from numbanorm.types import DEFAULT_DTYPE, Device, as_dtype


class Parameter(Tensor):
    """A leaf tensor that requires grad by default and is listed by ``Module.parameters()``."""

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(np.empty(0, np.float32) if data is None else data, requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


UNINITIALIZED_SHAPE = (
    "Can't access the shape of an uninitialized parameter or buffer. This error usually happens "
    "in `load_state_dict` when trying to load an uninitialized parameter into an initialized "
    "one. Call `forward` to initialize the parameters before accessing their attributes."
)


def _uninitialized_use(method: str, tensor: Any) -> ValueError:
    """torch's error for using an uninitialized tensor in ``method``."""
    return ValueError(
        f"Attempted to use an uninitialized parameter in {method}. This error happens when you "
        "are using a `LazyModule` or explicitly manipulating "
        f"`torch.nn.parameter.{type(tensor).__name__}` objects. When using LazyModules Call "
        "`forward` with a dummy batch to initialize the parameters before calling torch functions"
    )


def _tensor_method(name: str) -> str:
    return f"<method '{name}' of 'torch._C.TensorBase' objects>"


def _refuse(method: str) -> Any:
    """A method that raises torch's error for using an uninitialized tensor in ``method``."""

    def refused(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        raise _uninitialized_use(method, self)

    return refused


class UninitializedTensorMixin:
    """A tensor whose shape is not known yet (torch's UninitializedTensorMixin).

    It holds an empty array of its future dtype and device; its dtype and device may change
    (``Module.to``) and ``size()`` is ``(0,)``, as in torch, but its shape and any computation are
    refused with torch's errors until ``materialize`` gives it a shape and turns it into
    ``cls_to_become``.
    """

    __slots__ = ()
    cls_to_become: type

    def materialize(self, shape: Any, device: Any = None, dtype: Any = None) -> None:
        """Become a ``cls_to_become`` of ``shape`` (uninitialized values), keeping the dtype and
        device unless given."""
        device = device_of(self.data) if device is None else Device(device).type
        dtype = self.data.dtype if dtype is None else as_dtype(dtype)
        self.data = backend(device).empty(shape, dtype)
        self.__class__ = self.cls_to_become

    @property
    def shape(self) -> tuple[int, ...]:
        raise RuntimeError(UNINITIALIZED_SHAPE)

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        return tuple(self.data.shape) if dim is None else self.data.shape[dim]

    def _binary(self, function_name: str, other: Any, reflected: bool = False) -> Tensor:
        raise _uninitialized_use(_tensor_method(function_name.lower()), self)

    __neg__ = _refuse(_tensor_method("neg"))
    __matmul__ = _refuse(_tensor_method("matmul"))
    __getitem__ = _refuse("<slot wrapper '__getitem__' of 'torch._C.TensorBase' objects>")
    dim = _refuse(_tensor_method("dim"))
    numel = _refuse(_tensor_method("numel"))
    item = _refuse(_tensor_method("item"))
    numpy = _refuse(_tensor_method("numpy"))
    detach = _refuse(_tensor_method("detach"))
    requires_grad_ = _refuse(_tensor_method("requires_grad_"))
    reshape = _refuse(_tensor_method("reshape"))
    view = _refuse(_tensor_method("view"))
    transpose = _refuse(_tensor_method("transpose"))
    t = _refuse(_tensor_method("t"))
    sum = _refuse(_tensor_method("sum"))
    mean = _refuse(_tensor_method("mean"))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def _empty(requires_grad: bool, device: Any, dtype: Any) -> tuple[Any, bool]:
    dtype = DEFAULT_DTYPE if dtype is None else as_dtype(dtype)
    return backend(Device(device).type).empty(0, dtype), requires_grad


class UninitializedParameter(UninitializedTensorMixin, Parameter):
    """A parameter whose shape a lazy module infers on its first call (torch's
    UninitializedParameter); ``device`` and ``dtype`` are those it will have."""

    __slots__ = ()
    cls_to_become = Parameter

    def __init__(self, requires_grad: bool = True, device: Any = None, dtype: Any = None):
        super().__init__(*_empty(requires_grad, device, dtype))


class UninitializedBuffer(UninitializedTensorMixin, Tensor):
    """A buffer whose shape a lazy module infers on its first call (torch's
    UninitializedBuffer); it becomes a plain Tensor."""

    __slots__ = ()
    cls_to_become = Tensor

    def __init__(self, requires_grad: bool = False, device: Any = None, dtype: Any = None):
        super().__init__(*_empty(requires_grad, device, dtype))


def is_lazy(value: Any) -> bool:
    """Whether ``value`` is an UninitializedParameter or UninitializedBuffer (torch's is_lazy)."""
    return isinstance(value, UninitializedTensorMixin)
