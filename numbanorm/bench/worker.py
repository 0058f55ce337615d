"""One library's side of ``python -m numbanorm bench``, in a process of its own:

    python -m numbanorm.bench.worker LIBRARY SETTINGS_JSON

prints ``{case key: {"kept": [...], "noisy": [...]}}`` (seconds) as JSON on stdout, or exits
with status 3 when ``LIBRARY`` cannot be imported (torch is optional)."""

import json
import sys
from typing import Any

import numpy as np

COPY = "copy"


def case_key(norm: str, phase: str, dtype: str, layout: str) -> str:
    return f"{norm}|{phase}|{dtype}|{layout}"


def run(library: str, settings: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Time every phase of every case in ``settings["cases"]`` (and, for numbanorm, a copy of
    each input on the same threads: the memory-bandwidth yardstick)."""
    from numbanorm.bench.cases import NORMS, PHASES, Case, import_library, random_array
    from numbanorm.bench.measure import measure

    import_library(library)
    timing = {k: settings[k] for k in ("samples", "batch_seconds", "max_foreign", "budget_seconds")}
    results = {}
    if library == "numbanorm":
        from numbanorm.bench.copy_kernel import parallel_copy as copy
    else:
        copy = None
    for name, dtype, layout in settings["cases"]:
        norm = NORMS[name]
        case = Case(library, norm, norm.timed_shape, dtype, layout)
        case.warm_up()
        for phase in PHASES:
            results[case_key(name, phase, dtype, layout)] = measure(getattr(case, phase), **timing)
        del case
        if copy is not None:
            # The input's memory as one run, in its own order (ravel('K') makes no copy).
            x = random_array(norm.timed_shape, dtype, layout).ravel("K")
            out = np.empty_like(x)
            results[case_key(name, COPY, dtype, layout)] = measure(
                lambda x=x, out=out: copy(x, out), **timing
            )
    return results


def main() -> int:
    library, settings = sys.argv[1], json.loads(sys.argv[2])
    try:
        results = run(library, settings)
    except NotImplementedError as error:  # the library is not installed
        print(error, file=sys.stderr)
        return 3
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
