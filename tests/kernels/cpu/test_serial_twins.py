"""Each BatchNorm CPU kernel's serial twin (run on small inputs) computes what the parallel kernel
does. The other kernel families test their twins beside their kernels."""

import numpy as np
import pytest

from numbanorm.kernels import cpu
from tests.oracle import deterministic
from tests.tolerances import assert_close

SHAPE_NCS = (5, 3, 40)


def _arguments(name, dtype):
    layout = name.rsplit("_", 1)[1]
    n, c, s = SHAPE_NCS
    shape = (n, c, s) if layout == "ncs" else (n, s, c)
    x = deterministic(shape, 1, dtype) * 3 + 10
    weight = deterministic((c,), 2, dtype)
    bias = deterministic((c,), 3, dtype)
    mean = np.linspace(9, 11, c)
    invstd = np.linspace(0.4, 0.6, c)
    if "train" in name:
        running = (np.zeros(c, dtype), np.ones(c, dtype))
        return (x, weight, bias, 1e-5, 0.1, *running, np.empty_like(x), mean, invstd)
    if "eval" in name:
        return (x, weight, bias, mean.astype(dtype), invstd.astype(dtype), 1e-5, np.empty_like(x))
    dy = deterministic(shape, 4, dtype)
    grads = (np.empty_like(x), np.empty(c, dtype), np.empty(c, dtype))
    return (dy, x, weight, mean, invstd, True, *grads)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", [n for n in cpu.__all__ if n.startswith("batch_norm_")])
def test_serial_twin_matches_parallel_kernel(name, dtype):
    kernel = getattr(cpu, name)
    parallel_args = _arguments(name, dtype)
    serial_args = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in parallel_args)
    kernel(*parallel_args)
    kernel.serial(*serial_args)
    for got, want in zip(serial_args, parallel_args, strict=True):
        if isinstance(want, np.ndarray):
            assert_close(got, want, name)
