"""One library's side of ``python -m numbanorm bench``, in a process of its own:

    python -m numbanorm.bench.worker LIBRARY TIMING_JSON

imports ``LIBRARY`` and prints ``ready`` (or exits with status 3 when it cannot be imported:
torch is optional), then reads one request a line from stdin,
``[norm, dtype, layout, phase, seconds]`` as JSON, and answers each with one batch of that
phase's call times (``numbanorm.bench.measure.quiet_batch``, waiting at most ``seconds`` for a
quiet machine) as one line ``{"kept": [...], "noisy": [...]}`` (seconds), until stdin closes.
``phase`` is one of ``cases.PHASES`` or, for numbanorm, ``copy``: the memory-bandwidth
yardstick, a copy of the case's input on the same threads. The worker keeps the last case it
was asked for, so the batches of one case come from the same arrays. Between two requests the
process sits blocked on stdin, so the other library's worker runs on an otherwise idle machine.
"""

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

COPY = "copy"


def case_key(norm: str, phase: str, dtype: str, layout: str) -> str:
    return f"{norm}|{phase}|{dtype}|{layout}"


class _CurrentCase:
    """The calls of the case last asked for, made (and warmed up) on the first request."""

    def __init__(self, library: str):
        self.library = library
        self.key: tuple[str, str, str] | None = None
        self.calls: dict[str, Callable[[], Any]] = {}

    def call(self, name: str, dtype: str, layout: str, phase: str) -> Callable[[], Any]:
        if self.key != (name, dtype, layout):
            self.calls = {}  # the old case's arrays go before the new ones come
            self.calls = self._make(name, dtype, layout)
            self.key = (name, dtype, layout)
        return self.calls[phase]

    def _make(self, name: str, dtype: str, layout: str) -> dict[str, Callable[[], Any]]:
        from numbanorm.bench.cases import NORMS, PHASES, Case, random_array

        norm = NORMS[name]
        case = Case(self.library, norm, norm.timed_shape, dtype, layout)
        case.warm_up()
        calls = {phase: getattr(case, phase) for phase in PHASES}
        if self.library == "numbanorm":
            from numbanorm.bench.copy_kernel import parallel_copy

            # The input's memory as one run, in its own order (ravel('K') makes no copy).
            x = random_array(norm.timed_shape, dtype, layout).ravel("K")
            out = np.empty_like(x)
            calls[COPY] = lambda: parallel_copy(x, out)
        return calls


def main() -> int:
    from numbanorm.bench.cases import import_library
    from numbanorm.bench.measure import quiet_batch

    library, timing = sys.argv[1], json.loads(sys.argv[2])
    try:
        import_library(library)
    except NotImplementedError as error:  # the library is not installed
        print(error, file=sys.stderr)
        return 3
    print("ready", flush=True)
    current = _CurrentCase(library)
    for line in sys.stdin:
        name, dtype, layout, phase, seconds = json.loads(line)
        function = current.call(name, dtype, layout, phase)
        batch = quiet_batch(function, deadline=time.perf_counter() + seconds, **timing)
        print(json.dumps(batch), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
