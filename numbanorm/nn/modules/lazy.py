"""``LazyModuleMixin``: modules that infer their parameters' shapes from their first input
(torch.nn.modules.lazy)."""

from __future__ import annotations

from itertools import chain
from typing import Any

from numbanorm.nn.parameter import is_lazy


class LazyModuleMixin:
    """A module whose parameters and buffers start uninitialized (torch's LazyModuleMixin).

    The first call runs ``initialize_parameters`` on its arguments, then, every parameter and
    buffer initialized, the module becomes ``cls_to_become`` (when set) and runs its forward.
    torch does this in a forward pre-hook; numbanorm's modules have no hooks, so the mixin's
    ``__call__`` does it. Unlike torch, a first call that raises leaves the module as it was:
    still lazy, its parameters still uninitialized. ``load_state_dict`` materializes the
    uninitialized tensors it loads (torch's ``_lazy_load_hook``); the module stays lazy until
    its first call, as in torch.
    """

    cls_to_become: type | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._infer_pending = True

    def initialize_parameters(self, *args: Any, **kwargs: Any) -> None:
        """Materialize the uninitialized parameters and buffers from the first call's
        arguments."""
        raise NotImplementedError(
            f"initialize_parameters is not implemented for {self.__class__.__name__}"
        )

    def has_uninitialized_params(self) -> bool:
        """Whether a parameter or buffer of this module is still uninitialized."""
        return any(is_lazy(v) for v in chain(self._parameters.values(), self._buffers.values()))

    def _infer_parameters(self, args: tuple, kwargs: dict) -> None:
        self.initialize_parameters(*args, **kwargs)
        if self.has_uninitialized_params():
            raise RuntimeError(f"module {self._get_name()} has not been fully initialized")
        del self._infer_pending
        if self.cls_to_become is not None:
            self.__class__ = self.cls_to_become

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if "_infer_pending" not in self.__dict__:
            return super().__call__(*args, **kwargs)
        cls = type(self)
        attributes = dict(self.__dict__)
        stores = [(store, dict(store)) for store in (self._parameters, self._buffers)]
        lazy = [(v, type(v), v.data) for _, saved in stores for v in saved.values() if is_lazy(v)]
        try:
            self._infer_parameters(args, kwargs)
            return self(*args, **kwargs)
        except BaseException:
            for tensor, tensor_cls, data in lazy:
                tensor.__class__ = tensor_cls
                tensor.data = data
            for store, saved in stores:
                store.clear()
                store.update(saved)
            self.__class__ = cls
            self.__dict__.clear()
            self.__dict__.update(attributes)
            raise
