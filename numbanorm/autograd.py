"""The tape: ``Function`` (forward and backward side by side), its ``Context``, ``no_grad``, and
the iterative backward walk.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numbanorm.tensor import Tensor

_FREED = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward."
)

_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether operations are recorded on the tape (torch.is_grad_enabled)."""
    return getattr(_state, "enabled", True)


class no_grad:
    """Context manager and decorator that stops recording on the tape (torch.no_grad)."""

    def __enter__(self) -> None:
        self._previous = is_grad_enabled()
        _state.enabled = False

    def __exit__(self, *exc: object) -> None:
        _state.enabled = self._previous

    def __call__(self, function):
        def wrapper(*args, **kwargs):
            with no_grad():
                return function(*args, **kwargs)

        wrapper.__name__ = function.__name__
        wrapper.__doc__ = function.__doc__
        return wrapper


class Context:
    """What a Function's forward leaves for its backward (torch.autograd.function.FunctionCtx)."""

    def __init__(self, function: type[Function], inputs: tuple, needs_input_grad: tuple):
        self.function = function
        self.inputs = inputs
        self.needs_input_grad = needs_input_grad
        self._saved: tuple | None = ()
        self.freed = False

    def save_for_backward(self, *arrays: Any) -> None:
        self._saved = arrays

    @property
    def saved_tensors(self) -> tuple:
        if self.freed:
            raise RuntimeError(_FREED)
        return self._saved

    def free(self) -> None:
        self._saved = None
        self.freed = True


class Function:
    """A differentiable operation on arrays (torch.autograd.Function).

    ``forward(ctx, *args)`` gets the arrays of Tensor arguments and other arguments as they are,
    and returns one array. ``backward(ctx, grad)`` returns one gradient array (or None) per
    positional argument of forward; it is called only for inputs in ``ctx.needs_input_grad``.
    """

    @staticmethod
    def forward(ctx: Context, *args: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any) -> Tensor:
        from numbanorm.tensor import Tensor

        record = is_grad_enabled()
        needs = tuple(record and isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = Context(cls, args, needs)
        out = cls.forward(ctx, *(a.data if isinstance(a, Tensor) else a for a in args))
        result = Tensor._wrap(out, requires_grad=any(needs))
        if result.requires_grad:
            result._ctx = ctx
        return result


def run_backward(root: Tensor, grad: Any, retain_graph: bool) -> None:
    """Accumulate d(root)/d(leaf) into every leaf's ``.grad``, walking the graph iteratively."""
    order = _topological_order(root)
    grads = {id(root): grad}
    for tensor in order:
        g = grads.pop(id(tensor), None)
        if g is None:
            continue
        ctx = tensor._ctx
        if ctx is None:
            tensor._accumulate_grad(g)
            continue
        if ctx.freed:
            raise RuntimeError(_FREED)
        input_grads = ctx.function.backward(ctx, g)
        for parent, needs, parent_grad in zip(
            ctx.inputs, ctx.needs_input_grad, input_grads, strict=False
        ):
            if not needs or parent_grad is None:
                continue
            previous = grads.get(id(parent))
            grads[id(parent)] = parent_grad if previous is None else previous + parent_grad
        if not retain_graph:
            ctx.free()


def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors reachable from ``root`` through requires-grad inputs, each after all its users."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor._ctx is None:
            continue
        for parent, needs in zip(tensor._ctx.inputs, tensor._ctx.needs_input_grad, strict=True):
            if needs and id(parent) not in visited:
                stack.append((parent, False))
    order.reverse()
    return order
