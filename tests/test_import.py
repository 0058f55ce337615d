"""``import numbanorm`` imports neither torch nor numba (numba comes with the first kernel call)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "numba", "llvmlite")


def _modules_after(code: str) -> list[str]:
    """The heavy packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = (
        f"import sys, json\n{code}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_numbanorm_imports_neither_torch_nor_numba():
    code = (
        "import numbanorm, numbanorm.nn, numbanorm.nn.functional\n"
        "assert numbanorm.nn.BatchNorm2d and numbanorm.Function and numbanorm.tensor"
    )
    assert _modules_after(code) == []


def test_building_modules_and_tensors_imports_no_kernels():
    """Modules, tensors and state dicts are numpy only: numba waits for the first kernel call."""
    code = (
        "import numbanorm as nb\n"
        "m = nb.nn.BatchNorm2d(3)\n"
        "m.load_state_dict(m.state_dict())\n"
        "m.to(dtype='float64').eval()\n"
        "x = nb.tensor([[1.0, 2.0]], requires_grad=True)\n"
        "x.sum().backward()\n"
        "repr(m)"
    )
    assert _modules_after(code) == []


def test_the_check_sees_numba_once_a_kernel_runs():
    """The probe above would notice numba: a forward pass does import it."""
    code = (
        "import numpy as np, numbanorm as nb\n"
        "nb.nn.BatchNorm1d(2)(nb.tensor(np.ones((3, 2), np.float32)))"
    )
    assert "numba" in _modules_after(code)
