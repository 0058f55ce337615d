"""Nothing in the demo's training path imports torch: the demo runs, in a fresh interpreter, with
every ``import torch`` refused, and no module tried to import it."""

import subprocess
import sys
from pathlib import Path

from tests.demo.conftest import final_accuracy

ROOT = Path(__file__).resolve().parents[2]

# Refuses torch as an uninstalled package would be refused, records who asked, runs the command,
# and reports the attempts and whether torch reached sys.modules.
WITHOUT_TORCH = """
import sys

attempts = []


class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoTorch())
from numbanorm.__main__ import main

status = main(sys.argv[1:])
print(f"torch import attempts: {attempts}", file=sys.stderr)
print(f"torch in sys.modules: {'torch' in sys.modules}", file=sys.stderr)
sys.exit(status)
"""


def run_without_torch(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, "demo", "--no-progress", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_trains_with_torch_unimportable(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    result = run_without_torch("--model", "mlp", "--epochs", "2", "--save", str(checkpoint))
    assert result.returncode == 0, result.stderr
    assert final_accuracy(result.stdout) >= 90.0
    assert "torch import attempts: []" in result.stderr
    assert "torch in sys.modules: False" in result.stderr
    result = run_without_torch("--load", str(checkpoint), "--epochs", "3")
    assert result.returncode == 0, result.stderr
    assert "torch import attempts: []" in result.stderr


def test_cnn_trains_with_torch_unimportable():
    result = run_without_torch("--epochs", "1")
    assert result.returncode == 0, result.stderr
    assert ": cnn on digits" in result.stdout
    final_accuracy(result.stdout)
    assert "torch import attempts: []" in result.stderr
    assert "torch in sys.modules: False" in result.stderr


def test_compare_torch_says_torch_is_missing():
    result = run_without_torch("--model", "mlp", "--compare-torch")
    assert result.returncode == 2
    assert result.stdout == ""
    assert (
        "python -m numbanorm demo: error: --compare-torch trains the same model in torch, "
        "which is not installed here (pip install torch); numbanorm itself needs no torch"
    ) in result.stderr
    assert "torch in sys.modules: False" in result.stderr
