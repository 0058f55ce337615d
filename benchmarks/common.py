"""Host memory of the benchmark process (Linux ``/proc``), for the ``peakmem``/``track``
benchmarks."""


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
