"""``Module``: parameters, buffers and submodules, modes, state dicts (torch.nn.Module)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from numbanorm.dispatch import backend, device_of
from numbanorm.nn.parameter import Parameter
from numbanorm.tensor import Tensor
from numbanorm.types import Device, as_dtype, size_str


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


def _parse_to(args: tuple, kwargs: dict) -> tuple[Device | None, np.dtype | None]:
    """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` and their keyword forms."""
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        raise TypeError(f"to() got an unexpected keyword argument '{next(iter(kwargs))}'")
    for arg in args:
        if isinstance(arg, Device) or str(arg).split(":")[0] in ("cpu", "cuda"):
            device = arg
        else:
            dtype = arg
    return (
        None if device is None else Device(device),
        None if dtype is None else as_dtype(dtype),
    )


class Module:
    """Base class of every layer (torch.nn.Module)."""

    _version = 1
    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(torch.nn.Parameter or None required)"
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        self._buffers[name] = tensor

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self._parameters:
            self.register_parameter(name, value)
        elif name in self._buffers:
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        for store in ("_parameters", "_buffers", "_modules"):
            values = self.__dict__.get(store)
            if values is not None and name in values:
                return values[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [
                (f"{name}.{child_name}" if name else child_name, child)
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

    def _named_members(self, store: str, prefix: str, recurse: bool) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.data[...] = 0

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Move and/or cast parameters and buffers in place (torch.nn.Module.to).

        Only floating-point tensors change dtype, as in torch: ``num_batches_tracked`` stays int64.
        """
        device, dtype = _parse_to(args, kwargs)
        converted = []
        for module in self.modules():
            for store in (module._parameters, module._buffers):
                for value in store.values():
                    if value is None:
                        continue
                    new_dtype = dtype if dtype is not None and value.dtype.kind == "f" else None
                    new_device = device if device is not None else value.device
                    converted.append((value, new_device, new_dtype))
        arrays = [
            backend(dev.type).asarray(value.data, dtype=new_dtype)
            for value, dev, new_dtype in converted
        ]
        for (value, _, _), array in zip(converted, arrays, strict=True):
            value.data = array
            if value.grad is not None:
                value.grad = value.grad.to(device_of(array), array.dtype)
        return self

    def _state_items(self) -> Iterator[tuple[str, Tensor]]:
        for prefix, module in self.named_modules():
            head = f"{prefix}." if prefix else ""
            for store in (module._parameters, module._buffers):
                for name, value in store.items():
                    if value is not None:
                        yield head + name, value

    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict[str, Any]:
        """Parameters and buffers under torch's keys; values are host numpy arrays.

        On the CPU the arrays are the module's own, as torch's tensors are: copy them to keep a
        snapshot. With ``keep_vars=True`` the values are the Tensors themselves.
        """
        state: OrderedDict[str, Any] = OrderedDict()
        metadata: dict[str, dict[str, int]] = {}
        for module_prefix, module in self.named_modules():
            metadata[module_prefix] = {"version": module._version}
        for key, value in self._state_items():
            state[prefix + key] = value if keep_vars else np.asarray(value)
        state._metadata = metadata  # type: ignore[attr-defined]
        return state

    def _load_fill_missing(self, state: dict[str, Any], prefix: str, version: int | None) -> None:
        """Hook for a module to fill keys that older checkpoints lack (torch's versioned loads)."""

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> _IncompatibleKeys:
        """Copy values into parameters and buffers (torch.nn.Module.load_state_dict).

        Values may be anything ``np.asarray`` takes (torch tensors included). Every key and shape
        is checked before anything is copied, so a failed load leaves the module as it was.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        metadata = getattr(state_dict, "_metadata", None)
        state = dict(state_dict)
        for module_prefix, module in self.named_modules():
            head = f"{module_prefix}." if module_prefix else ""
            version = None if metadata is None else metadata.get(module_prefix, {}).get("version")
            module._load_fill_missing(state, head, version)
        own = OrderedDict(self._state_items())
        missing = [key for key in own if key not in state]
        unexpected = [key for key in state_dict if key not in own]
        errors = []
        copies = []
        for key, target in own.items():
            if key not in state:
                continue
            value = state[key]
            array = value.data if isinstance(value, Tensor) else np.asarray(value)
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
        for target, array in copies:
            target.data[...] = backend(target.device.type).asarray(array, dtype=target.dtype)
        return _IncompatibleKeys(missing, unexpected)

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
