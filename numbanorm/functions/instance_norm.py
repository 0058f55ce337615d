"""InstanceNorm on the tape: GroupNorm's row kernels with one group per channel, or BatchNorm's
kernels when the running statistics normalize."""

from typing import Any

import numpy as np

from numbanorm.autograd import ALL_DEVICES, Context, Function
from numbanorm.dispatch import backend, device_of
from numbanorm.functions.batch_norm import _empty, _float64, _widen
from numbanorm.functions.layout import NCS, as_layout, channel_view, empty_in_layout


def repeated_dtypes(x_dtype: Any, weight_dtype: Any, mean_dtype: Any, var_dtype: Any) -> tuple:
    """The dtypes of torch 2.13's repeated running statistics (None for one not given).

    When the running mean's dtype is not the weight's (without a weight, the input's), torch
    casts both running statistics to that dtype before it uses them.
    """
    target = np.dtype(x_dtype if weight_dtype is None else weight_dtype)
    if mean_dtype is not None and mean_dtype != target:
        return target, None if var_dtype is None else target
    return mean_dtype, var_dtype


def update_running_stats(
    running_mean: Any,
    running_var: Any,
    dtypes: tuple,
    momentum: float,
    batch: tuple[Any, Any] | None,
    n: int,
) -> None:
    """torch's running-statistics update for instance norm, in place.

    torch repeats each running statistic once per sample (in its ``repeated_dtypes`` dtype),
    updates every copy with that sample's statistics, rounding, and stores the copies' average,
    rounded, back in the statistic's own dtype. ``batch`` is the per-sample ``(mean, unbiased
    variance)``, float64 ``(N, C)`` host arrays, or None for an empty input, whose copies keep
    their values; with ``n == 0`` the average is NaN, as in torch. The statistics may live on
    either device: the update runs on the host (``N * C`` values, with torch's roundings) and
    is written back in place.
    """
    for k, (running, dtype) in enumerate(zip((running_mean, running_var), dtypes, strict=True)):
        if running is None:
            continue
        xp = backend(device_of(running))
        current = xp.to_host(running).reshape(-1).astype(dtype)
        if batch is None:
            copies = np.broadcast_to(current, (n, current.size))
        else:
            copies = (momentum * batch[k] + (1 - momentum) * current.astype(np.float64)).astype(
                dtype
            )
        with np.errstate(invalid="ignore", divide="ignore"):
            average = copies.sum(axis=0, dtype=np.float64) / n
            xp.copyto(running, average.astype(dtype).astype(running.dtype).reshape(running.shape))


def _unbiased_variances(x3: Any, layout: str, invstd: Any, eps: float) -> Any:
    """Each row's unbiased variance, from its ``invstd = 1/sqrt(var + eps)`` (a host array).

    Where ``var + eps < 0`` (a negative ``eps``) ``invstd`` is NaN and the variance is computed
    from the row itself (read on the host): torch's running variance does not depend on ``eps``.
    """
    count = x3.shape[2] if layout == NCS else x3.shape[1]
    with np.errstate(divide="ignore"):
        var = 1.0 / (invstd * invstd) - eps
    lost = np.isnan(var)
    if lost.any():
        n, c = np.nonzero(lost)
        x3 = backend(device_of(x3)).to_host(x3)
        rows = x3[n, c, :] if layout == NCS else x3[n, :, c]
        var[lost] = rows.astype(np.float64).var(axis=1)
    return var * (count / (count - 1))


class InstanceNorm(Function):
    """torch.instance_norm on a non-empty input: statistics per sample and channel.

    With ``use_input_stats`` each sample's channels are normalized by their own statistics and
    the running statistics, when given, are updated in place as torch does; otherwise the
    running statistics (cast as torch casts them) normalize every sample. Inputs are validated
    by ``numbanorm.nn.functional.instance_norm``. float16 is computed in float32 and rounded,
    as torch's CPU kernels do.
    """

    devices = ALL_DEVICES

    @staticmethod
    def forward(
        ctx: Context,
        x: Any,
        weight: Any,
        bias: Any,
        running_mean: Any,
        running_var: Any,
        use_input_stats: bool,
        momentum: float,
        eps: float,
    ) -> Any:
        n, channels = x.shape[:2]
        xp = backend(device_of(x))
        work = xp.astype(x, np.float32) if x.dtype == np.float16 else x
        dtypes = repeated_dtypes(
            x.dtype,
            None if weight is None else weight.dtype,
            None if running_mean is None else running_mean.dtype,
            None if running_var is None else running_var.dtype,
        )
        x3, layout = channel_view(work)
        y, y3 = empty_in_layout(x.shape, work.dtype, layout, xp.DEVICE)
        w = _empty(xp, work.dtype) if weight is None else _widen(weight)
        if use_input_stats:
            mean = xp.empty((n, channels), np.float64)
            invstd = xp.empty((n, channels), np.float64)
            b = _empty(xp, work.dtype) if bias is None else _widen(bias)
            xp.kernel("row_norm", f"group_norm_forward_{layout}", x.size)(
                x3, channels, w, b, eps, y3, mean, invstd
            )
            if running_mean is not None:
                var = _unbiased_variances(x3, layout, xp.to_host(invstd), eps)
                batch = (xp.to_host(mean), var)
                update_running_stats(running_mean, running_var, dtypes, momentum, batch, n)
        else:
            if w.size == 0:
                w = xp.full(channels, 1, work.dtype)
            b = xp.full(channels, 0, work.dtype) if bias is None else _widen(bias)
            rm = _widen(xp.astype(running_mean, dtypes[0]))
            rv = _widen(xp.astype(running_var, dtypes[1]))
            xp.kernel("batch_norm", f"batch_norm_eval_{layout}", x.size)(x3, w, b, rm, rv, eps, y3)
            if any(ctx.needs_input_grad):
                mean = _float64(xp, rm)
                invstd = xp.inverse_std(rv, eps)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x3, w, mean, invstd)
            ctx.layout = layout
            ctx.use_input_stats = use_input_stats
            ctx.shape = x.shape
            ctx.params = [None if p is None else (p.shape, p.dtype) for p in (weight, bias)]
        return xp.astype(y, x.dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x3, w, mean, invstd = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        xp = backend(device_of(x3))
        dy3 = as_layout(xp.astype(grad, x3.dtype), ctx.layout)
        dx, dx3 = (
            empty_in_layout(ctx.shape, x3.dtype, ctx.layout, xp.DEVICE)
            if needs_x
            else (None, _empty(xp, x3.dtype, ndim=3))
        )
        channels = ctx.shape[1]
        dweight = xp.empty(channels, x3.dtype) if needs_weight else _empty(xp, x3.dtype)
        dbias = xp.empty(channels, x3.dtype) if needs_bias else _empty(xp, x3.dtype)
        if ctx.use_input_stats:
            xp.kernel("row_norm", f"group_norm_backward_{ctx.layout}", x3.size)(
                dy3, x3, channels, w, mean, invstd, dx3, dweight, dbias
            )
        else:
            xp.kernel("batch_norm", f"batch_norm_backward_{ctx.layout}", x3.size)(
                dy3, x3, w, mean, invstd, False, dx3, dweight, dbias
            )
        grads = [None if dx is None else xp.astype(dx, grad.dtype)]
        for needed, param, g in zip(
            (needs_weight, needs_bias), ctx.params, (dweight, dbias), strict=True
        ):
            grads.append(xp.astype(g, param[1]).reshape(param[0]) if needed else None)
        return (*grads, None, None, None, None, None)
