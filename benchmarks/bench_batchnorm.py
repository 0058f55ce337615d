"""BatchNorm2d: numbanorm against torch (the baseline) on the same inputs and thread count.

``BatchNorm2d`` times three phases on a ResNet-sized activation, (32, 64, 56, 56):

- ``train_forward``: ``y = m(x)`` in training mode with ``x.requires_grad`` (batch statistics,
  running-stat update, autograd record), as in a training step;
- ``eval_forward``: ``y = m(x)`` in eval mode under ``no_grad`` (inference);
- ``forward_backward``: ``y = m(x); y.backward(g)`` with the gradients reset to None first
  (``zero_grad(set_to_none=True)``, torch's default), so every call writes fresh ``.grad``.

``BatchNorm2dCopyBaseline`` times a numpy copy of the same array: the memory-bound floor that
eval forward (one read, one write) is measured against. ``BatchNorm2dFirstCall`` times, in a
fresh process, ``import`` and the first forward+backward on a small input with the on-disk JIT
cache warm (``timeraw_*``).

Each case's arrays, modules and compiled kernels are built once per benchmark process and
reused: asv re-runs ``setup`` before every sample, and rebuilding 25-50 MB inputs each time
would only slow the suite down.
"""

from .common import (
    DEVICES,
    DTYPES,
    LAYOUTS,
    LIBRARIES,
    THREADS,
    check_layout,
    import_library,
    peak_rss_mib,
    random_array,
    reset_peak_rss,
    rss_mib,
)

SHAPES = [(32, 64, 56, 56)]
SMALL_SHAPE = (8, 16, 8, 8)

_CASES = {}


class _NumbanormCase:
    """Inputs and modules for one parameter set. ``minimal``: one input, no gradient."""

    def __init__(self, nb, shape, dtype, layout, minimal=False):
        self.nb = nb
        x = random_array(shape, dtype, layout, seed=0)
        if minimal:
            self.x = self.x_eval = nb.Tensor(x, requires_grad=True)
        else:
            self.x = nb.tensor(x, requires_grad=True)
            self.x_eval = nb.tensor(x)
            self.g = nb.tensor(random_array(shape, dtype, layout, seed=1))
        for t in vars(self).values():
            if isinstance(t, nb.Tensor):
                check_layout(t.data, layout)
        self.m_train = nb.nn.BatchNorm2d(shape[1], dtype=dtype)
        self.m_eval = nb.nn.BatchNorm2d(shape[1], dtype=dtype)
        self.m_eval.running_mean.data[...] = x.mean(axis=(0, 2, 3))
        self.m_eval.running_var.data[...] = x.var(axis=(0, 2, 3))
        self.m_eval.eval()

    def train_forward(self):
        return self.m_train(self.x)

    def eval_forward(self):
        with self.nb.no_grad():
            return self.m_eval(self.x_eval)

    def forward_backward(self):
        self.x.grad = self.m_train.weight.grad = self.m_train.bias.grad = None
        self.m_train(self.x).backward(self.g)


class _TorchCase:
    """As ``_NumbanormCase``, on torch tensors sharing the same numpy data."""

    def __init__(self, torch, shape, dtype, layout, minimal=False):
        self.torch = torch
        x = random_array(shape, dtype, layout, seed=0)
        # from_numpy keeps the strides: a channels-last array is a channels_last tensor.
        if minimal:
            self.x = self.x_eval = torch.from_numpy(x).requires_grad_()
        else:
            self.x = torch.from_numpy(x.copy(order="K")).requires_grad_()
            self.x_eval = torch.from_numpy(x.copy(order="K"))
            self.g = torch.from_numpy(random_array(shape, dtype, layout, seed=1))
        memory_format = torch.contiguous_format if layout == "nchw" else torch.channels_last
        for t in vars(self).values():
            if isinstance(t, torch.Tensor) and not t.is_contiguous(memory_format=memory_format):
                raise AssertionError(f"expected a {layout} tensor, got strides {t.stride()}")
        torch_dtype = getattr(torch, dtype)
        self.m_train = torch.nn.BatchNorm2d(shape[1], dtype=torch_dtype)
        self.m_eval = torch.nn.BatchNorm2d(shape[1], dtype=torch_dtype)
        with torch.no_grad():
            self.m_eval.running_mean[...] = torch.from_numpy(x.mean(axis=(0, 2, 3)))
            self.m_eval.running_var[...] = torch.from_numpy(x.var(axis=(0, 2, 3)))
        self.m_eval.eval()

    def train_forward(self):
        return self.m_train(self.x)

    def eval_forward(self):
        with self.torch.no_grad():
            return self.m_eval(self.x_eval)

    def forward_backward(self):
        self.x.grad = self.m_train.weight.grad = self.m_train.bias.grad = None
        self.m_train(self.x).backward(self.g)


def _new_case(library, shape, dtype, layout, device, minimal=False):
    if device != "cpu":
        raise NotImplementedError(f"no {device} benchmarks yet")
    module = import_library(library)
    cls = _NumbanormCase if library == "numbanorm" else _TorchCase
    return cls(module, shape, dtype, layout, minimal)


def _warm_up(case):
    """numba compiles (or loads from its disk cache) each kernel on its first call; torch and
    the allocators get their first-call costs out of the way too."""
    for _ in range(2):
        case.train_forward()
        case.eval_forward()
        case.forward_backward()


class BatchNorm2d:
    """nn.BatchNorm2d(C) with affine parameters and running statistics (torch's defaults)."""

    params = (LIBRARIES, SHAPES, DTYPES, LAYOUTS, DEVICES)
    param_names = ("library", "shape", "dtype", "layout", "device")
    timeout = 300
    # asv times one call per sample here (setup re-runs before each); take more of them.
    repeat = (10, 25, 20.0)

    def setup(self, *params):
        # Built and warmed once per benchmark process: asv re-runs setup before every sample.
        if params not in _CASES:
            case = _new_case(*params)
            _warm_up(case)
            _CASES[params] = case
        self.case = _CASES[params]

    def time_train_forward(self, *params):
        self.case.train_forward()

    def time_eval_forward(self, *params):
        self.case.eval_forward()

    def time_forward_backward(self, *params):
        self.case.forward_backward()


class BatchNorm2dMemory:
    """Memory of the forward phases, on one input (no gradient buffers) per process.

    ``peakmem_*`` is asv's peak RSS of the whole process: the library and its imports, the
    input, and what the call allocates. ``setup`` warms the kernels up on a small input of the
    same dtype and layout (so no large freed block is left for the call to reuse) and then
    resets the peak (Linux), so setup's transients do not count. ``track_*_extra_mib`` is the
    part due to the call alone: peak RSS during the call minus RSS before it (NaN off Linux).
    """

    params = (LIBRARIES, SHAPES, DTYPES, LAYOUTS, DEVICES)
    param_names = ("library", "shape", "dtype", "layout", "device")
    timeout = 300

    def setup(self, library, shape, dtype, layout, device):
        _warm_up(_new_case(library, SMALL_SHAPE, dtype, layout, device))
        self.case = _new_case(library, shape, dtype, layout, device, minimal=True)
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


class BatchNorm2dCopyBaseline:
    """numpy copies of the BatchNorm2d input: the floor for a one-read, one-write op.

    ``time_numpy_copy`` copies into a preallocated array of the same layout;
    ``time_numpy_copy_alloc`` also allocates its output (as every forward does).
    """

    params = (SHAPES, DTYPES, LAYOUTS)
    param_names = ("shape", "dtype", "layout")
    repeat = (10, 25, 20.0)

    def setup(self, shape, dtype, layout):
        import numpy as np

        self.np = np
        key = ("copy", shape, dtype, layout)
        if key not in _CASES:
            x = random_array(shape, dtype, layout, seed=0)
            out = np.empty_like(x)
            check_layout(out, layout)
            np.copyto(out, x)
            _CASES[key] = x, out
        self.x, self.out = _CASES[key]

    def time_numpy_copy(self, *params):
        self.np.copyto(self.out, self.x)

    def time_numpy_copy_alloc(self, *params):
        self.x.copy(order="K")


_FIRST_CALL_SETUP = {
    "numbanorm": """
import numpy as np
import numbanorm as nb
x = nb.tensor(np.random.default_rng(0).standard_normal({shape}, dtype=np.float32),
              requires_grad=True)
g = nb.tensor(np.ones({shape}, dtype=np.float32))
""",
    "torch": """
import numpy as np
import torch
torch.set_num_threads({threads})
x = torch.from_numpy(np.random.default_rng(0).standard_normal({shape}, dtype=np.float32))
x.requires_grad_()
g = torch.ones({shape}, dtype=torch.float32)
""",
}

_FIRST_CALL = {
    # BatchNorm2d is constructed in the timed code: with numbanorm that is where numba is first
    # imported, and the forward and backward load their kernels from numba's disk cache.
    "numbanorm": """
m = nb.nn.BatchNorm2d({channels})
m(x).backward(g)
""",
    "torch": """
m = torch.nn.BatchNorm2d({channels})
m(x).backward(g)
""",
}


class BatchNorm2dFirstCall:
    """Start-up costs in a fresh process: ``import`` and the first forward+backward.

    ``setup`` runs the small case once in the benchmark process so that numba's on-disk cache
    holds the kernels the timed process loads (the timed code's NUMBA_NUM_THREADS comes from
    the environment, set by ``benchmarks.common``).
    """

    params = (LIBRARIES,)
    param_names = ("library",)
    timeout = 300
    repeat = (3, 5, 60.0)

    def setup(self, library):
        module = import_library(library)
        if library == "numbanorm":
            import numpy as np

            x = module.tensor(np.ones(SMALL_SHAPE, np.float32), requires_grad=True)
            module.nn.BatchNorm2d(SMALL_SHAPE[1])(x).backward(module.tensor(x.data))

    def timeraw_import(self, library):
        return f"import {library}"

    def timeraw_first_forward_backward(self, library):
        setup = _FIRST_CALL_SETUP[library].format(shape=SMALL_SHAPE, threads=THREADS)
        code = _FIRST_CALL[library].format(channels=SMALL_SHAPE[1])
        return code, setup
