"""A lock on the CUDA simulator's shared arrays, for the tests run on the simulator.

numba-cuda's simulator (0.30.4) makes a block's ``cuda.shared.array`` when a thread first asks
for it and stores it for the block's other threads, with nothing between the look-up and the
store: two threads that ask at once each get an array of their own, and the block's reduction
adds up uninitialised memory (CI saw a GroupNorm ``dbias`` of -6.9e12 this way, about one launch
in a few hundred at the tests' short switch interval). A GPU has one array per block, so the
tests run the simulator with the look-up and the store under one lock.
"""

import sys
import threading

import numpy as np

_LOCK = threading.Lock()


def lock_shared_arrays() -> None:
    """Make the simulator's static ``cuda.shared.array`` one array per block, however its
    threads interleave. Imports numba: call it after the simulator is chosen."""
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    unlocked = kernelapi.FakeCUDAShared.array

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:
            # Dynamic shared memory is one buffer made up front; an alignment is refused.
            return unlocked(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        # As the simulator does, an array is known by the source line that asks for it.
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with _LOCK:
            found = self._allocations.get(caller)
            if found is None:
                found = self._allocations[caller] = np.empty(shape, dtype)
        return found

    kernelapi.FakeCUDAShared.array = array
