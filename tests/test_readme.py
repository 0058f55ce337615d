"""The README's Python examples run as written (those that import torch, when torch is
installed)."""

import importlib.util
import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
HAS_TORCH = importlib.util.find_spec("torch") is not None
RUNNABLE = [block for block in BLOCKS if HAS_TORCH or "import torch" not in block]


def test_readme_has_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"block{i}" for i in range(len(RUNNABLE))])
def test_readme_example_runs(block):
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})
