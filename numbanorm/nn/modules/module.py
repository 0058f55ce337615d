"""``Module``: parameters, buffers and submodules, modes, state dicts (torch.nn.Module).

The traversals, checks and messages follow torch 2.13's ``torch/nn/modules/module.py``; hooks,
TorchScript and meta tensors are left out. Unlike torch, a failed ``load_state_dict`` or ``to``
changes nothing.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from numbanorm.dispatch import backend, device_of
from numbanorm.nn.parameter import UNINITIALIZED_SHAPE, Parameter, is_lazy
from numbanorm.tensor import Tensor
from numbanorm.types import device_type, parse_to, size_str, torch_name


class _IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return (
            f"_IncompatibleKeys(missing_keys={self.missing_keys}, "
            f"unexpected_keys={self.unexpected_keys})"
        )

    __str__ = __repr__


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    first = lines.pop(0)
    return first + "\n" + "\n".join((spaces * " ") + line if line.strip() else "" for line in lines)


def typename(obj: Any) -> str:
    """``torch.typename``: what torch's messages call ``obj``'s type.

    A Tensor is ``torch.FloatTensor`` and the like, and numbanorm's classes carry torch's module
    path (``torch.nn.modules.batchnorm.BatchNorm1d``), so messages read as torch's do.
    """
    if isinstance(obj, Tensor):
        where = "cuda." if obj.device.type == "cuda" else ""
        return f"torch.{where}{torch_name(obj.dtype)}Tensor"
    module = getattr(obj, "__module__", "") or ""
    if hasattr(obj, "__qualname__"):
        qualname = obj.__qualname__
    elif hasattr(obj, "__name__"):
        qualname = obj.__name__
    else:
        module = obj.__class__.__module__ or ""
        qualname = obj.__class__.__qualname__
    if module in {"", "builtins"}:
        return qualname
    if module == "numbanorm" or module.startswith("numbanorm."):
        module = "torch" + module[len("numbanorm") :]
    return f"{module}.{qualname}"


def _host_array(value: Any) -> np.ndarray:
    """A state_dict value as a host array: numbanorm and torch tensors, CUDA arrays, or anything
    array-like."""
    if isinstance(value, Tensor):
        return np.asarray(value)
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, maybe on a GPU
        value = value.detach().cpu()
    return backend("cpu").asarray(value)


def assign_data(tensor: Tensor, value: Any) -> None:
    """``tensor``'s array set to ``value`` (a number, or an array that broadcasts to it) in place,
    off the tape, on the tensor's device (what torch's ``nn.init`` does under ``no_grad``)."""
    backend(device_of(tensor.data)).copyto(tensor.data, value)


class Module:
    """Base class of every layer (torch.nn.Module)."""

    _version = 1
    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- registration -------------------------------------------------------------------------

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a buffer: state that is no parameter; in the state_dict if ``persistent``."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"buffer name should be a string. Got {typename(name)}")
        if "." in name:
            raise KeyError('buffer name can\'t contain "."')
        if name == "":
            raise KeyError('buffer name can\'t be empty string ""')
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{typename(tensor)}' object to buffer '{name}' "
                "(torch Tensor or None required)"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or None: a parameter slot that stays out of the state_dict)."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"parameter name should be a string. Got {typename(name)}")
        if "." in name:
            raise KeyError('parameter name can\'t contain "."')
        if name == "":
            raise KeyError('parameter name can\'t be empty string ""')
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is None:
            self._parameters[name] = None
        elif not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{typename(param)}' object to parameter '{name}' "
                "(torch.nn.Parameter or None required)"
            )
        elif param.grad_fn is not None:
            raise ValueError(
                f"Cannot assign non-leaf Tensor to parameter '{name}'. Model "
                f"parameters must be created explicitly. To express '{name}' "
                "as a function of another Tensor, compute the value in "
                "the forward() method."
            )
        else:
            self._parameters[name] = param

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module, reachable as the attribute ``name``."""
        if not isinstance(module, Module) and module is not None:
            raise TypeError(f"{typename(module)} is not a Module subclass")
        if not isinstance(name, str):
            raise TypeError(f"module name should be a string. Got {typename(name)}")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        if "." in name:
            raise KeyError(f'module name can\'t contain ".", got: {name}')
        if name == "":
            raise KeyError('module name can\'t be empty string ""')
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        def remove_from(*stores: Any) -> None:
            for store in stores:
                if name in store:
                    if isinstance(store, dict):
                        del store[name]
                    else:
                        store.discard(name)

        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            remove_from(
                self.__dict__, self._buffers, self._modules, self._non_persistent_buffers_set
            )
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{typename(value)}' as parameter '{name}' "
                    "(torch.nn.Parameter or None expected)"
                )
            self.register_parameter(name, value)
        else:
            modules = self.__dict__.get("_modules")
            if isinstance(value, Module):
                if modules is None:
                    raise AttributeError("cannot assign module before Module.__init__() call")
                remove_from(
                    self.__dict__, self._parameters, self._buffers, self._non_persistent_buffers_set
                )
                modules[name] = value
            elif modules is not None and name in modules:
                if value is not None:
                    raise TypeError(
                        f"cannot assign '{typename(value)}' as child module '{name}' "
                        "(torch.nn.Module or None expected)"
                    )
                modules[name] = value
            else:
                buffers = self.__dict__.get("_buffers")
                if buffers is not None and name in buffers:
                    if value is not None and not isinstance(value, Tensor):
                        raise TypeError(
                            f"cannot assign '{typename(value)}' as buffer '{name}' "
                            "(torch.nn.Buffer, torch.Tensor or None expected)"
                        )
                    self.register_buffer(name, value, name not in self._non_persistent_buffers_set)
                else:
                    object.__setattr__(self, name, value)

    def _members(self, *names: str) -> tuple:
        """Parameters or buffers ``names``, read straight from their stores: on a tiny input a
        forward's ``__getattr__`` calls cost as much as its kernel. Raises as ``__getattr__``."""
        parameters, buffers = self._parameters, self._buffers
        found = []
        for name in names:
            if name in parameters:
                found.append(parameters[name])
            elif name in buffers:
                found.append(buffers[name])
            else:
                raise self._no_attribute(name)
        return tuple(found)

    def _no_attribute(self, name: str) -> AttributeError:
        return AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __getattr__(self, name: str) -> Any:
        for store in ("_parameters", "_buffers", "_modules"):
            values = self.__dict__.get(store)
            if values is not None and name in values:
                return values[name]
        raise self._no_attribute(name)

    def __delattr__(self, name: str) -> None:
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers_set.discard(name)
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        keys = (
            dir(self.__class__)
            + list(self.__dict__)
            + list(self._parameters)
            + list(self._modules)
            + list(self._buffers)
        )
        return sorted(key for key in keys if not key[0].isdigit())

    # -- traversal ----------------------------------------------------------------------------

    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """This module and all below it, depth first, each once unless ``remove_duplicate``
        is False. Walked with an explicit stack: no recursion limit on the nesting depth."""
        seen: set = set() if memo is None else memo  # modules hash by identity
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if module in seen:
                continue
            if remove_duplicate:
                seen.add(module)
            yield name, module
            children = [
                (name + ("." if name else "") + child_name, child)
                for child_name, child in module._modules.items()
                if child is not None
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def _named_members(
        self, members: Callable[[Module], Any], prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        modules = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else [(prefix, self)]
        )
        for module_prefix, module in modules:
            for name, value in members(module):
                if value is None or id(value) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        return self._named_members(
            lambda m: m._parameters.items(), prefix, recurse, remove_duplicate
        )

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        return self._named_members(lambda m: m._buffers.items(), prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every submodule (children first), then on this module."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -- modes and gradients ------------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set training mode here and, through their own ``train``, in every child."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the parameters' gradients, or fill them with zeros if not ``set_to_none``."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.requires_grad_(False)
                assign_data(param.grad, 0)

    # -- devices and dtypes -------------------------------------------------------------------

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Move and/or cast parameters and buffers in place (torch.nn.Module.to).

        Only floating-point tensors change dtype, as in torch: ``num_batches_tracked`` stays
        int64. Every array is converted before any is replaced, so a failure changes nothing.
        """
        device, dtype = parse_to(args, kwargs)
        if dtype is not None and dtype.kind not in "fc":
            raise TypeError(
                "nn.Module.to only accepts floating point or complex dtypes, but got desired "
                f"dtype=torch.{dtype.name}"
            )
        converted = []
        seen: set[int] = set()
        for module in self.modules():
            for store in (module._parameters, module._buffers):
                for value in store.values():
                    if value is None or id(value) in seen:
                        continue
                    seen.add(id(value))
                    new_dtype = dtype if dtype is not None and value.dtype.kind in "fc" else None
                    new_device = device if device is not None else value.device
                    converted.append((value, new_device, new_dtype))
        arrays = [
            backend(device_type(dev)).asarray(value.data, dtype=new_dtype)
            for value, dev, new_dtype in converted
        ]
        grads = [
            None if value.grad is None else value.grad.to(device_of(array), array.dtype)
            for (value, _, _), array in zip(converted, arrays, strict=True)
        ]
        for (value, _, _), array, grad in zip(converted, arrays, grads, strict=True):
            value.data = array
            if grad is not None:
                value.grad = grad
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Module:
        if isinstance(device, int):
            device = f"cuda:{device}"
        return self.to("cuda" if device is None else device)

    def float(self) -> Module:
        return self.to(dtype="float32")

    def double(self) -> Module:
        return self.to(dtype="float64")

    def half(self) -> Module:
        return self.to(dtype="float16")

    # -- state dicts --------------------------------------------------------------------------

    def _local_state(self) -> dict[str, Tensor]:
        """Parameters and persistent buffers that are not None, under their local names."""
        state = {k: v for k, v in self._parameters.items() if v is not None}
        for name, value in self._buffers.items():
            if value is not None and name not in self._non_persistent_buffers_set:
                state[name] = value
        return state

    def state_dict(
        self,
        *args: Any,
        destination: Any = None,
        prefix: str = "",
        keep_vars: bool = False,
    ) -> OrderedDict[str, Any]:
        """Parameters and persistent buffers under torch's keys; values are host numpy arrays.

        As in torch, a module reachable under two names appears under both, and
        ``_metadata`` holds each module's ``version``. On the CPU the arrays are the module's
        own, as torch's tensors are: copy them to keep a snapshot. With ``keep_vars=True`` the
        values are the Tensors themselves, and so are a lazy module's uninitialized ones always.
        """
        if args:
            warnings.warn(
                "Positional args are being deprecated, use kwargs instead. Refer to "
                "https://pytorch.org/docs/main/generated/torch.nn.Module.html"
                "#torch.nn.Module.state_dict for details.",
                FutureWarning,
                stacklevel=2,
            )
            if destination is None:
                destination = args[0]
            if len(args) > 1 and prefix == "":
                prefix = args[1]
            if len(args) > 2 and keep_vars is False:
                keep_vars = args[2]
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()  # type: ignore[attr-defined]
        # Walk with an explicit stack, in torch's order: own state first, then each child.
        stack: list[tuple[Module, str]] = [(self, prefix)]
        while stack:
            module, module_prefix = stack.pop()
            if hasattr(destination, "_metadata"):
                destination._metadata[module_prefix[:-1]] = {"version": module._version}
            for name, value in module._local_state().items():
                destination[module_prefix + name] = (
                    value if keep_vars or is_lazy(value) else backend("cpu").asarray(value.data)
                )
            stack.extend(
                (child, module_prefix + name + ".")
                for name, child in reversed(module._modules.items())
                if child is not None
            )
        return destination

    def _load_old_version(
        self, state: dict[str, Any], prefix: str, version: int | None, errors: list[str]
    ) -> None:
        """Hook for torch's versioned loads: fill the keys an older checkpoint lacks, or drop the
        ones it should not have and say why in ``errors``.

        ``state`` is the part of the state_dict under this module's ``prefix``; the version is
        the one in the state_dict's ``_metadata`` for this module (None without one).
        """

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> _IncompatibleKeys:
        """Copy values into parameters and buffers (torch.nn.Module.load_state_dict).

        Values may be anything ``np.asarray`` takes (torch tensors included). Keys are matched,
        and missing, unexpected and wrongly shaped ones reported, as torch does; but every check
        runs before anything is copied, so a failed load leaves the module as it was. With
        ``assign=True`` the module takes the values' arrays (and dtypes) instead of copying
        them, and parameters lose their gradients, as torch's new Parameters have none.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        metadata = getattr(state_dict, "_metadata", None)
        missing: list[str] = []
        unexpected: list[str] = []
        errors: list[str] = []
        copies: list[tuple[Tensor, Any]] = []
        # torch's recursive ``load``, walked with an explicit stack in the same order.
        stack: list[tuple[Module, dict, str]] = [(self, OrderedDict(state_dict), "")]
        while stack:
            module, local, prefix = stack.pop()
            local_metadata = {} if metadata is None else metadata.get(prefix[:-1], {})
            module._load_old_version(local, prefix, local_metadata.get("version"), errors)
            module._load_local(local, prefix, missing, unexpected, errors, copies)
            children = []
            for name, child in module._modules.items():
                if child is not None:
                    child_prefix = prefix + name + "."
                    child_state = {k: v for k, v in local.items() if k.startswith(child_prefix)}
                    children.append((child, child_state, child_prefix))
            stack.extend(reversed(children))
        if strict:
            if unexpected:
                keys = ", ".join(f'"{k}"' for k in unexpected)
                errors.insert(0, f"Unexpected key(s) in state_dict: {keys}. ")
            if missing:
                keys = ", ".join(f'"{k}"' for k in missing)
                errors.insert(0, f"Missing key(s) in state_dict: {keys}. ")
        if errors:
            raise RuntimeError(
                "Error(s) in loading state_dict for {}:\n\t{}".format(
                    type(self).__name__, "\n\t".join(errors)
                )
            )
        if assign:
            arrays = [backend(t.device.type).asarray(array) for t, array in copies]
            for (target, _), array in zip(copies, arrays, strict=True):
                if is_lazy(target):
                    target.materialize(array.shape)
                target.data = array
                if isinstance(target, Parameter):
                    target.grad = None
            return _IncompatibleKeys(missing, unexpected)
        targets = [target.data for target, _ in copies]
        converted = []
        for target, array in copies:
            array = np.asarray(array, dtype=target.dtype)
            if any(isinstance(t, np.ndarray) and np.may_share_memory(array, t) for t in targets):
                array = array.copy()  # a value that is a view of the module's own state
            converted.append(backend(target.device.type).asarray(array))
        for (target, _), array in zip(copies, converted, strict=True):
            if is_lazy(target):
                target.materialize(array.shape)
            assign_data(target, array)
        return _IncompatibleKeys(missing, unexpected)

    def _load_local(
        self,
        state: dict[str, Any],
        prefix: str,
        missing: list[str],
        unexpected: list[str],
        errors: list[str],
        copies: list[tuple[Tensor, Any]],
    ) -> None:
        """torch's ``_load_from_state_dict`` for this module's own state, without copying.

        An uninitialized (lazy) target takes the value's shape, as torch's ``_lazy_load_hook``
        has it, but only once the whole load has been checked.
        """
        local_state = self._local_state()
        for name, target in local_state.items():
            key = prefix + name
            if key not in state:
                missing.append(key)
                continue
            value = state[key]
            if is_lazy(value):
                if not is_lazy(target):  # torch reads the uninitialized value's shape
                    raise RuntimeError(UNINITIALIZED_SHAPE)
                continue  # nothing to copy from one uninitialized tensor to another
            try:
                array = _host_array(value)
            except Exception:
                array = None
            if array is None or array.dtype.kind not in "biufc":
                errors.append(
                    f'While copying the parameter named "{key}", expected torch.Tensor or '
                    f"Tensor-like object from checkpoint but received {type(value)}"
                )
                continue
            if is_lazy(target):
                copies.append((target, array))
                continue
            if target.ndim == 0 and array.shape == (1,):
                array = array.reshape(())
            if tuple(array.shape) != target.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape "
                    f"{size_str(array.shape)} from checkpoint, the shape in current model is "
                    f"{size_str(target.shape)}."
                )
                continue
            copies.append((target, array))
        for key in state:
            if key.startswith(prefix):
                input_name = key[len(prefix) :].split(".", 1)
                if len(input_name) > 1:
                    if input_name[0] not in self._modules:
                        unexpected.append(key)
                elif input_name[0] not in local_state:
                    unexpected.append(key)

    # -- printing -----------------------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            f"({key}): " + _addindent(repr(module), 2) for key, module in self._modules.items()
        ]
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"
