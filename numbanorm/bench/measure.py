"""Timing on a shared machine: every call is timed alone, calls are grouped in batches of at
least ``batch_seconds``, and on Linux a batch is kept only if other processes used at most
``max_foreign`` of the machine's CPU time meanwhile (``/proc/stat``; each batch waits for such a
quiet moment first), so that a busy machine does not show up as a slow library. Past
``budget_seconds``, noisy samples are used too, and reported as such.
"""

import os
import time


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


def quiet_batch(function, batch_seconds, max_foreign, deadline):
    """One batch of single-call times of ``function``, after waiting (until ``deadline``, a
    ``time.perf_counter()`` value) for a quiet moment: ``{"kept": times, "noisy": []}`` if
    other processes stayed under ``max_foreign`` of the machine meanwhile, else the other way
    round."""
    _wait_until_quiet(max_foreign, deadline)
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
        return {"kept": batch, "noisy": []}
    return {"kept": [], "noisy": batch}


def measure(function, samples, batch_seconds, max_foreign, budget_seconds):
    """Times of ``samples`` single calls from quiet batches (or all, past the budget)."""
    for _ in range(3):
        function()
    kept, noisy = [], []
    deadline = time.perf_counter() + budget_seconds
    while len(kept) < samples:
        batch = quiet_batch(function, batch_seconds, max_foreign, deadline)
        kept += batch["kept"]
        noisy += batch["noisy"]
        if time.perf_counter() > deadline:
            break
    return {"kept": kept, "noisy": noisy}
