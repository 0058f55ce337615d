"""The JIT configuration (numbanorm/kernels/config.py), read from the environment once, at import:
each setting is parsed in a fresh interpreter, and the kernels stay correct with the thread pool
and fast-math turned off."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

READ_CONFIG = """
import json
from numbanorm.kernels import config
fastmath = config.FASTMATH
print(json.dumps({
    "FASTMATH": sorted(fastmath) if isinstance(fastmath, set) else fastmath,
    "CACHE": config.CACHE, "PARALLEL": config.PARALLEL,
    "PARALLEL_MIN_SIZE": config.PARALLEL_MIN_SIZE, "THREADS_PER_BLOCK": config.THREADS_PER_BLOCK,
}))
"""

DEFAULTS = {
    "FASTMATH": ["contract", "reassoc"],
    "CACHE": True,
    "PARALLEL": True,
    "PARALLEL_MIN_SIZE": 32768,
    "THREADS_PER_BLOCK": 256,
}


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter whose only NUMBANORM_* variables are ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NUMBANORM_")}
    environ |= env
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_config(**env: str) -> dict:
    result = run_python(READ_CONFIG, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("env", "changed"),
    [
        ({}, {}),
        ({"NUMBANORM_FASTMATH": "0"}, {"FASTMATH": False}),
        ({"NUMBANORM_FASTMATH": "1"}, {"FASTMATH": True}),
        ({"NUMBANORM_FASTMATH": " Off "}, {"FASTMATH": False}),
        ({"NUMBANORM_FASTMATH": "nnan, NINF,"}, {"FASTMATH": ["ninf", "nnan"]}),
        ({"NUMBANORM_FASTMATH": "afn"}, {"FASTMATH": ["afn"]}),
        ({"NUMBANORM_CACHE": "0"}, {"CACHE": False}),
        ({"NUMBANORM_CACHE": "yes"}, {}),
        ({"NUMBANORM_PARALLEL": "false"}, {"PARALLEL": False}),
        ({"NUMBANORM_PARALLEL_MIN_SIZE": "0"}, {"PARALLEL_MIN_SIZE": 0}),
        ({"NUMBANORM_THREADS_PER_BLOCK": "128"}, {"THREADS_PER_BLOCK": 128}),
    ],
    ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "defaults",
)
def test_environment_is_parsed(env, changed):
    assert read_config(**env) == DEFAULTS | changed


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NUMBANORM_FASTMATH", "fast", "NUMBANORM_FASTMATH: unknown flags ['fast']"),
        ("NUMBANORM_FASTMATH", "2", "NUMBANORM_FASTMATH: unknown flags ['2']"),
        ("NUMBANORM_CACHE", "maybe", "NUMBANORM_CACHE must be 0 or 1, got 'maybe'"),
        ("NUMBANORM_PARALLEL", "2", "NUMBANORM_PARALLEL must be 0 or 1, got '2'"),
        ("NUMBANORM_THREADS_PER_BLOCK", "lots", "invalid literal for int()"),
        (
            "NUMBANORM_THREADS_PER_BLOCK",
            "96",
            "NUMBANORM_THREADS_PER_BLOCK must be a power of two from 32 to 1024, got 96",
        ),
        (
            "NUMBANORM_THREADS_PER_BLOCK",
            "2048",
            "NUMBANORM_THREADS_PER_BLOCK must be a power of two from 32 to 1024, got 2048",
        ),
    ],
)
def test_invalid_settings_raise_at_import(name, value, message):
    result = run_python("import numbanorm.kernels.config", **{name: value})
    assert result.returncode != 0
    assert "ValueError: " + message in result.stderr, result.stderr


CHECK_KERNELS = """
import numpy as np
from numbanorm.kernels import config, cpu
from tests.kernels.cpu.test_batch_norm_kernels import (
    EPS, KERNELS, _layout_data, as_view, reference_train, run_train,
)
from tests.tolerances import assert_close

for name in cpu.__all__:
    kernel = getattr(cpu, name)
    assert kernel.targetoptions["parallel"] is config.PARALLEL, name
    assert kernel.targetoptions["fastmath"] == config.FASTMATH, name
    assert type(kernel._cache).__name__ == "NullCache", name
for layout in KERNELS:
    x3, dy3, weight, bias = _layout_data(layout, np.float64)
    got = run_train(layout, x3, weight, bias, dy3, np.zeros(weight.size), np.ones(weight.size))
    want = reference_train(x3, layout, weight, bias, dy3)
    for key in ("y", "dx"):
        assert_close(got[key], as_view(want[key], layout), key)
    for key in ("mean", "invstd", "dweight", "dbias"):
        assert_close(got[key], want[key], key)
    y = np.empty_like(x3)
    KERNELS[layout][1](x3, weight, bias, got["mean"], 1.0 / got["invstd"] ** 2 - EPS, EPS, y)
    assert_close(y, got["y"], "eval with the batch statistics")
print("ok")
"""


def test_kernels_are_correct_without_thread_pool_and_fast_math():
    """Compiled afresh (no on-disk cache) with ``NUMBANORM_PARALLEL=0`` and
    ``NUMBANORM_FASTMATH=0``, the kernels match the float64 reference. (One interpreter for both
    settings: each compiles every kernel again.)"""
    env = {"NUMBANORM_CACHE": "0", "NUMBANORM_PARALLEL": "0", "NUMBANORM_FASTMATH": "0"}
    result = run_python(CHECK_KERNELS, **env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
