"""Every norm module and functional form on CUDA, against the same computation on the CPU (always)
and against torch 2.13 on the CPU (where torch is installed).

A case is written once against the API the runs share (``run.nn``, ``run.F``, ``run.tensor``)
and returns tensors: outputs, gradients of the input, weight and bias, and buffers after each
step. On CUDA every one of them must be on the device, running statistics updated in place, and
channels-last inputs give channels-last outputs as on the CPU. Inputs are tiny: numba's simulator
runs each GPU thread in Python.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import numbanorm as nb
from numbanorm.dispatch import device_of
from tests.oracle import channels_last, deterministic
from tests.tolerances import assert_close

TORCH_AVAILABLE = importlib.util.find_spec("torch") is not None


class Run:
    """One library on one device: numbanorm on ``cuda`` or ``cpu``, or torch on the CPU."""

    def __init__(self, library: str, device: str):
        self.library = library
        self.device = device
        if library == "torch":
            import torch

            torch.set_num_threads(1)  # tiny inputs
            self.torch = torch
            self.nn = torch.nn
        else:
            self.nn = nb.nn
        self.F = self.nn.functional

    def tensor(self, array: np.ndarray, requires_grad: bool = False) -> Any:
        """A tensor with ``array``'s values, dtype and memory layout, on this run's device."""
        array = np.array(array, copy=True, order="K")
        if self.library == "torch":
            return self.torch.from_numpy(array).requires_grad_(requires_grad)
        return nb.tensor(array, device=self.device, requires_grad=requires_grad)

    def dtype(self, name: str) -> Any:
        return getattr(self.torch, name) if self.library == "torch" else name

    @staticmethod
    def channels_innermost(t: nb.Tensor) -> bool:
        """Whether ``t``'s channels (dimension 1) are adjacent in memory (channels-last)."""
        return t.data.strides[1] == t.dtype.itemsize

    def in_place(self, t: Any, array: Any) -> bool:
        """Whether ``t`` still holds ``array`` (None: it had none yet; torch's buffers are always
        updated in place)."""
        return self.library == "torch" or array is None or t.data is array

    def arrays(self, module: Any) -> dict:
        """The arrays of ``module``'s initialized buffers."""
        lazy = self.nn.parameter.is_lazy
        return {name: b.data for name, b in module.named_buffers() if not lazy(b)}


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, (bool, np.bool_)):
        return np.array(value)
    return np.array(value.detach().cpu().numpy(), copy=True)


def check(case: Callable[[Run], dict]) -> None:
    """``case`` on CUDA, with every tensor on the device, equal to the CPU run and to torch
    (memory layouts, ``layout:`` keys, are numbanorm's own: compared with the CPU run only)."""
    on_cuda = case(Run("numbanorm", "cuda"))
    for key, value in on_cuda.items():
        if isinstance(value, nb.Tensor):
            assert value.device == "cuda:0" and device_of(value.data) == "cuda", key
    expected = [case(Run("numbanorm", "cpu"))]
    if TORCH_AVAILABLE:
        expected.append(case(Run("torch", "cpu")))
    for reference in expected:
        keys = [key for key in on_cuda if reference is expected[0] or not key.startswith("layout")]
        assert sorted(reference) == sorted(keys)
        for key in keys:
            assert_close(_to_numpy(on_cuda[key]), _to_numpy(reference[key]), err_msg=key)


def _input(run: Run, shape: tuple, dtype: str, layout: str, seed: int) -> Any:
    array = (deterministic(shape, seed) * (seed + 1) + 2.0 * seed).astype(dtype)
    return run.tensor(channels_last(array) if layout == "channels_last" else array, True)


def module_case(
    make: Callable, shape: tuple, dtype: str, layout: str = "contiguous", steps: int = 2
) -> Callable[[Run], dict]:
    """A training step, then (``steps=2``) an evaluation step, of the module ``make(run)``, each
    with a backward pass: outputs, gradients and buffers after each."""

    def case(run: Run) -> dict:
        module = make(run)
        buffers = run.arrays(module)
        out = {}
        for step in range(steps):
            module.train(step == 0)
            x = _input(run, shape, dtype, layout, step)
            y = module(x)
            y.backward(run.tensor(deterministic(y.shape, 100 + step, dtype)))
            out[f"y{step}"] = y
            out[f"dx{step}"] = x.grad
            if layout == "channels_last" and run.library == "numbanorm":
                out[f"layout: y{step} channels-last"] = run.channels_innermost(y)
                out[f"layout: dx{step} channels-last"] = run.channels_innermost(x.grad)
            for name, param in module.named_parameters():
                out[f"d{name}{step}"] = param.grad
            for name, buffer in module.named_buffers():
                out[f"{name}{step}"] = buffer
                out[f"{name}{step}_in_place"] = run.in_place(buffer, buffers.get(name))
            buffers = run.arrays(module)
            module.zero_grad()
        return out

    return case


MODULES = {
    "BatchNorm1d-2d-float32": module_case(
        lambda run: run.nn.BatchNorm1d(3, device=run.device), (4, 3), "float32"
    ),
    "BatchNorm1d-3d-float64-no-affine": module_case(
        lambda run: run.nn.BatchNorm1d(
            3, affine=False, device=run.device, dtype=run.dtype("float64")
        ),
        (2, 3, 2),
        "float64",
    ),
    "BatchNorm2d-float32": module_case(
        lambda run: run.nn.BatchNorm2d(3).to(run.device), (2, 3, 2, 2), "float32"
    ),
    "BatchNorm2d-float32-channels-last": module_case(
        lambda run: run.nn.BatchNorm2d(3, device=run.device),
        (2, 3, 2, 2),
        "float32",
        "channels_last",
    ),
    "BatchNorm2d-float16-channels-last": module_case(
        lambda run: run.nn.BatchNorm2d(3, device=run.device).half(),
        (2, 3, 1, 2),
        "float16",
        "channels_last",
    ),
    "BatchNorm2d-float16-input-float32-parameters": module_case(
        lambda run: run.nn.BatchNorm2d(3, device=run.device), (2, 3, 1, 2), "float16"
    ),
    "BatchNorm3d-float64-cumulative": module_case(
        lambda run: run.nn.BatchNorm3d(2, momentum=None, device=run.device).double(),
        (2, 2, 1, 1, 2),
        "float64",
    ),
    "LazyBatchNorm2d-float32": module_case(
        lambda run: run.nn.LazyBatchNorm2d(device=run.device), (2, 2, 1, 2), "float32"
    ),
    "InstanceNorm1d-float32-tracked": module_case(
        lambda run: run.nn.InstanceNorm1d(
            2, affine=True, track_running_stats=True, device=run.device
        ),
        (2, 2, 3),
        "float32",
    ),
    "InstanceNorm1d-unbatched": module_case(
        lambda run: run.nn.InstanceNorm1d(2, device=run.device), (2, 3), "float32", steps=1
    ),
    "InstanceNorm2d-float64-channels-last": module_case(
        lambda run: run.nn.InstanceNorm2d(
            2,
            affine=True,
            track_running_stats=True,
            device=run.device,
            dtype=run.dtype("float64"),
        ),
        (2, 2, 1, 2),
        "float64",
        "channels_last",
    ),
    "InstanceNorm3d-float16": module_case(
        lambda run: run.nn.InstanceNorm3d(2, affine=True, device=run.device).half(),
        (1, 2, 1, 1, 3),
        "float16",
        steps=1,
    ),
    "LazyInstanceNorm1d-float32": module_case(
        lambda run: run.nn.LazyInstanceNorm1d(device=run.device), (1, 2, 3), "float32"
    ),
    "GroupNorm-float32": module_case(
        lambda run: run.nn.GroupNorm(2, 4, device=run.device), (1, 4, 2), "float32", steps=1
    ),
    "GroupNorm-float32-channels-last": module_case(
        lambda run: run.nn.GroupNorm(2, 4, device=run.device),
        (1, 4, 1, 2),
        "float32",
        "channels_last",
        steps=1,
    ),
    "GroupNorm-float64": module_case(
        lambda run: run.nn.GroupNorm(1, 2, device=run.device).double(),
        (2, 2, 2),
        "float64",
        steps=1,
    ),
    "GroupNorm-float16-input-float32-parameters": module_case(
        lambda run: run.nn.GroupNorm(1, 2, device=run.device), (1, 2, 3), "float16", steps=1
    ),
    "LayerNorm-float32": module_case(
        lambda run: run.nn.LayerNorm((2, 3), device=run.device), (2, 2, 3), "float32", steps=1
    ),
    "LayerNorm-float64-no-bias": module_case(
        lambda run: run.nn.LayerNorm(3, bias=False, device=run.device, dtype=run.dtype("float64")),
        (2, 3),
        "float64",
        steps=1,
    ),
    "LayerNorm-float16": module_case(
        lambda run: run.nn.LayerNorm(3, device=run.device).half(), (2, 3), "float16", steps=1
    ),
    "RMSNorm-float32": module_case(
        lambda run: run.nn.RMSNorm(3, device=run.device), (2, 3), "float32", steps=1
    ),
    "RMSNorm-float64": module_case(
        lambda run: run.nn.RMSNorm((2, 2), eps=1e-3, device=run.device).double(),
        (1, 2, 2),
        "float64",
        steps=1,
    ),
    "RMSNorm-float16": module_case(
        lambda run: run.nn.RMSNorm(3, device=run.device).half(), (2, 3), "float16", steps=1
    ),
    "LocalResponseNorm-float32": module_case(
        lambda run: run.nn.LocalResponseNorm(2), (2, 3, 2), "float32", steps=1
    ),
    "LocalResponseNorm-float32-channels-last": module_case(
        lambda run: run.nn.LocalResponseNorm(3, k=2.0),
        (1, 3, 2, 2),
        "float32",
        "channels_last",
        steps=1,
    ),
    "LocalResponseNorm-float64": module_case(
        lambda run: run.nn.LocalResponseNorm(2, beta=0.5), (1, 4, 2), "float64", steps=1
    ),
    "LocalResponseNorm-float16": module_case(
        lambda run: run.nn.LocalResponseNorm(2), (1, 3, 2), "float16", steps=1
    ),
}


@pytest.mark.parametrize("name", MODULES)
def test_module_on_cuda(name):
    check(MODULES[name])


def _parameters(run: Run, shape: tuple, dtype: str, seed: int) -> tuple:
    """A weight and a bias of ``shape`` that require gradients."""
    return tuple(
        run.tensor(deterministic(shape, seed + k, dtype, low=0.5, high=1.5), True) for k in range(2)
    )


def functional_case(call: Callable, shape: tuple, dtype: str, parameters: tuple | None):
    """``call(run, x, weight, bias)`` with a backward pass: output, gradients, running stats."""

    def case(run: Run) -> dict:
        x = _input(run, shape, dtype, "contiguous", 3)
        weight, bias = (
            (None, None) if parameters is None else _parameters(run, parameters, dtype, 7)
        )
        stats = [run.tensor(deterministic((shape[1],), 9, dtype, low=0.5, high=1.5)) for _ in "mv"]
        y = call(run, x, weight, bias, *stats)
        y.backward(run.tensor(deterministic(y.shape, 11, dtype)))
        out = {"y": y, "dx": x.grad, "running_mean": stats[0], "running_var": stats[1]}
        for name, param in (("dweight", weight), ("dbias", bias)):
            if param is not None and param.grad is not None:
                out[name] = param.grad
        return out

    return case


FUNCTIONAL = {
    "batch_norm-training": functional_case(
        lambda run, x, w, b, m, v: run.F.batch_norm(x, m, v, w, b, training=True, momentum=0.3),
        (3, 2, 2),
        "float32",
        (2,),
    ),
    "batch_norm-evaluation": functional_case(
        lambda run, x, w, b, m, v: run.F.batch_norm(x, m, v, w, b), (2, 3), "float64", (3,)
    ),
    "instance_norm": functional_case(
        lambda run, x, w, b, m, v: run.F.instance_norm(x, m, v, w, b, momentum=0.2),
        (2, 2, 3),
        "float32",
        (2,),
    ),
    "instance_norm-running-stats": functional_case(
        lambda run, x, w, b, m, v: run.F.instance_norm(x, m, v, use_input_stats=False),
        (1, 2, 3),
        "float64",
        None,
    ),
    "layer_norm": functional_case(
        lambda run, x, w, b, m, v: run.F.layer_norm(x, (3,), w, b, eps=1e-3),
        (1, 2, 3),
        "float32",
        (3,),
    ),
    "group_norm": functional_case(
        lambda run, x, w, b, m, v: run.F.group_norm(x, 2, w, b), (1, 2, 3), "float64", (2,)
    ),
    "rms_norm": functional_case(
        lambda run, x, w, b, m, v: run.F.rms_norm(x, (3,), w), (2, 3), "float32", (3,)
    ),
    "local_response_norm": functional_case(
        lambda run, x, w, b, m, v: run.F.local_response_norm(x, 3, alpha=0.1),
        (1, 3, 2),
        "float32",
        None,
    ),
}


@pytest.mark.parametrize("name", FUNCTIONAL)
def test_functional_form_on_cuda(name):
    check(FUNCTIONAL[name])
