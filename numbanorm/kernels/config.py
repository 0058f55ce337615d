"""The one JIT configuration shared by every kernel, read from the environment once.

- ``NUMBANORM_FASTMATH``: ``0`` (off), ``1`` (all LLVM fast-math flags) or a comma-separated set of
  flags. The default, ``reassoc,contract``, lets LLVM vectorize reductions and fuse multiply-adds
  while keeping NaN and infinity semantics, which torch users rely on.
- ``NUMBANORM_CACHE``: cache compiled kernels on disk (default ``1``).
- ``NUMBANORM_PARALLEL``: run CPU kernels on Numba's thread pool (default ``1``).
- ``NUMBANORM_PARALLEL_MIN_SIZE``: inputs with fewer elements run a kernel's serial twin, since
  waking the thread pool costs more than it saves on them (default ``32768``).
- ``NUMBANORM_THREADS_PER_BLOCK``: CUDA block size (default ``256``, a power of two: the block
  reductions halve it).

Numba's own ``NUMBA_NUM_THREADS`` sets the CPU thread count.
"""

import os
import types

_FASTMATH_FLAGS = frozenset({"nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc"})


def _env_flag(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name} must be 0 or 1, got {value!r}")


def _fastmath(value: str) -> bool | set[str]:
    value = value.strip().lower()
    if value in ("0", "1", "true", "false", "on", "off", "yes", "no", ""):
        return _env_flag("NUMBANORM_FASTMATH", value)
    flags = {flag.strip() for flag in value.split(",") if flag.strip()}
    unknown = flags - _FASTMATH_FLAGS
    if unknown:
        raise ValueError(f"NUMBANORM_FASTMATH: unknown flags {sorted(unknown)}")
    return flags


FASTMATH = _fastmath(os.environ.get("NUMBANORM_FASTMATH", "reassoc,contract"))
CACHE = _env_flag("NUMBANORM_CACHE", "1")
PARALLEL = _env_flag("NUMBANORM_PARALLEL", "1")
PARALLEL_MIN_SIZE = int(os.environ.get("NUMBANORM_PARALLEL_MIN_SIZE", "32768"))
THREADS_PER_BLOCK = int(os.environ.get("NUMBANORM_THREADS_PER_BLOCK", "256"))
if (
    THREADS_PER_BLOCK < 32
    or THREADS_PER_BLOCK > 1024
    or THREADS_PER_BLOCK & (THREADS_PER_BLOCK - 1)
):
    raise ValueError(
        "NUMBANORM_THREADS_PER_BLOCK must be a power of two from 32 to 1024, "
        f"got {THREADS_PER_BLOCK}"
    )


def _njit(function, parallel: bool):
    import numba

    # error_model="numpy" is not a tunable: a zero variance with eps=0 must give inf/NaN as in
    # torch, not raise ZeroDivisionError.
    return numba.njit(
        fastmath=FASTMATH, cache=CACHE, parallel=parallel, error_model="numpy", nogil=True
    )(function)


def cpu_kernel(function):
    """Compile a function that holds ``prange`` loops, lazily, with the shared CPU configuration.

    The result is the parallel kernel; ``kernel.serial`` is the same code compiled serially, under
    its own name so that the two never share an on-disk cache entry.
    """
    kernel = _njit(function, PARALLEL)
    serial = types.FunctionType(
        function.__code__, function.__globals__, function.__name__ + "_serial",
        function.__defaults__, function.__closure__,
    )  # fmt: skip
    serial.__qualname__ = function.__qualname__ + "_serial"
    serial.__module__ = function.__module__
    kernel.serial = _njit(serial, False)
    return kernel


def cpu_helper(function):
    """Compile a serial function (scalar helpers, kernels that only call other kernels)."""
    return _njit(function, False)


def _cuda_jit(function, device: bool):
    from numba import cuda

    # numba.cuda's fastmath is all or nothing (it also flushes denormals and approximates
    # division and sqrt), so CUDA kernels take it only when every flag is asked for.
    return cuda.jit(device=device, fastmath=FASTMATH is True, cache=CACHE)(function)


def cuda_kernel(function):
    """Compile a ``numba.cuda`` kernel (launched as ``kernel[blocks, THREADS_PER_BLOCK]``) lazily,
    with the shared configuration."""
    return _cuda_jit(function, device=False)


def cuda_device(function):
    """Compile a ``numba.cuda`` device function (called from kernels) with the shared
    configuration."""
    return _cuda_jit(function, device=True)
