"""Optimizers: ``SGD``, ``Adam`` and ``AdamW`` with torch.optim's formulas, on numpy (torch.optim).

Updates run in place on each parameter's ``data`` in the parameter's dtype, following torch's
single-tensor ("for-loop") implementations step by step. ``state_dict()`` has torch's structure
(``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``) with numpy arrays
for tensors, so torch's optimizer state dicts load here after ``np.asarray`` of their tensors,
and ours load into torch after ``torch.as_tensor`` of our arrays.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np

from numbanorm.tensor import Tensor

__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]


class _Required:
    """Marks a hyperparameter without default (torch.optim.optimizer.required)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Holds ``param_groups`` and per-parameter ``state`` (torch.optim.Optimizer)."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                f"dicts, but got {_typename(params)}"
            )
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options; missing ones take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        param_group = dict(param_group)
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(tensors):
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are "
                    "missing"
                )
            param_group["param_names"] = names
        param_group["params"] = tensors
        for param in tensors:
            if not isinstance(param, Tensor):
                raise TypeError(
                    "optimizer can only optimize Tensors, but one of the params is "
                    + _typename(param)
                )
            if not param.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(
                    "parameter group didn't specify a value of required optimization parameter "
                    + name
                )
            param_group.setdefault(name, default)
        seen: set[int] = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {which} to the optimizer"
                )
        if any(id(p) in seen for p in tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients, or fill them with zeros if not ``set_to_none``."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad.requires_grad_(False)
                    param.grad.data[...] = 0

    def step(self, closure: Any = None) -> Any:
        """One optimization step; ``closure`` (re)computes and returns the loss."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [...]}`` as torch's; the arrays are the
        optimizer's own (as torch's tensors are): copy them to keep a snapshot."""
        mapping: dict[int, int] = {}
        start = 0
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                mapping.setdefault(id(p), i)
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {mapping[id(p)]: dict(v) for p, v in self.state.items() if id(p) in mapping}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take over a state dict from ``state_dict()`` here or from torch (values may be anything
        ``np.asarray`` takes). Tensors are copied, cast to their parameter's dtype but ``step``."""
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        groups = self.param_groups
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(
            len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups, strict=True)
        ):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of "
                "optimizer's group"
            )
        id_map = {
            saved: param
            for s, g in zip(saved_groups, groups, strict=True)
            for saved, param in zip(s["params"], g["params"], strict=True)
        }
        state: dict[Tensor, dict[str, Any]] = {}
        for key, values in state_dict["state"].items():
            if key not in id_map:
                continue
            param = id_map[key]
            state[param] = {name: _load_value(param, name, v) for name, v in values.items()}
        new_groups = []
        for group, saved in zip(groups, saved_groups, strict=True):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            for name, default in self.defaults.items():  # as torch's __setstate__
                saved.setdefault(name, default)
            new_groups.append(saved)
        self.state = state
        self.param_groups = new_groups

    def _state(self, param: Tensor) -> dict[str, Any]:
        return self.state.setdefault(param, {})

    def _run_closure(self, closure: Any) -> Any:
        return None if closure is None else closure()


def _typename(value: Any) -> str:
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _load_value(param: Tensor, key: str, value: Any) -> Any:
    """A copy of a state value; arrays (and tensors) as numpy, cast to ``param``'s floating
    dtype except ``step``, which keeps its own (torch's float32 0-d tensor)."""
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    array = np.array(value, copy=True)
    if key != "step" and param.dtype.kind == "f" and array.dtype.kind in "fc":
        array = array.astype(param.dtype, copy=False)
    return array


def _check_lr(lr: float) -> None:
    if not lr >= 0.0:
        raise ValueError(f"Invalid learning rate: {lr}")


def _grads(group: dict[str, Any]) -> list[tuple[Tensor, np.ndarray]]:
    """The group's parameters that have a gradient, with the gradient's array."""
    return [(p, p.grad.data) for p in group["params"] if p.grad is not None]


def _check_on_cpu(param_groups: list[dict[str, Any]]) -> None:
    """torch's error for an op without a CUDA kernel if a parameter lives on CUDA, raised before
    any parameter changes."""
    for group in param_groups:
        for param in group["params"]:
            if param.device.type == "cuda":
                raise NotImplementedError(
                    "Could not run 'optimizer.step' with arguments from the 'CUDA' backend: "
                    "numbanorm's optimizers update CPU parameters only. Move the model to the "
                    "CPU first (Module.cpu())."
                )


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov, weight decay
    (torch.optim.SGD)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def step(self, closure: Any = None) -> Any:
        """One SGD step on every parameter with a gradient (torch's ``_single_tensor_sgd``)."""
        _check_on_cpu(self.param_groups)
        loss = self._run_closure(closure)
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            dampening, weight_decay = group["dampening"], group["weight_decay"]
            for param, grad in _grads(group):
                data = param.data
                if group["maximize"]:
                    grad = -grad
                if weight_decay != 0:
                    grad = grad + weight_decay * data
                if momentum != 0:
                    state = self._state(param)
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = np.array(grad, copy=True)
                        state["momentum_buffer"] = buf
                    else:
                        buf *= momentum
                        buf += (1 - dampening) * grad
                    grad = grad + momentum * buf if group["nesterov"] else buf
                data -= lr * grad
        return loss


class Adam(Optimizer):
    """Adam, with AMSGrad and L2 or decoupled weight decay (torch.optim.Adam)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        _check_lr(lr)
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not (isinstance(betas[0], float) and isinstance(betas[1], float)):
            raise ValueError("betas must be either both floats or both Tensors")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def step(self, closure: Any = None) -> Any:
        """One Adam step on every parameter with a gradient (torch's ``_single_tensor_adam``)."""
        _check_on_cpu(self.param_groups)
        loss = self._run_closure(closure)
        for group in self.param_groups:
            lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for param, grad in _grads(group):
                data = param.data
                state = self._state(param)
                if len(state) == 0:
                    state["step"] = np.array(0.0, np.float32)
                    state["exp_avg"] = np.zeros_like(data)
                    state["exp_avg_sq"] = np.zeros_like(data)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = np.zeros_like(data)
                if group["maximize"]:
                    grad = -grad
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                step_t = state["step"]
                if isinstance(step_t, np.ndarray):
                    step_t += 1
                    step = float(step_t)
                else:  # a Python number from a hand-made state dict
                    step = float(step_t) + 1
                    state["step"] = np.array(step, np.float32)
                if weight_decay != 0:
                    if group["decoupled_weight_decay"]:
                        data *= 1 - lr * weight_decay
                    else:
                        grad = grad + weight_decay * data
                _lerp_(exp_avg, grad, 1 - beta1)
                exp_avg_sq *= beta2
                exp_avg_sq += (1 - beta2) * (grad * grad)
                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                step_size = lr / bias_correction1
                bias_correction2_sqrt = bias_correction2**0.5
                if group["amsgrad"]:
                    max_sq = state["max_exp_avg_sq"]
                    np.maximum(max_sq, exp_avg_sq, out=max_sq)
                    denom = np.sqrt(max_sq) / bias_correction2_sqrt + eps
                else:
                    denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
                data += -step_size * (exp_avg / denom)
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay, 1e-2 by default (torch.optim.AdamW)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # as torch's AdamW.__setstate__
            group["decoupled_weight_decay"] = True


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """``start.lerp_(end, weight)`` with torch's two-sided formula."""
    diff = end - start
    if abs(weight) < 0.5:
        start += weight * diff
    else:
        start[...] = end - diff * (1 - weight)
