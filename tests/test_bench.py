"""``python -m numbanorm bench``: the table of numbanorm against torch, and without torch."""

import argparse
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICK = [
    "--shapes",
    "small",
    "--samples",
    "2",
    "--budget",
    "1",
    "--max-foreign",
    "1",
    "--batch-seconds",
    "0.02",
]


def bench(*options, env=None):
    return subprocess.run(
        [sys.executable, "-m", "numbanorm", "bench", *QUICK, *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def rows(stdout, phase):
    return [line.split() for line in stdout.splitlines() if f" {phase} " in line]


def test_table_against_torch():
    pytest.importorskip("torch")
    result = bench("--norms", "LayerNorm", "GroupNorm", "--layouts", "channels_last", "contiguous")
    assert result.returncode == 0, result.stderr
    assert "torch/nb" in result.stdout
    forward = rows(result.stdout, "train_forward")
    assert [row[0] for row in forward] == ["LayerNorm", "GroupNorm", "GroupNorm"]
    assert [row[3] for row in forward] == ["contiguous", "contiguous", "channels_last"]
    # Formats only: on a shared VM a phase's first calls after a quiet wait can take a whole
    # scheduler tick, so the small shapes' figures themselves mean little.
    for row in forward + rows(result.stdout, "forward_backward"):
        assert re.fullmatch(r"\d+\.\d\dx", row[-3])
        assert re.fullmatch(r"\d+\.\d", row[-2]) and re.fullmatch(r"\d+%", row[-1])
    assert len(rows(result.stdout, "copy")) == 3
    assert "geometric mean of torch/numbanorm over 9 cases" in result.stdout


def test_table_without_torch(tmp_path):
    (tmp_path / "torch.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
    )
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    result = bench("--norms", "RMSNorm", env={"PYTHONPATH": path})
    assert result.returncode == 0, result.stderr
    assert "torch: skipped" in result.stderr
    assert "torch" not in result.stdout.splitlines()[1]
    assert "geometric mean" not in result.stdout
    eval_row = rows(result.stdout, "eval_forward")[0]
    assert eval_row[:3] == ["RMSNorm", "eval_forward", "float32"]
    assert eval_row[-1].endswith("%")


def test_large_shapes_hold_100_mb_or_more_in_float32():
    """``--shapes large`` (``NUMBANORM_BENCH_SHAPES=large``): every norm's input is past 100 MB."""
    code = (
        "from math import prod; from numbanorm.bench.cases import NORMS; "
        "print(min(prod(n.timed_shape) * 4 for n in NORMS.values()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "NUMBANORM_BENCH_SHAPES": "large"},
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 100_000_000


def test_large_table():
    result = bench("--norms", "RMSNorm", "--dtypes", "float32", "--shapes", "large")
    assert result.returncode == 0, result.stderr
    assert "large shapes" in result.stdout.splitlines()[0]
    assert rows(result.stdout, "eval_forward")[0][-1].endswith("%")


def test_unknown_norm_is_a_usage_error():
    result = bench("--norms", "BatchNorm5d")
    assert result.returncode != 0
    assert "unknown norm 'BatchNorm5d'" in result.stderr


def test_plot_of_the_raw_samples(tmp_path):
    from benchmarks.plot import plot, ratios

    raw = {
        "numbanorm|LayerNorm|train_forward|float32|contiguous": {"kept": [1.0, 3.0], "noisy": []},
        "torch|LayerNorm|train_forward|float32|contiguous": {"kept": [], "noisy": [4.0]},
        "numbanorm|LayerNorm|copy|float32|contiguous": {"kept": [0.5], "noisy": []},
    }
    assert ratios(raw) == {"LayerNorm float32 contiguous": {"train_forward": 2.0}}
    plot(raw, str(tmp_path / "ratios.png"))
    assert (tmp_path / "ratios.png").stat().st_size > 1000


def test_bandwidth_yardsticks():
    """The copy, ``2*a`` and ``a + b`` kernels the benchmarks measure memory speed with, on
    enough elements to run on numba's thread pool."""
    from numbanorm.bench.copy_kernel import parallel_add, parallel_copy, parallel_scale

    a = np.arange(100_000, dtype=np.float32)
    b = np.full_like(a, 0.5)
    out = np.empty_like(a)
    parallel_copy(a, out)
    np.testing.assert_array_equal(out, a)
    parallel_scale(a, out)
    np.testing.assert_array_equal(out, 2 * a)
    parallel_add(a, b, out)
    np.testing.assert_array_equal(out, a + b)


def test_worker_times_one_batch_a_line():
    """The worker answers each request with one batch of the phase asked for, so the two
    libraries' workers can take turns batch by batch; a case it cannot run ends it with the
    error on stderr."""
    timing = '{"batch_seconds": 0, "max_foreign": 1}'
    worker = subprocess.Popen(
        [sys.executable, "-m", "numbanorm.bench.worker", "numbanorm", timing],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NUMBANORM_BENCH_SHAPES": "small"},
    )
    assert worker.stdout.readline() == "ready\n"
    for layout in ("contiguous", "channels_last"):
        for phase in ("train_forward", "eval_forward", "forward_backward", "copy"):
            worker.stdin.write(f'["GroupNorm", "float32", "{layout}", "{phase}", 1]\n')
            worker.stdin.flush()
            answer = json.loads(worker.stdout.readline())
            assert sorted(answer) == ["kept", "noisy"]
            # One batch of 3 calls: kept, or noisy if other processes were busy meanwhile.
            assert len(answer["kept"]) in (0, 3) and len(answer["kept"] + answer["noisy"]) == 3
    worker.stdin.write('["BatchNorm5d", "float32", "contiguous", "train_forward", 1]\n')
    worker.stdin.flush()
    assert worker.stdout.readline() == ""
    assert worker.wait(timeout=60) == 1
    assert "KeyError: 'BatchNorm5d'" in worker.stderr.read()


def test_libraries_take_turns_batch_by_batch(monkeypatch, tmp_path):
    """Each phase alternates one batch of numbanorm, one of torch, until both have their
    samples: the two sides of a ratio are measured in the same seconds."""
    pytest.importorskip("torch")
    from numbanorm import bench as runner

    order = []
    batch = runner._Worker.batch

    def recorded(worker, case, phase, seconds):
        order.append((worker.library, phase))
        return batch(worker, case, phase, seconds)

    monkeypatch.setattr(runner._Worker, "batch", recorded)
    monkeypatch.setenv("NUMBANORM_BENCH_SHAPES", "small")
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    raw_file = tmp_path / "raw.json"
    # Batches of 3 calls: two turns each to reach 6 samples.
    options = [
        *QUICK,
        "--batch-seconds",
        "0",
        "--samples",
        "6",
        "--budget",
        "60",
        "--norms",
        "RMSNorm",
    ]
    assert runner.run(parser.parse_args([*options, "--json", str(raw_file)]), io.StringIO()) == 0
    raw = json.loads(raw_file.read_text())
    turns = [("numbanorm", "train_forward"), ("torch", "train_forward")] * 2
    assert order[:4] == turns
    assert order[-2:] == [("numbanorm", "copy")] * 2
    phases = ("train_forward", "eval_forward", "forward_backward")
    key = "{}|RMSNorm|{}|float32|contiguous"
    assert sorted(raw) == sorted(
        [key.format(library, phase) for library in ("numbanorm", "torch") for phase in phases]
        + [key.format("numbanorm", "copy")]
    )
    assert all(len(entry["kept"]) >= 6 for entry in raw.values())
    # A batch whose seconds were busy is kept as noisy and both take another turn: the two
    # libraries always have as many batches (of 3 calls) of a phase.
    for phase in phases:
        ours, theirs = raw[key.format("numbanorm", phase)], raw[key.format("torch", phase)]
        assert len(ours["kept"] + ours["noisy"]) == len(theirs["kept"] + theirs["noisy"])
