"""Elementwise arithmetic on the tape (Add, Sub, Mul, Div, Neg), with numpy broadcasting and
torch's type promotion. Each backward returns gradients of the broadcast shape: the engine sums
them down to each input's shape and casts them to its dtype."""

from __future__ import annotations

from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function

_DEFAULT_FLOAT = np.dtype(np.float32)
# What a Python number is as a "wrapped number" in torch's promotion.
_SCALAR_DTYPES = {
    bool: np.dtype(np.bool_),
    int: np.dtype(np.int64),
    float: np.dtype(np.float32),
    complex: np.dtype(np.complex64),
}


def _is_float(dtype: np.dtype | None) -> bool:
    return dtype is not None and dtype.kind == "f"


def _is_complex(dtype: np.dtype | None) -> bool:
    return dtype is not None and dtype.kind == "c"


def _promote(a: np.dtype | None, b: np.dtype | None) -> np.dtype | None:
    """torch.promote_types, None standing for "nothing yet"."""
    from numbanorm.tensor import _promote

    if a is None or b is None:
        return b if a is None else a
    return _promote(a, b)


def _combine(higher: np.dtype | None, lower: np.dtype | None) -> np.dtype | None:
    """torch's ``combine_categories``: a lower priority operand only matters when it is of a
    higher category (float over integer, complex over float)."""
    if _is_complex(higher):
        return higher
    if _is_complex(lower):
        if _is_float(higher):
            return np.promote_types(higher, np.complex64)
        return lower
    if _is_float(higher):
        return higher
    if (higher is not None and higher.kind == "b") or _is_float(lower):
        return _promote(higher, lower)
    return higher if higher is not None else lower


def result_type(*operands: Any) -> np.dtype:
    """torch.result_type of arrays and Python numbers: tensors with dimensions outrank 0-d
    tensors, which outrank Python numbers, except where a lower rank is of a higher category."""
    dims = zeros = wrapped = None
    for operand in operands:
        if type(operand) in _SCALAR_DTYPES:
            wrapped = _promote(wrapped, _SCALAR_DTYPES[type(operand)])
        elif len(operand.shape) == 0:
            zeros = _promote(zeros, np.dtype(operand.dtype))
        else:
            dims = _promote(dims, np.dtype(operand.dtype))
    return _combine(dims, _combine(zeros, wrapped))


def broadcast_shape(a: tuple, b: tuple) -> tuple:
    """The shape ``a`` and ``b`` broadcast to, or torch's error."""
    ndim = max(len(a), len(b))
    a = (1,) * (ndim - len(a)) + tuple(a)
    b = (1,) * (ndim - len(b)) + tuple(b)
    shape = []
    for dim, (m, n) in enumerate(zip(a, b, strict=True)):
        if m != n and m != 1 and n != 1:
            raise RuntimeError(
                f"The size of tensor a ({m}) must match the size of tensor b ({n}) at "
                f"non-singleton dimension {dim}"
            )
        shape.append(n if m == 1 else m)
    return tuple(shape)


def _shape(x: Any) -> tuple:
    return () if type(x) in _SCALAR_DTYPES else tuple(x.shape)


def _operands(a: Any, b: Any, dtype: np.dtype) -> tuple:
    """``a`` and ``b`` as arrays of ``dtype`` (checked to broadcast together)."""
    broadcast_shape(_shape(a), _shape(b))
    return np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype)


class Add(Function):
    """a + b."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        x, y = _operands(a, b, result_type(a, b))
        return np.asarray(x + y)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        needs = ctx.needs_input_grad
        return (grad if needs[0] else None), (grad if needs[1] else None)


class Sub(Function):
    """a - b (torch refuses two booleans)."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        bools = [
            type(v) is bool or (type(v) not in _SCALAR_DTYPES and v.dtype.kind == "b")
            for v in (a, b)
        ]
        if all(bools):
            raise RuntimeError(
                "Subtraction, the `-` operator, with two bool tensors is not supported. Use the "
                "`^` or `logical_xor()` operator instead."
            )
        if any(bools):
            raise RuntimeError(
                "Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                "trying to invert a mask, use the `~` or `logical_not()` operator instead."
            )
        x, y = _operands(a, b, result_type(a, b))
        return np.asarray(x - y)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        needs = ctx.needs_input_grad
        return (grad if needs[0] else None), (-grad if needs[1] else None)


class Mul(Function):
    """a * b."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        x, y = _operands(a, b, result_type(a, b))
        ctx.save_for_backward(x, y)
        return np.asarray(x * y)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x, y = ctx.saved_tensors
        return (
            grad * y if ctx.needs_input_grad[0] else None,
            grad * x if ctx.needs_input_grad[1] else None,
        )


class Div(Function):
    """a / b, true division: integers and booleans divide as torch's default float type."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        dtype = result_type(a, b)
        if dtype.kind not in "fc":
            dtype = _DEFAULT_FLOAT
        x, y = _operands(a, b, dtype)
        ctx.save_for_backward(x, y)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(x / y)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x, y = ctx.saved_tensors
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return (
                grad / y if ctx.needs_input_grad[0] else None,
                -grad * ((x / y) / y) if ctx.needs_input_grad[1] else None,
            )


class Neg(Function):
    """-a (torch refuses booleans)."""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        if a.dtype.kind == "b":
            raise RuntimeError(
                "Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
                "to invert a mask, use the `~` or `logical_not()` operator instead."
            )
        return np.negative(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return (-grad,)
