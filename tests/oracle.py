"""One scenario, two libraries: run a case on numbanorm and on torch, and compare.

A *case* is a function ``case(lib) -> dict[str, array]`` written once against the API the two
libraries share (``lib.nn``, ``lib.F``, ``lib.tensor``, ``lib.dtype``, ``lib.numpy``). An exception
is a result too: ``{"error": "ValueError: message"}``. Cases live in groups (one golden file
each). ``Cases.check(name)`` compares numbanorm's result with the committed golden file (made
from torch 2.13.0 by ``tests/make_golden.py``) always, and with torch live when torch is
installed, so the suite runs without torch and a stale golden file fails where torch is present.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import numbanorm
from tests.tolerances import assert_close

GOLDEN_DIR = Path(__file__).parent / "golden"
TORCH_AVAILABLE = importlib.util.find_spec("torch") is not None


class Lib:
    """What a case may use of a library: both have ``nn`` and ``F`` with torch's names."""

    def __init__(self, name: str):
        self.name = name
        if name == "torch":
            import torch

            # Tiny test inputs: waking torch's thread pool would cost more than it saves.
            torch.set_num_threads(1)
            self.torch = torch
            self.nn = torch.nn
            self.optim = torch.optim
        else:
            self.nn = numbanorm.nn
            self.optim = numbanorm.optim
        self.F = self.nn.functional

    def tensor(self, array: np.ndarray, requires_grad: bool = False) -> Any:
        """A tensor with ``array``'s values, dtype and memory layout (channels-last stays so)."""
        if self.name == "numbanorm":
            return numbanorm.Tensor(np.array(array, copy=True, order="K"), requires_grad)
        torch = self.torch
        result = torch.from_numpy(np.array(array, copy=True, order="K"))
        return result.requires_grad_(requires_grad)

    def dtype(self, name: str) -> Any:
        return getattr(self.torch, name) if self.name == "torch" else np.dtype(name)

    @staticmethod
    def numpy(tensor: Any) -> np.ndarray:
        return np.array(tensor.detach().cpu().numpy(), copy=True)


NUMBANORM = Lib("numbanorm")


def _torch() -> Lib | None:
    return Lib("torch") if TORCH_AVAILABLE else None


def deterministic(shape: tuple, seed: int, dtype: Any = np.float32, low=-2.0, high=2.0):
    """Values in ``[low, high)`` from a fixed integer hash: the same bits on every numpy version."""
    n = int(np.prod(shape, dtype=np.int64))
    z = np.arange(n, dtype=np.uint64) + np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    unit = (z >> np.uint64(11)).astype(np.float64) / float(2**53)
    return (low + (high - low) * unit).reshape(shape).astype(dtype)


def channels_last(array: np.ndarray) -> np.ndarray:
    """``array`` (N, C, *spatial) with channels-last memory and the same shape and values."""
    moved = np.ascontiguousarray(np.moveaxis(array, 1, -1))
    return np.moveaxis(moved, -1, 1)


def run(case: Callable[[Lib], dict], lib: Lib) -> dict[str, np.ndarray]:
    """The case's results on ``lib`` as host arrays, or its exception as ``{"error": ...}``."""
    try:
        results = case(lib)
    except Exception as error:  # a case's exception is its result
        return {"error": np.array(f"{type(error).__name__}: {error}")}
    return {key: np.asarray(value) for key, value in results.items()}


def compare(actual: dict, expected: dict, where: str) -> None:
    assert sorted(actual) == sorted(expected), (
        f"{where}: keys {sorted(actual)} != {sorted(expected)}"
    )
    for key in expected:
        if expected[key].dtype.kind in "US":
            assert str(actual[key]) == str(expected[key]), f"{where}[{key}]"
        else:
            assert_close(actual[key], expected[key], f"{where}[{key}]")


GROUPS: dict[str, Cases] = {}


class Cases:
    """A named group of cases, stored together in ``tests/golden/<group>.npz``."""

    def __init__(self, group: str):
        self.group = group
        self.cases: dict[str, Callable[[Lib], dict]] = {}
        GROUPS[group] = self

    def add(self, name: str, case: Callable[[Lib], dict]) -> None:
        assert "/" not in name and name not in self.cases, name
        self.cases[name] = case

    def names(self) -> list[str]:
        return list(self.cases)

    @property
    def golden_path(self) -> Path:
        return GOLDEN_DIR / f"{self.group}.npz"

    def golden(self, name: str) -> dict[str, np.ndarray]:
        assert self.golden_path.exists(), f"no golden file {self.golden_path}: run make_golden.py"
        with np.load(self.golden_path) as stored:
            prefix = f"{name}/"
            result = {k[len(prefix) :]: stored[k] for k in stored.files if k.startswith(prefix)}
        assert result, f"{self.group}/{name} is not in {self.golden_path}: run make_golden.py"
        return result

    def check(self, name: str) -> None:
        """numbanorm's result equals the golden one, and torch's when torch is installed."""
        case = self.cases[name]
        actual = run(case, NUMBANORM)
        compare(actual, self.golden(name), f"{self.group}/{name} vs golden")
        torch_lib = _torch()
        if torch_lib is not None:
            compare(actual, run(case, torch_lib), f"{self.group}/{name} vs torch")

    def make_golden(self) -> dict[str, np.ndarray]:
        torch_lib = _torch()
        assert torch_lib is not None, "making golden files needs torch 2.13.0"
        return {
            f"{name}/{key}": value
            for name, case in self.cases.items()
            for key, value in run(case, torch_lib).items()
        }
