"""The norms the suite times, and one case class that runs any of them on either library.

A norm is a ``Norm``: the module built the same way in numbanorm and torch (``make(nn, dtype)``),
the input shape users meet, and the memory layouts that matter for it. ``Case`` holds one
parameter set's inputs and modules and runs the three phases:

- ``train_forward``: ``y = m(x)`` in training mode with ``x.requires_grad`` (batch statistics,
  running-stat update where the norm has one, autograd record), as in a training step;
- ``eval_forward``: ``y = m(x)`` in eval mode under ``no_grad`` (inference; running statistics
  set to the input's own, where the norm tracks them);
- ``forward_backward``: ``y = m(x); y.backward(g)`` with the gradients reset to None first
  (``zero_grad(set_to_none=True)``, torch's default), so every call writes fresh ``.grad``.

The timing and memory benchmark classes (``NormTimeBase``, ``NormMemoryBase``) are bases for
the ``bench_*`` modules. They are abstract (no ``norm``), so asv, which skips abstract classes,
times only the subclasses.
"""

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .common import (
    DEVICES,
    DTYPES,
    LIBRARIES,
    SHAPES,
    check_layout,
    import_library,
    peak_rss_mib,
    random_array,
    require_device,
    reset_peak_rss,
    rss_mib,
    synchronize,
)

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

    @property
    def timed_shape(self) -> tuple:
        """``shape``, or ``small_shape`` with ``NUMBANORM_BENCH_SHAPES=small`` (then float32
        only, see ``benchmarks.common``)."""
        return self.small_shape if SHAPES == "small" else self.shape


NORMS = {
    norm.name: norm
    for norm in (
        Norm(
            "BatchNorm2d",
            lambda nn, dtype: nn.BatchNorm2d(64, dtype=dtype),
            (32, 64, 56, 56),
            tuple(CHANNEL_LAYOUTS),
            (8, 64, 8, 8),
        ),
        Norm(
            "InstanceNorm2d",
            lambda nn, dtype: nn.InstanceNorm2d(64, dtype=dtype),
            (32, 64, 56, 56),
            tuple(CHANNEL_LAYOUTS),
            (8, 64, 8, 8),
        ),
        Norm(
            "GroupNorm",
            lambda nn, dtype: nn.GroupNorm(32, 64, dtype=dtype),
            (32, 64, 56, 56),
            tuple(CHANNEL_LAYOUTS),
            (8, 64, 8, 8),
        ),
        Norm(
            "LayerNorm",
            lambda nn, dtype: nn.LayerNorm(768, dtype=dtype),
            (8192, 768),
            (CONTIGUOUS,),
            (64, 768),
        ),
        Norm(
            "RMSNorm",
            lambda nn, dtype: nn.RMSNorm(768, dtype=dtype),
            (8192, 768),
            (CONTIGUOUS,),
            (64, 768),
        ),
        Norm(
            "LocalResponseNorm",
            lambda nn, dtype: nn.LocalResponseNorm(5),
            (16, 64, 28, 28),
            tuple(CHANNEL_LAYOUTS),
            (4, 64, 8, 8),
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


def params_for(norm):
    """asv's ``params`` for ``norm``: both libraries, its shape, both dtypes, its layouts."""
    return (LIBRARIES, [norm.timed_shape], DTYPES, list(norm.layouts), DEVICES)


PARAM_NAMES = ("library", "shape", "dtype", "layout", "device")


class NormTimeBase(abc.ABC):
    """Train forward, eval forward and forward+backward of ``norm``; subclasses set ``norm`` and
    ``params = params_for(norm)``."""

    param_names = PARAM_NAMES
    timeout = 300
    # asv times one call per sample here (setup re-runs before each); take more of them.
    repeat = (10, 25, 20.0)

    @property
    @abc.abstractmethod
    def norm(self) -> Norm:
        """The norm to measure (a class attribute in subclasses)."""

    def setup(self, library, shape, dtype, layout, device):
        self.case = cached_case(library, self.norm, shape, dtype, layout, device)

    def time_train_forward(self, *params):
        self.case.train_forward()

    def time_eval_forward(self, *params):
        self.case.eval_forward()

    def time_forward_backward(self, *params):
        self.case.forward_backward()


class NormMemoryBase(abc.ABC):
    """Memory of the forward phases, on one input (no gradient buffers) per process.

    ``peakmem_*`` is asv's peak RSS of the whole process: the library and its imports, the
    input, and what the call allocates. ``setup`` warms the kernels up on a small input of the
    same dtype and layout (so no large freed block is left for the call to reuse) and then
    resets the peak (Linux), so setup's transients do not count. ``track_*_extra_mib`` is the
    part due to the call alone: peak RSS during the call minus RSS before it (NaN off Linux).
    """

    param_names = PARAM_NAMES
    timeout = 300

    @property
    @abc.abstractmethod
    def norm(self) -> Norm:
        """The norm to measure (a class attribute in subclasses)."""

    def setup(self, library, shape, dtype, layout, device):
        if device != "cpu":
            raise NotImplementedError("peak RSS measures host memory only")
        Case(library, self.norm, self.norm.small_shape, dtype, layout, device).warm_up()
        self.case = Case(library, self.norm, shape, dtype, layout, device, minimal=True)
        reset_peak_rss()

    def peakmem_train_forward(self, *params):
        self.case.train_forward()

    def peakmem_eval_forward(self, *params):
        self.case.eval_forward()

    def _extra_mib(self, phase):
        before = rss_mib()
        reset_peak_rss()
        y = phase()
        extra = peak_rss_mib() - before
        del y
        return extra

    def track_train_forward_extra_mib(self, *params):
        return self._extra_mib(self.case.train_forward)

    track_train_forward_extra_mib.unit = "MiB"

    def track_eval_forward_extra_mib(self, *params):
        return self._extra_mib(self.case.eval_forward)

    track_eval_forward_extra_mib.unit = "MiB"
