"""numpy copies of each norm's input: the floor for an op that reads and writes it once.

``time_numpy_copy`` copies into a preallocated array of the same layout;
``time_numpy_copy_alloc`` also allocates its output (as every forward does). A layout the norm
is not timed in is skipped.
"""

import numpy as np

from numbanorm.bench.cases import CHANNEL_LAYOUTS, DTYPES, NORMS, check_layout, random_array

_ARRAYS = {}


class CopyBaseline:
    params = (list(NORMS), DTYPES, CHANNEL_LAYOUTS)
    param_names = ("norm", "dtype", "layout")
    repeat = (10, 25, 20.0)

    def setup(self, norm, dtype, layout):
        shape = NORMS[norm].timed_shape
        if layout not in NORMS[norm].layouts:
            raise NotImplementedError(f"{norm} is not timed in {layout}")
        key = (shape, dtype, layout)
        if key not in _ARRAYS:
            x = random_array(shape, dtype, layout, seed=0)
            out = np.empty_like(x)
            check_layout(out, layout)
            np.copyto(out, x)
            _ARRAYS[key] = x, out
        self.x, self.out = _ARRAYS[key]

    def time_numpy_copy(self, *params):
        np.copyto(self.out, self.x)

    def time_numpy_copy_alloc(self, *params):
        self.x.copy(order="K")
