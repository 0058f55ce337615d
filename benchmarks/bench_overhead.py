"""Per-call overhead: BatchNorm1d(16) on an (8, 16) input, where the arithmetic is nothing and
what is timed is the Python (or C++) path around it: validation, dispatch, allocation and the
autograd record. numbanorm runs its kernels' serial twins here, as it does for any input under
``NUMBANORM_PARALLEL_MIN_SIZE`` elements."""

import numpy as np

from numbanorm.bench.cases import LIBRARIES, import_library

SHAPE = (8, 16)


class TinyBatchNorm1d:
    params = (LIBRARIES,)
    param_names = ("library",)

    def setup(self, library):
        lib = import_library(library)
        x = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
        if library == "torch":
            self.x = lib.from_numpy(x).requires_grad_()
        else:
            self.x = lib.tensor(x, requires_grad=True)
        self.m = lib.nn.BatchNorm1d(SHAPE[1])
        for _ in range(3):
            self.time_forward_sum_backward(library)

    def time_forward(self, library):
        self.m(self.x)

    def time_forward_sum_backward(self, library):
        self.x.grad = None
        self.m(self.x).sum().backward()
