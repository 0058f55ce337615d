"""Losses as fused Functions: cross entropy (class indices or class probabilities, with class
weights, ignore_index and label smoothing, as torch's ``cross_entropy_loss``) and mean squared
error. Both compute in float64 and return the input's dtype."""

from __future__ import annotations

from typing import Any

import numpy as np

from numbanorm.autograd import Context, Function

_REDUCTIONS = ("none", "mean", "sum")


def _rows(x: np.ndarray) -> np.ndarray:
    """(N, C, *d) or (C,) as float64 rows of C classes, classes innermost."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        return x.reshape(1, -1)
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _unrows(g: np.ndarray, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """The inverse of ``_rows``, cast to ``dtype``."""
    if len(shape) == 1:
        return g.reshape(shape).astype(dtype)
    moved = g.reshape((shape[0], *shape[2:], shape[1]))
    return np.ascontiguousarray(np.moveaxis(moved, -1, 1)).astype(dtype)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _reduce(per_row: np.ndarray, out_shape: tuple, reduction: str, denominator: float):
    if reduction == "none":
        return per_row.reshape(out_shape)
    total = per_row.sum()
    if reduction == "sum":
        return np.asarray(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / denominator)


def _row_scale(grad: np.ndarray, rows: int, reduction: str, denominator: float) -> np.ndarray:
    """d(reduced loss)/d(per-row loss) times the upstream gradient, per row."""
    grad = np.asarray(grad, dtype=np.float64)
    if reduction == "none":
        return grad.reshape(rows)
    if reduction == "sum":
        return np.full(rows, float(grad))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.full(rows, float(grad) / denominator)


class CrossEntropy(Function):
    """Cross entropy with class-index targets (int64 or uint8, checked by the caller)."""

    @staticmethod
    def forward(
        ctx: Context,
        input: Any,
        target: Any,
        weight: Any,
        ignore_index: int,
        reduction: str,
        label_smoothing: float,
    ) -> Any:
        x = _rows(input)
        n_classes = x.shape[1]
        t = np.asarray(target).reshape(-1).astype(np.int64)
        valid = t != ignore_index
        bad = valid & ((t < 0) | (t >= n_classes))
        if bad.any():
            raise IndexError(f"Target {t[np.argmax(bad)]} is out of bounds.")
        safe = np.where(valid, t, 0)
        w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
        wt = np.where(valid, w[safe], 0.0)
        logp = _log_softmax(x)
        nll = -wt * logp[np.arange(len(t)), safe]
        # torch divides the smoothing term by the target weights too, or by the count of valid
        # targets without weights: both are sum(wt).
        denominator = wt.sum()
        out_shape = tuple(np.shape(target))
        loss = _reduce(nll, out_shape, reduction, denominator)
        eps = float(label_smoothing)
        if eps > 0.0:
            smooth = np.where(valid, -(logp * w).sum(axis=1), 0.0)
            smooth_loss = _reduce(smooth, out_shape, reduction, denominator)
            loss = (1.0 - eps) * loss + smooth_loss * (eps / n_classes)
        ctx.save_for_backward(logp, safe, valid, w, wt, denominator)
        ctx.meta = (np.shape(input), np.dtype(input.dtype), reduction, eps)
        return np.asarray(loss, dtype=input.dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        logp, safe, valid, w, wt, denominator = ctx.saved_tensors
        shape, dtype, reduction, eps = ctx.meta
        rows, n_classes = logp.shape
        scale = _row_scale(grad, rows, reduction, denominator)
        g_logp = np.zeros_like(logp)
        # Ignored rows get no gradient, even where the mean divides by a total weight of 0.
        scale = np.where(valid, scale, 0.0)
        g_logp[np.arange(rows), safe] = -(1.0 - eps) * scale * wt
        if eps > 0.0:
            g_logp -= (eps / n_classes) * scale[:, None] * w[None, :]
        g_x = g_logp - np.exp(logp) * g_logp.sum(axis=1, keepdims=True)
        return _unrows(g_x, shape, dtype), None, None, None, None, None


class CrossEntropyProbabilities(Function):
    """Cross entropy with class-probability targets of the input's shape."""

    @staticmethod
    def forward(
        ctx: Context, input: Any, target: Any, weight: Any, reduction: str, label_smoothing: float
    ) -> Any:
        x = _rows(input)
        n_classes = x.shape[1]
        p = _rows(target)
        eps = float(label_smoothing)
        if eps > 0.0:
            p = p * (1.0 - eps) + eps / n_classes
        w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
        logp = _log_softmax(x)
        per_row = -(logp * p * w).sum(axis=1)
        out_shape = (np.shape(input)[0], *np.shape(input)[2:]) if np.ndim(input) > 1 else ()
        loss = _reduce(per_row, out_shape, reduction, x.shape[0])
        ctx.save_for_backward(logp, p, w)
        ctx.meta = (np.shape(input), np.dtype(input.dtype), reduction)
        return np.asarray(loss, dtype=input.dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        logp, p, w = ctx.saved_tensors
        shape, dtype, reduction = ctx.meta
        scale = _row_scale(grad, logp.shape[0], reduction, logp.shape[0])
        g_logp = -scale[:, None] * p * w
        g_x = g_logp - np.exp(logp) * g_logp.sum(axis=1, keepdims=True)
        return _unrows(g_x, shape, dtype), None, None, None, None


class MSELoss(Function):
    """(input - target) ** 2, broadcast, reduced."""

    @staticmethod
    def forward(ctx: Context, input: Any, target: Any, reduction: str) -> Any:
        dtype = np.result_type(input.dtype, target.dtype)
        diff = np.asarray(input, dtype=np.float64) - np.asarray(target, dtype=np.float64)
        squared = diff * diff
        if reduction == "none":
            loss = squared
        elif reduction == "sum":
            loss = squared.sum()
        else:
            loss = squared.mean() if squared.size else np.float64("nan")
        ctx.save_for_backward(diff)
        ctx.meta = (dtype, reduction)
        return np.asarray(loss, dtype=dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        (diff,) = ctx.saved_tensors
        dtype, reduction = ctx.meta
        g = 2.0 * diff * np.asarray(grad, dtype=np.float64)
        if reduction == "mean" and diff.size:
            g = g / diff.size
        g = g.astype(dtype)
        needs = ctx.needs_input_grad
        return (g if needs[0] else None), (-g if needs[1] else None), None
