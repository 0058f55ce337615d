"""The tape: ``Function`` (forward and backward side by side), its ``Context``, ``no_grad``, and
the iterative backward walk.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from numbanorm.backends import host_cache
from numbanorm.dispatch import backend, device_of

if TYPE_CHECKING:
    from numbanorm.tensor import Tensor

_FREED = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward."
)


class _GradMode(threading.local):
    """Whether this thread records on the tape: a class default, so reading it never raises
    (``getattr`` with a default costs a caught AttributeError in every new thread's reads)."""

    enabled = True


_state = _GradMode()

# The devices a Function runs on: CPU only unless it says otherwise.
CPU_ONLY = frozenset({"cpu"})
ALL_DEVICES = frozenset({"cpu", "cuda"})


def is_grad_enabled() -> bool:
    """Whether operations are recorded on the tape (torch.is_grad_enabled)."""
    return _state.enabled


class no_grad:
    """Context manager and decorator that stops recording on the tape (torch.no_grad).

    As in torch, it decorates with or without parentheses: ``@no_grad()`` and ``@no_grad``.
    """

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)

    def __enter__(self) -> None:
        self._previous = is_grad_enabled()
        _state.enabled = False

    def __exit__(self, *exc: object) -> None:
        _state.enabled = self._previous

    def __call__(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with type(self)():
                return function(*args, **kwargs)

        return wrapper


class Context:
    """What a Function's forward leaves for its backward (torch.autograd.function.FunctionCtx).

    It is also the Function's node in the graph: one edge per positional argument of forward,
    to the node of each argument that needs a gradient (the Context that made it, or the leaf
    Tensor itself) and None for the others. The graph holds no other tensor, so intermediate
    results are freed as soon as nobody else holds them, as in torch.
    """

    def __init__(
        self,
        function: type[Function],
        needs_input_grad: tuple,
        tensor_inputs: tuple,
        edges: tuple,
        metas: tuple,
    ):
        self.function = function
        self.needs_input_grad = needs_input_grad
        self._tensor_inputs = tensor_inputs
        self._edges = edges
        self._metas = metas
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
    positional argument of forward (a bare array when there is one); it is called only when
    ``ctx.needs_input_grad`` has a True, and should return None where it has a False. As in
    torch's engine, a gradient of the wrong shape is an error unless it sums to the input's
    shape, and a gradient of another dtype is cast to the input's.

    ``devices`` are the devices whose arrays forward and backward take (``ALL_DEVICES`` for a
    Function written against the backends' array operations); a Tensor argument on another
    device gets torch's error for an op without a kernel there.
    """

    devices: frozenset[str] = CPU_ONLY

    @staticmethod
    def forward(ctx: Context, *args: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any) -> Tensor:
        Tensor = tensor_module.Tensor
        if "cuda" not in cls.devices:
            _refuse_cuda(cls, args, Tensor)
        record = is_grad_enabled()
        # One pass over the arguments: on a tiny input this bookkeeping costs more than the kernel.
        arrays, needs, tensors, edges, metas = [], [], [], [], []
        for a in args:
            if isinstance(a, Tensor):
                needs_grad = record and a._requires_grad
                arrays.append(a.data)
                tensors.append(True)
                edges.append((a if a._ctx is None else a._ctx) if needs_grad else None)
                metas.append((a.data.shape, a.data.dtype) if needs_grad else None)
            else:
                needs_grad = False
                arrays.append(a)
                tensors.append(False)
                edges.append(None)
                metas.append(None)
            needs.append(needs_grad)
        needs = tuple(needs)
        ctx = Context(cls, needs, tuple(tensors), tuple(edges), tuple(metas))
        out = cls.forward(ctx, *arrays)
        result = Tensor._wrap(out, requires_grad=True in needs)
        if result._requires_grad:
            result._ctx = ctx
        return result


def _refuse_cuda(function: type[Function], args: tuple, tensor_type: type) -> None:
    """torch's error for an op without a CUDA kernel, if a Tensor argument lives on CUDA."""
    for a in args:
        # The type checks first: the CPU path pays no more than them.
        if (
            isinstance(a, tensor_type)
            and type(a.data) is not np.ndarray
            and device_of(a.data) == "cuda"
        ):
            raise NotImplementedError(
                f"Could not run '{function.__name__}' with arguments from the 'CUDA' backend: "
                "numbanorm runs only its normalization layers on CUDA. Move the tensors to the "
                "CPU first (Tensor.cpu(), Module.cpu())."
            )


def _shape_list(shape: tuple) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def _expandable(shape: tuple, to: tuple) -> bool:
    """Whether ``shape`` broadcasts to ``to`` (torch's ``is_expandable_to``)."""
    if len(shape) > len(to):
        return False
    return all(n in (m, 1) for n, m in zip(reversed(shape), reversed(to), strict=False))


def _sum_to_shape(grad: Any, shape: tuple) -> Any:
    """``grad`` summed over the axes along which ``shape`` broadcasts to ``grad.shape``."""
    lead = len(grad.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    return grad.sum(axis=axes).reshape(shape) if axes else grad.reshape(shape)


def _input_grads(ctx: Context, grad: Any) -> tuple:
    """The gradients ``ctx``'s backward returns, checked and shaped as torch's engine does."""
    result = ctx.function.backward(ctx, grad)
    result = result if isinstance(result, tuple) else (result,)
    expected = len(ctx._edges)
    if len(result) < expected or any(g is not None for g in result[expected:]):
        raise RuntimeError(
            f"function {_node_name(ctx)} returned an incorrect number of gradients "
            f"(expected {expected}, got {len(result)})"
        )
    checked = []
    # One loop over the positions: on a tiny input these checks cost more than the kernels.
    for index, (is_tensor, meta, input_grad) in enumerate(
        zip(ctx._tensor_inputs, ctx._metas, result, strict=False)
    ):
        if input_grad is None:
            checked.append(None)
            continue
        if not is_tensor:
            _refuse_non_variable_grads(ctx, result)
        if meta is None:
            checked.append(None)
            continue
        shape, dtype = meta
        if input_grad.shape != shape:
            if not _expandable(shape, tuple(input_grad.shape)):
                _refuse_non_variable_grads(ctx, result)  # torch checks those first
                raise RuntimeError(
                    f"Function {_node_name(ctx)} returned an invalid gradient at index {index} - "
                    f"got {_shape_list(input_grad.shape)} but expected shape compatible with "
                    f"{_shape_list(shape)}"
                )
            input_grad = _sum_to_shape(input_grad, shape)
        if input_grad.dtype != dtype:
            input_grad = backend(device_of(input_grad)).astype(input_grad, dtype)
        checked.append(input_grad)
    return tuple(checked)


def _refuse_non_variable_grads(ctx: Context, result: tuple) -> None:
    for position, (is_tensor, input_grad) in enumerate(
        zip(ctx._tensor_inputs, result, strict=False), start=1
    ):
        if not is_tensor and input_grad is not None:
            raise RuntimeError(
                f"function {_node_name(ctx)} returned a gradient different than None at "
                f"position {position}, but the corresponding forward input was not a Variable"
            )


def _node_name(ctx: Context) -> str:
    return f"{ctx.function.__name__}Backward"


def run_backward(root: Tensor, grad: Any, retain_graph: bool) -> None:
    """Accumulate d(root)/d(leaf) into every leaf's ``.grad``, walking the graph iteratively.

    Without ``retain_graph`` every visited node's saved arrays are freed: a later backward through
    it raises torch's error when (and only when) its backward reads ``ctx.saved_tensors``.
    """
    start = root if root._ctx is None else root._ctx
    grads = {id(start): grad}
    with no_grad():
        for node in _topological_order(start):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if not isinstance(node, Context):
                owned = _only_reference(g)  # before ``g`` is also a pending call argument
                node._accumulate_grad(g, owned)
                continue
            input_grads = _input_grads(node, g)
            if not retain_graph:  # as in torch, a backward that raised keeps its saved arrays
                node.free()
            _add_grads(grads, node._edges, input_grads)
            del input_grads  # leaves ``grads`` the only holder, so a leaf can take one over


def _add_grads(grads: dict, edges: tuple, input_grads: tuple) -> None:
    for parent, parent_grad in zip(edges, input_grads, strict=True):
        if parent_grad is not None:
            previous = grads.get(id(parent))
            grads[id(parent)] = (
                parent_grad
                if previous is None
                else backend(device_of(previous)).add(previous, parent_grad)
            )


def _only_reference(array: Any) -> bool:
    """Whether the engine's local name is the only reference to ``array`` and to the memory it
    views (torch's AccumulateGrad checks the use count the same way before stealing a buffer)."""
    if not isinstance(array, np.ndarray):
        return False  # device arrays share memory through numba's pointers, not ``base``: copied
    # References to the array here: the caller's local, this argument, getrefcount's argument.
    if sys.getrefcount(array) > 3:
        return False
    base = getattr(array, "base", None)
    while base is not None:
        # References to a base: its view's ``.base``, the local ``base``, getrefcount's argument,
        # and the host cache's own, kept for reuse, when the base is one of its buffers.
        references = sys.getrefcount(base)
        if references > 3 and (references > 4 or not host_cache.holds(base)):
            return False
        base = getattr(base, "base", None)
    return True


def _topological_order(start: Any) -> list[Any]:
    """Nodes reachable from ``start`` (Contexts, and leaf Tensors), each after all its users."""
    order: list[Any] = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(start, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if isinstance(node, Context):
            for parent in node._edges:  # a loop: a generator costs more on a node's few edges
                if parent is not None:
                    stack.append((parent, False))
    order.reverse()
    return order


# Last: numbanorm.tensor builds its own Functions on the classes above. A module-level name, since
# an import statement in ``Function.apply`` would cost a microsecond on every call.
import numbanorm.tensor as tensor_module  # noqa: E402
