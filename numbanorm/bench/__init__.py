"""``python -m numbanorm bench``: numbanorm against torch on the standard shapes, as a table.

Each library runs in a process of its own (``numbanorm.bench.worker``, a new pair each round)
on ``NUMBANORM_BENCH_THREADS`` threads (default 2), and the two time each phase of the cases of
``numbanorm.bench.cases`` (the asv suite's) in turns, batch by batch, until each has
``--samples`` quiet samples of it: numbanorm's and torch's samples of a phase are taken in
alternating batches of a fraction of a second, so a machine whose load drifts over a run moves
both sides of a ratio together. The table gives the median time of each phase,
``torch / numbanorm`` (above 1: numbanorm is faster) and the bandwidth numbanorm achieves
against a copy of the same input on the same threads, measured in the same run. A phase's bytes
are those it must move at the least: a forward reads its input and writes its output (2 bytes
per input byte), a backward reads the input and the output gradient and writes the input
gradient (3), so forward+backward moves 5.
Without torch installed the table has no torch column. See ``numbanorm.bench.measure`` for how
samples from a busy machine are kept out.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, TextIO

PHASE_BYTES = {"train_forward": 2, "eval_forward": 2, "forward_backward": 5}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=30, help="kept samples per case and round")
    parser.add_argument(
        "--rounds", type=int, default=1, help="passes over the cases, each with new workers"
    )
    parser.add_argument("--batch-seconds", type=float, default=0.1)
    parser.add_argument(
        "--max-foreign", type=float, default=0.1, help="busy share of the machine to allow"
    )
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds per phase of a case at most"
    )
    parser.add_argument("--norms", nargs="+", help="norms to run (default: all)")
    parser.add_argument("--dtypes", nargs="+", help="float32 and/or float64 (default: both)")
    parser.add_argument("--layouts", nargs="+", help="contiguous and/or channels_last")
    parser.add_argument(
        "--shapes",
        choices=["full", "small", "large"],
        default="full",
        help="the shapes users meet (full), small float32 inputs (a check that all runs) or "
        "inputs of 100 MB or more (large)",
    )
    parser.add_argument("--json", help="also write the raw samples (seconds) to this file")


def _cases(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    from numbanorm.bench.cases import DTYPES, NORMS

    chosen = []
    for name in args.norms or list(NORMS):
        if name not in NORMS:
            raise SystemExit(f"unknown norm {name!r}; choose from {', '.join(NORMS)}")
        for dtype in args.dtypes or DTYPES:
            for layout in NORMS[name].layouts:
                if args.layouts is None or layout in args.layouts:
                    chosen.append((name, dtype, layout))
    return chosen


class _Worker:
    """A ``numbanorm.bench.worker`` process of ``library``, timing one batch at a time."""

    def __init__(self, library: str, timing: dict[str, Any]):
        self.library = library
        # stderr to a file that lives as long as the worker: a pipe nobody reads while the
        # worker runs could fill up and block it
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115
        command = [sys.executable, "-m", "numbanorm.bench.worker", library, json.dumps(timing)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        self.available = self._process.stdout.readline() == "ready\n"
        if not self.available:
            if self.close() != 3:
                raise RuntimeError(f"the {library} worker failed:\n{self.errors}")
            print(f"{library}: skipped ({self.errors.strip()})", file=sys.stderr)

    @property
    def errors(self) -> str:
        """What the worker wrote to stderr so far."""
        self._stderr.seek(0)
        return self._stderr.read()

    def batch(self, case: tuple[str, str, str], phase: str, seconds: float) -> dict:
        """One batch of ``phase`` of ``case``, ``{"kept": [...], "noisy": [...]}``, waiting at
        most ``seconds`` for a quiet machine."""
        self._process.stdin.write(json.dumps([*case, phase, seconds]) + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the {self.library} worker failed on {case}:\n{self.errors}")
        return json.loads(answer)

    def close(self) -> int:
        """End the worker (its stdin closes) and return its exit status."""
        self._process.stdin.close()
        status = self._process.wait()
        self._process.stdout.close()
        return status


def _measure_phase(workers, case, phase, samples, budget, merged) -> None:
    """Batches of ``phase`` of ``case`` from each worker in turn, into ``merged``, until each has
    ``samples`` quiet samples or ``budget`` seconds have passed."""
    from numbanorm.bench.worker import case_key

    name, dtype, layout = case
    key = case_key(name, phase, dtype, layout)
    entries = [
        merged.setdefault(f"{worker.library}|{key}", {"kept": [], "noisy": []})
        for worker in workers
    ]
    deadline = time.perf_counter() + budget
    while True:
        for worker, entry in zip(workers, entries, strict=True):
            answer = worker.batch(case, phase, max(deadline - time.perf_counter(), 0.0))
            entry["kept"] += answer["kept"]
            entry["noisy"] += answer["noisy"]
        if time.perf_counter() > deadline or all(
            len(entry["kept"]) >= samples for entry in entries
        ):
            return


def _median(entry: dict | None) -> tuple[float | None, str]:
    """Median of the kept samples (or, if none were quiet, of the noisy ones), and a note."""
    if not entry or not (entry["kept"] or entry["noisy"]):
        return None, ""
    samples = entry["kept"] or entry["noisy"]
    return statistics.median(samples), "" if entry["kept"] else " (noisy)"


def _table(cases, merged, nbytes, out: TextIO) -> None:
    from numbanorm.bench.cases import PHASES, SHAPES, THREADS
    from numbanorm.bench.worker import COPY, case_key

    has_torch = any(key.startswith("torch|") for key in merged)
    columns = f"{'norm':18} {'phase':17} {'dtype':8} {'layout':14} {'numbanorm ms':>14}"
    columns += f" {'torch ms':>14} {'torch/nb':>9}" if has_torch else ""
    columns += f" {'GB/s':>7} {'of copy':>8}"
    print(f"{THREADS} threads each, {SHAPES} shapes; medians of the quiet samples", file=out)
    print(columns, file=out)
    print("-" * len(columns), file=out)
    ratios = []
    for name, dtype, layout in cases:
        copy, _ = _median(merged.get("numbanorm|" + case_key(name, COPY, dtype, layout)))
        size = nbytes[name, dtype]
        for phase in PHASES:
            key = case_key(name, phase, dtype, layout)
            ours, our_note = _median(merged.get("numbanorm|" + key))
            line = f"{name:18} {phase:17} {dtype:8} {layout:14} "
            line += f"{ours * 1e3:8.3f}{our_note:>6}" if ours else f"{'n/a':>14}"
            if has_torch:
                theirs, their_note = _median(merged.get("torch|" + key))
                line += f" {theirs * 1e3:8.3f}{their_note:>6}" if theirs else f" {'n/a':>14}"
                if ours and theirs:
                    ratios.append(theirs / ours)
                    line += f" {theirs / ours:8.2f}x"
                else:
                    line += f" {'n/a':>9}"
            if ours and copy:
                achieved = PHASE_BYTES[phase] * size / ours
                line += f" {achieved / 1e9:7.1f} {achieved / (2 * size / copy):8.0%}"
            print(line, file=out)
        if copy:
            print(
                f"{'':18} {'copy':17} {dtype:8} {layout:14} {copy * 1e3:8.3f}",
                end="",
                file=out,
            )
            print(f"{'':>6} {2 * size / copy / 1e9:.1f} GB/s", file=out)
    if ratios:
        geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(
            f"\ngeometric mean of torch/numbanorm over {len(ratios)} cases: {geomean:.2f}x",
            file=out,
        )


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run the benchmark workers and print the table; return the exit status."""
    os.environ["NUMBANORM_BENCH_SHAPES"] = args.shapes
    from math import prod

    import numpy as np

    from numbanorm.bench.cases import NORMS, PHASES
    from numbanorm.bench.worker import COPY

    cases = _cases(args)
    timing = {"batch_seconds": args.batch_seconds, "max_foreign": args.max_foreign}
    merged: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        workers: list[_Worker] = []
        try:
            for library in ("numbanorm", "torch"):
                workers.append(_Worker(library, timing))
            running = [worker for worker in workers if worker.available]
            ours = [worker for worker in running if worker.library == "numbanorm"]
            for case in cases:
                for phase in PHASES:
                    _measure_phase(running, case, phase, args.samples, args.budget, merged)
                _measure_phase(ours, case, COPY, args.samples, args.budget, merged)
        finally:
            for worker in workers:
                if worker.available:
                    worker.close()
    if args.json:
        with open(args.json, "w") as raw:
            json.dump(merged, raw)
    nbytes = {
        (name, dtype): prod(NORMS[name].timed_shape) * np.dtype(dtype).itemsize
        for name, dtype, _ in cases
    }
    _table(cases, merged, nbytes, out)
    return 0
