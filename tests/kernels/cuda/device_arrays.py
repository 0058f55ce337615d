"""Host arrays placed on the device for the kernel tests, contiguous or as strided views."""

import numpy as np
from numba import cuda


class OnDevice:
    """A host array's values on the device: a contiguous copy, or with ``any_strides`` a view
    with a negative stride and step-2 strides into a larger device array."""

    def __init__(self, array, any_strides=False):
        array = np.asarray(array)
        self.index = (slice(None, None, -2),) + (slice(1, None, 2),) * (array.ndim - 1)
        if not any_strides or array.size == 0:
            self.index = ...
            self.base = cuda.to_device(np.ascontiguousarray(array))
        else:
            base = np.zeros(tuple(2 * n for n in array.shape), array.dtype)
            base[self.index] = array
            self.base = cuda.to_device(base)
        self.view = self.base[self.index]

    def numpy(self):
        # The driver cannot copy a negative-stride view back: copy the base, then index it.
        return self.base.copy_to_host()[self.index]
