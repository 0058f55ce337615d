"""Shared by the benchmark modules: thread counts, lazy imports, inputs in a given layout."""

import os

import numpy as np

LIBRARIES = ["numbanorm", "torch"]
DEVICES = ["cpu", "cuda"]

THREADS = int(os.environ.get("NUMBANORM_BENCH_THREADS", "2"))
if THREADS < 1:
    raise ValueError(f"NUMBANORM_BENCH_THREADS must be >= 1, got {THREADS}")

# "small" runs every benchmark on a small float32 input: CI's quick run checks that the whole
# suite runs, in minutes, without measuring anything worth keeping.
SHAPES = os.environ.get("NUMBANORM_BENCH_SHAPES", "full")
if SHAPES not in ("full", "small"):
    raise ValueError(f"NUMBANORM_BENCH_SHAPES must be 'full' or 'small', got {SHAPES!r}")
DTYPES = ["float32"] if SHAPES == "small" else ["float32", "float64"]

# numba sizes its thread pool from NUMBA_NUM_THREADS when it is first imported, and
# numba.set_num_threads cannot go above it. The suite imports numba only in setup (in asv's
# benchmark processes, forked after this module is imported), so setting it here is in time.
# torch reads OMP_NUM_THREADS at import; set_num_threads in setup pins it anyway.
if int(os.environ.get("NUMBA_NUM_THREADS") or 0) < THREADS:
    os.environ["NUMBA_NUM_THREADS"] = str(THREADS)
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))


def import_numbanorm():
    """numbanorm, with numba's thread pool pinned to ``THREADS`` threads."""
    import numba

    numba.set_num_threads(THREADS)
    import numbanorm

    return numbanorm


def import_torch():
    """torch on ``THREADS`` threads; ``NotImplementedError`` (asv's skip) if not installed."""
    try:
        import torch
    except ImportError as error:
        raise NotImplementedError(f"torch is not installed: {error}") from None
    torch.set_num_threads(THREADS)
    return torch


def import_library(library):
    if library == "numbanorm":
        return import_numbanorm()
    if library == "torch":
        return import_torch()
    raise ValueError(f"unknown library {library!r}")


def require_device(library, device):
    """Raise ``NotImplementedError`` (asv's skip) when ``library`` has no GPU for ``device``.

    numba.cuda and torch.cuda are asked only for the cuda cases, so CPU runs never import them.
    """
    if device == "cpu":
        return
    if library == "torch":
        available = import_torch().cuda.is_available()
    else:
        from numba import cuda

        available = cuda.is_available()
    if not available:
        raise NotImplementedError(f"{library} sees no CUDA GPU here")


def synchronize(library, device):
    """Wait for ``library``'s queued GPU work, so that a timing covers it (nothing on the CPU)."""
    if device == "cpu":
        return
    if library == "torch":
        import_torch().cuda.synchronize()
    else:
        from numba import cuda

        cuda.synchronize()


def random_array(shape, dtype, layout, seed=0):
    """A standard-normal array of ``shape`` (N, C, *spatial), stored in ``layout``.

    ``"channels_last"`` keeps the (N, C, *spatial) shape with the channel axis innermost in
    memory (torch.channels_last / channels_last_3d); ``"contiguous"`` is C-contiguous.
    """
    rng = np.random.default_rng(seed)
    if layout == "contiguous":
        return rng.standard_normal(shape, dtype=np.dtype(dtype))
    if layout == "channels_last":
        # Drawn in storage order: no temporary copy (it would count in peakmem benchmarks).
        stored = (shape[0], *shape[2:], shape[1])
        return np.moveaxis(rng.standard_normal(stored, dtype=np.dtype(dtype)), -1, 1)
    raise ValueError(f"unknown layout {layout!r}")


def is_channels_last(a):
    return np.moveaxis(a, 1, -1).flags.c_contiguous


def check_layout(a, layout):
    """Raise if the array ``a`` (numpy, or a torch tensor's numpy view) is not in ``layout``."""
    ok = a.flags.c_contiguous if layout == "contiguous" else is_channels_last(a)
    if not ok:
        raise AssertionError(f"expected a {layout} array, got strides {a.strides}")


def _proc_status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def reset_peak_rss():
    """Reset the process's peak RSS (Linux ``clear_refs``); False where that is not possible.

    After a reset, ``getrusage``'s ``ru_maxrss`` (asv's ``peakmem_*``) and ``VmHWM`` count from
    the current RSS, so the transients of ``setup`` no longer hide in the peak.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def rss_mib():
    """Current resident set size in MiB (Linux), NaN elsewhere."""
    try:
        return _proc_status_kib("VmRSS") / 1024
    except OSError:
        return float("nan")


def peak_rss_mib():
    """Peak resident set size since the last ``reset_peak_rss`` in MiB (Linux), NaN elsewhere."""
    try:
        return _proc_status_kib("VmHWM") / 1024
    except OSError:
        return float("nan")
