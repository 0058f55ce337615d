"""The cases numbanorm's benchmarks time: each norm at the shape users meet, on either library.

A norm is a ``Norm``: the module built the same way in numbanorm and torch (``make(nn, dtype)``),
the input shape users meet, and the memory layouts that matter for it. ``Case`` holds one
parameter set's inputs and modules and runs the three phases:

- ``train_forward``: ``y = m(x)`` in training mode with ``x.requires_grad`` (batch statistics,
  running-stat update where the norm has one, autograd record), as in a training step;
- ``eval_forward``: ``y = m(x)`` in eval mode under ``no_grad`` (inference; running statistics
  set to the input's own, where the norm tracks them);
- ``forward_backward``: ``y = m(x); y.backward(g)`` with the gradients reset to None first
  (``zero_grad(set_to_none=True)``, torch's default), so every call writes fresh ``.grad``.

The asv suite (``benchmarks/``) and ``python -m numbanorm bench`` both run these cases. Threads:
``NUMBANORM_BENCH_THREADS`` (default 2) for each library. ``NUMBANORM_BENCH_SHAPES=small`` runs
every case on a small float32 input instead, ``NUMBANORM_BENCH_SHAPES=large`` on an input of
100 MB or more in float32 (where a forward must run at the memory's speed).
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

LIBRARIES = ["numbanorm", "torch"]
DEVICES = ["cpu", "cuda"]

THREADS = int(os.environ.get("NUMBANORM_BENCH_THREADS", "2"))
if THREADS < 1:
    raise ValueError(f"NUMBANORM_BENCH_THREADS must be >= 1, got {THREADS}")

# "small" runs every benchmark on a small float32 input: CI's quick run checks that the whole
# suite runs, in minutes, without measuring anything worth keeping. "large" runs every one on an
# input of 100 MB or more (in float32): far beyond the caches, where only memory speed counts.
SHAPES = os.environ.get("NUMBANORM_BENCH_SHAPES", "full")
if SHAPES not in ("full", "small", "large"):
    raise ValueError(f"NUMBANORM_BENCH_SHAPES must be 'full', 'small' or 'large', got {SHAPES!r}")
DTYPES = ["float32"] if SHAPES == "small" else ["float32", "float64"]

# numba sizes its thread pool from NUMBA_NUM_THREADS when it is first imported, and
# numba.set_num_threads cannot go above it. asv's setup functions and the bench worker import
# numba only after this module, so setting it here is in time.
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


CONTIGUOUS = "contiguous"
CHANNELS_LAST = "channels_last"
CHANNEL_LAYOUTS = [CONTIGUOUS, CHANNELS_LAST]


@dataclass(frozen=True)
class Norm:
    """A norm as users meet it: ``make(nn, dtype)`` builds the module in either library."""

    name: str
    make: Callable[[Any, Any], Any]
    shape: tuple
    layouts: tuple
    small_shape: tuple
    large_shape: tuple

    @property
    def timed_shape(self) -> tuple:
        """``shape``; ``small_shape`` with ``NUMBANORM_BENCH_SHAPES=small`` (then float32 only),
        ``large_shape`` with ``large`` (see ``SHAPES``)."""
        return {"small": self.small_shape, "large": self.large_shape}.get(SHAPES, self.shape)


NORMS = {
    norm.name: norm
    for norm in (
        Norm(
            "BatchNorm2d",
            lambda nn, dtype: nn.BatchNorm2d(64, dtype=dtype),
            (32, 64, 56, 56),
            tuple(CHANNEL_LAYOUTS),
            (8, 64, 8, 8),
            (32, 64, 112, 112),
        ),
        Norm(
            "InstanceNorm2d",
            lambda nn, dtype: nn.InstanceNorm2d(64, dtype=dtype),
            (32, 64, 56, 56),
            tuple(CHANNEL_LAYOUTS),
            (8, 64, 8, 8),
            (32, 64, 112, 112),
        ),
        Norm(
            "GroupNorm",
            lambda nn, dtype: nn.GroupNorm(32, 64, dtype=dtype),
            (32, 64, 56, 56),
            tuple(CHANNEL_LAYOUTS),
            (8, 64, 8, 8),
            (32, 64, 112, 112),
        ),
        Norm(
            "LayerNorm",
            lambda nn, dtype: nn.LayerNorm(768, dtype=dtype),
            (8192, 768),
            (CONTIGUOUS,),
            (64, 768),
            (32768, 768),
        ),
        Norm(
            "RMSNorm",
            lambda nn, dtype: nn.RMSNorm(768, dtype=dtype),
            (8192, 768),
            (CONTIGUOUS,),
            (64, 768),
            (32768, 768),
        ),
        Norm(
            "LocalResponseNorm",
            lambda nn, dtype: nn.LocalResponseNorm(5),
            (16, 64, 28, 28),
            tuple(CHANNEL_LAYOUTS),
            (4, 64, 8, 8),
            (32, 64, 112, 112),
        ),
    )
}

PHASES = ["train_forward", "eval_forward", "forward_backward"]


def _reduced_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    axes = (0, *range(2, x.ndim))
    return x.mean(axis=axes), x.var(axis=axes)


class Case:
    """Inputs, modules and compiled kernels for one (library, norm, shape, dtype, layout).

    ``minimal``: one input that needs a gradient, and nothing else (for the memory benchmarks).
    """

    def __init__(self, library, norm, shape, dtype, layout, device="cpu", minimal=False):
        require_device(library, device)
        self.lib = lib = import_library(library)
        self.library = library
        self.is_torch = library == "torch"
        self.device = device
        x = random_array(shape, dtype, layout, seed=0)
        self.x = self._tensor(x, requires_grad=True)
        self.x_eval = self.x if minimal else self._tensor(x)
        self.g = None if minimal else self._tensor(random_array(shape, dtype, layout, seed=1))
        for t in (self.x, self.x_eval, self.g):
            if t is not None:
                check_layout(t.detach().cpu().numpy(), layout)
        lib_dtype = getattr(lib, dtype) if self.is_torch else dtype
        self.m_train = norm.make(lib.nn, lib_dtype).to(device)
        self.m_eval = norm.make(lib.nn, lib_dtype)
        if getattr(self.m_eval, "running_mean", None) is not None:
            mean, var = _reduced_stats(x)
            self._assign(self.m_eval.running_mean, mean)
            self._assign(self.m_eval.running_var, var)
        self.m_eval.to(device).eval()
        self.parameters = list(self.m_train.parameters())

    def _tensor(self, array, requires_grad=False):
        if self.is_torch:
            # from_numpy keeps the strides: a channels-last array is a channels_last tensor, and
            # .to(device) keeps them too.
            tensor = self.lib.from_numpy(array.copy(order="K")).to(self.device)
            return tensor.requires_grad_(requires_grad)
        return self.lib.tensor(array, requires_grad=requires_grad, device=self.device)

    def _assign(self, buffer, values):
        if self.is_torch:
            with self.lib.no_grad():
                buffer.copy_(self.lib.from_numpy(values))
        else:
            buffer.data[...] = values

    def train_forward(self):
        y = self.m_train(self.x)
        synchronize(self.library, self.device)
        return y

    def eval_forward(self):
        with self.lib.no_grad():
            y = self.m_eval(self.x_eval)
        synchronize(self.library, self.device)
        return y

    def forward_backward(self):
        self.x.grad = None
        for p in self.parameters:
            p.grad = None
        self.m_train(self.x).backward(self.g)
        synchronize(self.library, self.device)

    def warm_up(self):
        """numba compiles (or loads from its disk cache) each kernel on its first call; torch and
        the allocators get their first-call costs out of the way too."""
        for _ in range(2):
            for phase in PHASES:
                getattr(self, phase)()


_CASES = {}


def cached_case(*params):
    """The warmed-up ``Case`` of ``params``, built once per benchmark process: asv re-runs
    ``setup`` before every sample, and rebuilding 25-50 MB inputs each time would only slow the
    suite down."""
    if params not in _CASES:
        case = Case(*params)
        case.warm_up()
        _CASES[params] = case
    return _CASES[params]


def clear_cases():
    _CASES.clear()
