"""Write tests/golden/<group>.npz from torch 2.13.0 for every case group of the test suite.

Run from the repository root: ``python -m tests.make_golden [GROUP ...]`` (needs torch==2.13.0);
with group names, only those groups' files are rewritten.
"""

import importlib
import sys
from pathlib import Path

import numpy as np

from tests.oracle import GOLDEN_DIR, GROUPS

TORCH_VERSION = "2.13.0"


def main(groups: list[str]) -> int:
    import torch

    if not torch.__version__.startswith(TORCH_VERSION):
        print(f"golden files come from torch {TORCH_VERSION}, not {torch.__version__}")
        return 1
    root = Path(__file__).parent
    for path in sorted(root.rglob("test_*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        importlib.import_module(module)
    GOLDEN_DIR.mkdir(exist_ok=True)
    unknown = set(groups) - set(GROUPS)
    if unknown:
        print(f"unknown groups: {sorted(unknown)}; known: {sorted(GROUPS)}")
        return 1
    for group in sorted(groups or GROUPS):
        cases = GROUPS[group]
        arrays = cases.make_golden()
        np.savez_compressed(cases.golden_path, **arrays)
        print(f"{cases.golden_path.name}: {len(cases.names())} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
