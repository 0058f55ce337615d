"""torch.nn.functional's normalization functions: validate first, then run one fused Function.

Validation raises torch 2.13's exception types and messages, in torch's order, before anything is
computed or mutated.
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function
from numbanorm.dispatch import backend, common_device, device_of
from numbanorm.functions.batch_norm import BatchNorm
from numbanorm.tensor import Tensor
from numbanorm.types import size_str, torch_name

_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _as_tensor(x: Any) -> Tensor | None:
    if x is None or isinstance(x, Tensor):
        return x
    return Tensor(np.asarray(x))


def verify_batch_size(shape: tuple) -> None:
    """torch's ``_verify_batch_size``: training needs more than one value per channel.

    As in torch, a 0-d input fails on ``size[0]`` and a 1-d input counts ``size[0]`` values.
    """
    if not shape:
        raise IndexError("tuple index out of range")
    if shape[0] * prod(shape[2:]) == 1:
        raise ValueError(
            "Expected more than 1 value per channel when training, got input size "
            f"{size_str(shape)}"
        )


def check_float_input(name: str, x: Tensor) -> None:
    """torch's dtype dispatch: a norm runs on float16, float32 and float64 input only."""
    if x.dtype not in _FLOAT_DTYPES:
        raise NotImplementedError(f"\"{name}\" not implemented for '{torch_name(x.dtype)}'")


def _type_name(value: Any) -> str:
    """A type's name as torch's argument parser prints it (CPython's ``tp_name``)."""
    cls = type(value)
    if cls.__module__ == "builtins" or cls.__flags__ & (1 << 9):  # Py_TPFLAGS_HEAPTYPE
        return cls.__name__
    return f"{cls.__module__}.{cls.__qualname__}"


def check_argument_type(function: str, name: str, position: int, kind: str, value: Any) -> None:
    """torch's argument parser on a ``float`` or ``bool`` argument.

    A float argument takes Python and numpy numbers (bools too) and 0-d tensors; a bool argument
    takes Python's bool only.
    """
    if kind == "bool":
        ok = isinstance(value, bool)
    elif isinstance(value, Tensor):
        ok = value.ndim == 0
    else:
        ok = isinstance(value, (int, float, np.number, np.bool_))
    if not ok:
        raise TypeError(
            f"{function}(): argument '{name}' (position {position}) must be {kind}, not "
            f"{_type_name(value)}"
        )


def _as_float(value: Any) -> float:
    return float(value.item() if isinstance(value, Tensor) else value)


def check_mixed_precision(x: Tensor, parameters: list[Tensor | None]) -> bool:
    """Whether torch's CPU kernels take ``parameters`` as mixed precision; raises if they cannot.

    The first defined parameter (in the op's argument order) decides: with the input's dtype it
    is the plain case (the caller checks the others against the input as the kernels read them).
    Otherwise every parameter must be float32, and the input float16 (or bfloat16, in torch).
    """
    defined = [p for p in parameters if p is not None]
    if not defined or defined[0].dtype == x.dtype:
        return False
    if any(p.dtype != np.float32 for p in defined):
        raise RuntimeError("mixed dtype (CPU): expect parameter to have scalar type of Float")
    if x.dtype != np.float16:
        raise RuntimeError("mixed dtype (CPU): all inputs must share same datatype.")
    return True


def check_same_dtype(x: Tensor, parameter: Tensor | None) -> None:
    """The plain (not mixed) case: a parameter the kernel reads has the input's dtype."""
    if parameter is not None and parameter.dtype != x.dtype:
        raise RuntimeError(
            f"expected scalar type {torch_name(x.dtype)} but found {torch_name(parameter.dtype)}"
        )


def _check_features(name: str, expected: int, tensor: Tensor | None) -> None:
    if tensor is not None and tensor.numel() != expected:
        raise RuntimeError(f"{name} should contain {expected} elements not {tensor.numel()}")


def _no_dimension_1(input: Tensor) -> IndexError:
    if input.ndim:
        return IndexError("Dimension out of range (expected to be in range of [-1, 0], but got 1)")
    return IndexError("Dimension specified as 1 but tensor has no dimensions")


def _check_batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: Any,
    momentum: Any,
    eps: Any,
) -> None:
    """torch 2.13's checks, in its order: Python's, the argument parser's, then ATen's (CPU).

    An empty input passes once the arguments parse: torch returns before its other checks.
    """
    if training:
        verify_batch_size(input.shape)
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    elif eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    check_argument_type("batch_norm", "training", 6, "bool", training)
    check_argument_type("batch_norm", "momentum", 7, "float", momentum)
    check_argument_type("batch_norm", "eps", 8, "float", eps)
    if input.numel() == 0:
        return
    features = input.shape[1] if input.ndim > 1 else 0
    for name, buffer in (("running_mean", running_mean), ("running_var", running_var)):
        if buffer is None and not training:
            raise RuntimeError(f"{name} must be defined in evaluation mode")
        _check_features(name, features, buffer)
    _check_features("weight", features, weight)
    _check_features("bias", features, bias)
    # Training asks for the size of dimension 1 first, eval only after the dtype dispatch.
    if training and input.ndim < 2:
        raise _no_dimension_1(input)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither be None")
    check_float_input("batch_norm", input)
    mixed = check_mixed_precision(input, [weight, bias, running_mean, running_var])
    if input.ndim < 2:
        raise _no_dimension_1(input)
    read_order = (
        [running_mean, running_var, weight, bias]
        if training
        else [weight, bias, running_mean, running_var]
    )
    for p in read_order:
        if p is not None and p.ndim != 1 and (p is running_mean or p is running_var):
            raise RuntimeError(f"TensorAccessor expected 1 dims but tensor has {p.ndim}")
        if not mixed:
            check_same_dtype(input, p)
    tensors = (input, running_mean, running_var, weight, bias)
    common_device(*(t.data for t in tensors if t is not None))


_CATEGORIES = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


class _EmptyBatchNorm(Function):
    """torch's batch norm of an empty input: ``input.clone() * weight[0] + bias[0]``.

    No statistics, no running-stat update, any input dtype; the weight and bias gradients are
    zeros of their own shapes. ``weight[0]``/``bias[0]`` are 0-d, so they change the output's
    dtype only when of a higher category (an integer input times a float weight is float).
    """

    @staticmethod
    def forward(ctx: Context, x: Any, weight: Any, bias: Any) -> Any:
        dtype = np.dtype(x.dtype)
        for p in (weight, bias):
            if p is not None and _CATEGORIES[p.dtype.kind] > _CATEGORIES[dtype.kind]:
                dtype = np.dtype(p.dtype)
        ctx.metas = [None if a is None else (a.shape, a.dtype) for a in (x, weight, bias)]
        return backend(device_of(x)).empty(x.shape, dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        xp = backend(device_of(grad))
        return tuple(
            xp.full(meta[0], 0, dtype=meta[1]) if needs else None
            for meta, needs in zip(ctx.metas, ctx.needs_input_grad, strict=True)
        )


def _empty_batch_norm(input: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    for p in (weight, bias):
        if p is not None and (p.ndim == 0 or p.shape[0] == 0):
            raise IndexError(
                f"select(): index 0 out of range for tensor of size {list(p.shape)} at dimension 0"
            )
    return _EmptyBatchNorm.apply(input, weight, bias)


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization per channel (torch.nn.functional.batch_norm).

    With ``training=True`` the batch's statistics normalize and ``running_mean``/``running_var``,
    when given, are updated in place; otherwise the running statistics normalize. An empty input
    gives an empty output and leaves the running statistics alone, as in torch.
    """
    input, running_mean, running_var, weight, bias = map(
        _as_tensor, (input, running_mean, running_var, weight, bias)
    )
    _check_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    if input.numel() == 0:
        return _empty_batch_norm(input, weight, bias)
    return BatchNorm.apply(
        input,
        weight,
        bias,
        None if running_mean is None else running_mean.data,
        None if running_var is None else running_var.data,
        training,
        _as_float(momentum),
        _as_float(eps),
    )


# -- linear, activations, dropout ------------------------------------------------------------


def linear(input: Any, weight: Any, bias: Any = None) -> Tensor:
    """y = input @ weight.T + bias over any leading dimensions (torch.nn.functional.linear)."""
    from numbanorm.functions.linear import Linear

    input, weight, bias = map(_as_tensor, (input, weight, bias))
    return Linear.apply(input, weight, bias)


def relu(input: Any, inplace: bool = False) -> Tensor:
    """max(input, 0) (torch.nn.functional.relu); ``inplace`` is accepted, the result is new."""
    from numbanorm.functions.activation import ReLU

    return ReLU.apply(_as_tensor(input))


def gelu(input: Any, approximate: str = "none") -> Tensor:
    """input * Phi(input), or its tanh approximation (torch.nn.functional.gelu)."""
    from numbanorm.functions.activation import GELU

    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    return GELU.apply(_as_tensor(input), approximate)


def tanh(input: Any) -> Tensor:
    """Elementwise tanh (torch.nn.functional.tanh)."""
    from numbanorm.functions.activation import Tanh

    return Tanh.apply(_as_tensor(input))


def dropout(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1 - p) when training
    (torch.nn.functional.dropout); the input itself when not training or when ``p`` is 0."""
    from numbanorm.functions.dropout import Dropout

    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    input = _as_tensor(input)
    if not training or p == 0:
        return input
    return Dropout.apply(input, float(p))


def _check_reduction(reduction: str) -> None:
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """torch.nn.functional.cross_entropy: class-index or class-probability targets."""
    from numbanorm.functions.loss import CrossEntropy, CrossEntropyProbabilities

    _check_reduction(reduction)
    input, target, weight = _as_tensor(input), _as_tensor(target), _as_tensor(weight)
    if input.shape == target.shape:
        if target.dtype.kind != "f":
            raise RuntimeError(
                "Expected floating point type for target with class probabilities, got "
                f"{torch_name(target.dtype)}"
            )
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        if not 0.0 <= label_smoothing <= 1.0:
            raise RuntimeError(
                f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}"
            )
        return CrossEntropyProbabilities.apply(input, target, weight, reduction, label_smoothing)
    if label_smoothing > 0.0 and label_smoothing > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if input.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.ndim})")
    if input.ndim >= 2 and input.shape[0] != (target.shape[0] if target.ndim else -1):
        batch = target.shape[0] if target.ndim else 1
        raise ValueError(
            f"Expected input batch_size ({input.shape[0]}) to match target batch_size ({batch})."
        )
    if target.dtype not in (np.dtype(np.int64), np.dtype(np.uint8)):
        raise RuntimeError(
            f"expected target dtype to be Long or Byte, but got {torch_name(target.dtype)}"
        )
    if input.ndim <= 2:
        if target.ndim > 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    else:
        expected = (input.shape[0], *input.shape[2:])
        if target.shape != expected:
            raise RuntimeError(
                f"Expected target size {list(expected)}, got {list(target.shape)}"
            )
    n_classes = input.shape[1] if input.ndim >= 2 else input.shape[0]
    if weight is not None and weight.numel() != n_classes:
        raise RuntimeError(
            f"weight tensor should be defined either for all {n_classes} classes or no classes "
            f"but got weight tensor of shape: {list(weight.shape)}"
        )
    return CrossEntropy.apply(input, target, weight, ignore_index, reduction, label_smoothing)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """torch.nn.functional.mse_loss, with torch's warning when the shapes differ."""
    import warnings

    from numbanorm.functions.elementwise import broadcast_shape
    from numbanorm.functions.loss import MSELoss

    input, target = _as_tensor(input), _as_tensor(target)
    if target.shape != input.shape:
        warnings.warn(
            f"Using a target size ({size_str(target.shape)}) that is different to the input size "
            f"({size_str(input.shape)}). This will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.",
            stacklevel=2,
        )
    _check_reduction(reduction)
    broadcast_shape(input.shape, target.shape)
    return MSELoss.apply(input, target, reduction)
