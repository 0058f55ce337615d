"""Median timings of the norms' cases and numbanorm/torch ratios, outside asv.

    python -m benchmarks.compare [--samples 30] [--rounds 2] [--norms BatchNorm2d LayerNorm]
        [--dtypes float32 float64] [--layouts contiguous channels_last]

Each library runs in its own process (per round), on the cases and thread count of the asv
suite (``NUMBANORM_BENCH_THREADS``, default 2). Every call is timed alone; calls are grouped in
batches of at least ``--batch-seconds``, and on Linux a batch is kept only if other processes
used at most ``--max-foreign`` of the machine's CPU time meanwhile (``/proc/stat``; each batch
waits for such a quiet moment first), so that a busy shared machine does not show up as a slow
library; past ``--budget`` seconds per case, noisy samples are used too (the table says so).
The table gives the median of the kept samples, ``torch / numbanorm`` (above 1: numbanorm is
faster) and numbanorm's eval forward over a numpy copy.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from .bench_baseline import CopyBaseline
from .common import DTYPES, THREADS, import_library
from .norms import CHANNEL_LAYOUTS, NORMS, PHASES, cached_case, clear_cases

COPIES = ["numpy_copy", "numpy_copy_alloc"]


def _machine_busy_jiffies():
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return sum(values) - values[3] - values[4]  # all but idle and iowait


def _own_jiffies():
    with open("/proc/self/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


def _foreign_fraction(busy0, own0, seconds):
    """Share of the machine's CPU time used by other processes since ``busy0``, ``own0``."""
    try:
        foreign = (_machine_busy_jiffies() - busy0) - (_own_jiffies() - own0)
    except OSError:
        return 0.0
    capacity = seconds * os.sysconf("SC_CLK_TCK") * os.cpu_count()
    return max(foreign, 0) / max(capacity, 1.0)


def _wait_until_quiet(max_foreign, deadline, window=0.25):
    """Sleep until other processes use at most ``max_foreign`` of the CPUs (or ``deadline``)."""
    while time.perf_counter() < deadline:
        try:
            busy0, own0 = _machine_busy_jiffies(), _own_jiffies()
        except OSError:
            return
        time.sleep(window)
        if _foreign_fraction(busy0, own0, window) <= max_foreign:
            return


def measure(function, samples, batch_seconds, max_foreign, budget_seconds):
    """Times of ``samples`` single calls from quiet batches (or all, past the budget)."""
    for _ in range(3):
        function()
    kept, noisy = [], []
    start = time.perf_counter()
    while len(kept) < samples:
        _wait_until_quiet(max_foreign, start + budget_seconds)
        function()  # untimed: caches and thread pools cooled down while waiting
        try:
            busy0, own0 = _machine_busy_jiffies(), _own_jiffies()
        except OSError:
            busy0 = own0 = 0
        batch = []
        batch_start = time.perf_counter()
        while len(batch) < 3 or time.perf_counter() - batch_start < batch_seconds:
            t0 = time.perf_counter()
            function()
            batch.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - batch_start
        if _foreign_fraction(busy0, own0, elapsed) <= max_foreign:
            kept.extend(batch)
        else:
            noisy.extend(batch)
        if time.perf_counter() - start > budget_seconds:
            break
    return {"kept": kept, "noisy": noisy}


def _cases(args):
    """(norm, dtype, layout) triples to run: the norm's own layouts among ``--layouts``."""
    for name in args.norms:
        norm = NORMS[name]
        for dtype in args.dtypes:
            for layout in args.layouts:
                if layout in norm.layouts:
                    yield norm, dtype, layout


def worker(args):
    import_library(args.library)
    results = {}

    def timed(key, function):
        results[key] = measure(
            function, args.samples, args.batch_seconds, args.max_foreign, args.budget
        )

    for norm, dtype, layout in _cases(args):
        case = cached_case(args.library, norm, norm.timed_shape, dtype, layout, "cpu")
        for phase in PHASES:
            timed(f"{norm.name}|{phase}|{dtype}|{layout}", getattr(case, phase))
        del case
        clear_cases()
        if args.library == "numbanorm":
            copy = CopyBaseline()
            copy.setup(norm.name, dtype, layout)
            for name in COPIES:
                timed(f"{norm.name}|{name}|{dtype}|{layout}", getattr(copy, f"time_{name}"))
    json.dump(results, sys.stdout)


def _run_worker(library, args):
    command = [sys.executable, "-m", "benchmarks.compare", "--worker", library]
    command += ["--samples", str(args.samples), "--batch-seconds", str(args.batch_seconds)]
    command += ["--max-foreign", str(args.max_foreign), "--budget", str(args.budget)]
    command += ["--norms", *args.norms, "--dtypes", *args.dtypes, "--layouts", *args.layouts]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        if "NotImplementedError" in done.stderr:
            print(f"{library}: skipped ({done.stderr.strip().splitlines()[-1]})", file=sys.stderr)
            return None
        raise RuntimeError(f"{library} worker failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30, help="kept samples per case, round")
    parser.add_argument("--rounds", type=int, default=2, help="worker processes per library")
    parser.add_argument("--batch-seconds", type=float, default=0.1)
    parser.add_argument("--max-foreign", type=float, default=0.1)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per case at most")
    parser.add_argument("--norms", nargs="+", default=list(NORMS), choices=list(NORMS))
    parser.add_argument("--dtypes", nargs="+", default=DTYPES)
    parser.add_argument("--layouts", nargs="+", default=CHANNEL_LAYOUTS)
    parser.add_argument("--json", help="also write the raw samples here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--library", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.library = args.worker
        return worker(args)

    merged = {}
    for _ in range(args.rounds):
        for library in ("numbanorm", "torch"):
            results = _run_worker(library, args)
            for key, value in (results or {}).items():
                entry = merged.setdefault(f"{library}|{key}", {"kept": [], "noisy": []})
                entry["kept"] += value["kept"]
                entry["noisy"] += value["noisy"]
    if args.json:
        with open(args.json, "w") as out:
            json.dump(merged, out)

    def median_ms(library, *key):
        entry = merged.get("|".join((library, *key)))
        if not entry:
            return None, 0, 0
        samples = entry["kept"] or entry["noisy"]
        return statistics.median(samples) * 1e3, len(entry["kept"]), len(entry["noisy"])

    print(f"threads: {THREADS} each; medians in ms (kept/noisy samples)")
    header = (
        f"{'norm':18} {'phase':17} {'dtype':8} {'layout':14} {'numbanorm':>18} {'torch':>18} "
        "torch/nb"
    )
    print(header)
    print("-" * len(header))
    for norm, dtype, layout in _cases(args):
        for phase in PHASES:
            nb_ms, nb_kept, nb_noisy = median_ms("numbanorm", norm.name, phase, dtype, layout)
            th_ms, th_kept, th_noisy = median_ms("torch", norm.name, phase, dtype, layout)
            nb_text = f"{nb_ms:8.2f} ({nb_kept}/{nb_noisy})" if nb_ms else "n/a"
            th_text = f"{th_ms:8.2f} ({th_kept}/{th_noisy})" if th_ms else "n/a"
            ratio = f"{th_ms / nb_ms:6.2f}x" if nb_ms and th_ms else "n/a"
            print(
                f"{norm.name:18} {phase:17} {dtype:8} {layout:14} {nb_text:>18} {th_text:>18} "
                f"{ratio}"
            )
        eval_ms = median_ms("numbanorm", norm.name, "eval_forward", dtype, layout)[0]
        for name in COPIES:
            copy_ms, kept, noisy = median_ms("numbanorm", norm.name, name, dtype, layout)
            if copy_ms and eval_ms:
                print(
                    f"{norm.name:18} {name:17} {dtype:8} {layout:14} {copy_ms:8.2f} "
                    f"({kept}/{noisy})   numbanorm eval / {name}: {eval_ms / copy_ms:.2f}"
                )
    return None


if __name__ == "__main__":
    main()
