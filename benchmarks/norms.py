"""asv bases for the norms' benchmarks: timing and memory of the cases of
``numbanorm.bench.cases``, on both libraries, every dtype, layout and device.

``NormTimeBase`` and ``NormMemoryBase`` are bases for the ``bench_*`` modules. They are abstract
(no ``norm``), so asv, which skips abstract classes, times only the subclasses.
"""

import abc

from numbanorm.bench.cases import DEVICES, DTYPES, LIBRARIES, Case, Norm, cached_case

from .common import peak_rss_mib, reset_peak_rss, rss_mib


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
