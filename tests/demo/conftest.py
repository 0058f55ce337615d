"""Running ``python -m numbanorm demo`` in-process, and digits files for ``--data``."""

import re

import numpy as np
import pytest

from numbanorm.__main__ import main
from numbanorm.demo.data import digits_arrays

FINAL = re.compile(r"^test accuracy: (\d{1,3}\.\d)%$")
EPOCH = re.compile(
    r"^epoch +(\d+)/(\d+)  loss (\d+\.\d{4})  test accuracy +(\d+\.\d)%  \d+\.\d\d s$"
)


def final_accuracy(stdout: str) -> float:
    """The percentage on the last line, which must read exactly ``test accuracy: NN.N%``."""
    match = FINAL.match(stdout.rstrip("\n").split("\n")[-1])
    assert match, f"last line is not 'test accuracy: NN.N%':\n{stdout}"
    return float(match.group(1))


def epoch_lines(stdout: str) -> list[str]:
    """The per-epoch lines without their times (which differ from run to run)."""
    return [line.rsplit("  ", 1)[0] for line in stdout.split("\n") if EPOCH.match(line)]


@pytest.fixture
def demo(capsys):
    """``demo(*options)`` -> (exit status, stdout, stderr) of ``python -m numbanorm demo``."""

    def run(*options: str) -> tuple[int, str, str]:
        status = main(["demo", "--no-progress", *options])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture
def digits_file(tmp_path):
    """``digits_file(name, X=..., y=...)`` writes an .npz (the digits by default); returns its
    path."""

    def write(name: str = "digits.npz", **arrays: np.ndarray) -> str:
        if not arrays:
            x, y = digits_arrays()
            arrays = {"X": x.reshape(len(x), -1), "y": y}
        path = tmp_path / name
        np.savez(path, **arrays)
        return str(path)

    return write


@pytest.fixture(autouse=True)
def default_parallel_threshold(monkeypatch):
    """The demo as users run it: tests/conftest.py sends even tiny inputs to the parallel kernels,
    which on a busy machine wait for every thread at every call; restore the default threshold."""
    from numbanorm.backends import cpu

    monkeypatch.setattr(cpu, "PARALLEL_MIN_SIZE", 32768)  # NUMBANORM_PARALLEL_MIN_SIZE's default
