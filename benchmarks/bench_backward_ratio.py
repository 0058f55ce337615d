"""LayerNorm's and GroupNorm's forward+backward time over their own forward time (the all-norms
issue asks for at most 2), on each library, beside the least that ratio can be where memory sets
the pace.

A forward reads its input and writes its output: at best ``2*a``. A backward reads the input and
the output gradient and writes the input gradient: at best ``a + b``. So forward+backward over
forward is at least ``1 + time(a + b)/time(2*a)`` for a forward that runs at memory speed; both
are timed here (``numbanorm.bench.copy_kernel``, plain stores as the kernels', numba's threads)
on arrays of the case's size. Each ``track_*`` value is a ratio of medians of quiet samples
(``numbanorm.bench.measure``).
"""

import numpy as np

from numbanorm.bench.cases import (
    CHANNEL_LAYOUTS,
    DTYPES,
    LIBRARIES,
    NORMS,
    cached_case,
    import_numbanorm,
)
from numbanorm.bench.measure import measure

_NORMS = ["LayerNorm", "GroupNorm"]


def _median_seconds(call):
    """Median time of ``call`` over quiet batches (``python -m numbanorm bench``'s defaults), or
    over all batches if the machine stays busy for the whole budget."""
    times = measure(call, samples=15, batch_seconds=0.1, max_foreign=0.1, budget_seconds=3.0)
    return float(np.median(times["kept"] or times["noisy"]))


def _require_layout(norm, layout):
    if layout not in NORMS[norm].layouts:
        raise NotImplementedError(f"{norm} is not timed in {layout}")


class ForwardBackwardOverForward:
    params = (LIBRARIES, _NORMS, DTYPES, CHANNEL_LAYOUTS)
    param_names = ("library", "norm", "dtype", "layout")
    timeout = 300

    def setup(self, library, norm, dtype, layout):
        _require_layout(norm, layout)
        self.case = cached_case(library, NORMS[norm], NORMS[norm].timed_shape, dtype, layout)

    def track_ratio(self, *params):
        forward = _median_seconds(self.case.train_forward)
        return _median_seconds(self.case.forward_backward) / forward

    track_ratio.unit = "ratio"


class MemoryFloorOfTheRatio:
    params = (_NORMS, DTYPES, CHANNEL_LAYOUTS)
    param_names = ("norm", "dtype", "layout")
    timeout = 300

    def setup(self, norm, dtype, layout):
        _require_layout(norm, layout)
        import_numbanorm()
        from numbanorm.bench.copy_kernel import parallel_add, parallel_scale

        size = int(np.prod(NORMS[norm].timed_shape))
        rng = np.random.default_rng(0)
        a, b = (rng.standard_normal(size, dtype=np.dtype(dtype)) for _ in range(2))
        out = np.empty_like(a)
        self.forward = lambda: parallel_scale(a, out)
        self.backward = lambda: parallel_add(a, b, out)

    def track_ratio(self, *params):
        return 1.0 + _median_seconds(self.backward) / _median_seconds(self.forward)

    track_ratio.unit = "ratio"
