"""One library's side of ``python -m numbanorm bench``, in a process of its own:

    python -m numbanorm.bench.worker LIBRARY TIMING_JSON

imports ``LIBRARY`` and prints ``ready`` (or exits with status 3 when it cannot be imported:
torch is optional), then reads one case a line from stdin, ``[norm, dtype, layout]`` as JSON,
and answers each with one line ``{case key: {"kept": [...], "noisy": [...]}}`` (seconds) for
its phases (and, for numbanorm, the copy yardstick), until stdin closes. Between two cases the
process sits blocked on stdin, so the other library's worker runs on an otherwise idle machine.
"""

import json
import sys
from typing import Any

import numpy as np

COPY = "copy"


def case_key(norm: str, phase: str, dtype: str, layout: str) -> str:
    return f"{norm}|{phase}|{dtype}|{layout}"


def run_case(
    library: str, timing: dict[str, Any], name: str, dtype: str, layout: str
) -> dict[str, dict[str, list[float]]]:
    """Time every phase of one case (and, for numbanorm, a copy of its input on the same
    threads: the memory-bandwidth yardstick)."""
    from numbanorm.bench.cases import NORMS, PHASES, Case, random_array
    from numbanorm.bench.measure import measure

    norm = NORMS[name]
    case = Case(library, norm, norm.timed_shape, dtype, layout)
    case.warm_up()
    results = {
        case_key(name, phase, dtype, layout): measure(getattr(case, phase), **timing)
        for phase in PHASES
    }
    del case
    if library == "numbanorm":
        from numbanorm.bench.copy_kernel import parallel_copy

        # The input's memory as one run, in its own order (ravel('K') makes no copy).
        x = random_array(norm.timed_shape, dtype, layout).ravel("K")
        out = np.empty_like(x)
        results[case_key(name, COPY, dtype, layout)] = measure(
            lambda: parallel_copy(x, out), **timing
        )
    return results


def main() -> int:
    from numbanorm.bench.cases import import_library

    library, timing = sys.argv[1], json.loads(sys.argv[2])
    try:
        import_library(library)
    except NotImplementedError as error:  # the library is not installed
        print(error, file=sys.stderr)
        return 3
    print("ready", flush=True)
    for line in sys.stdin:
        name, dtype, layout = json.loads(line)
        print(json.dumps(run_case(library, timing, name, dtype, layout)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
