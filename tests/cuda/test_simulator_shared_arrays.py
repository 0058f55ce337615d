"""The simulator's shared arrays are one per block however its threads interleave (see
``tests/simulator_shared_arrays.py``)."""

import contextlib
import threading

import numpy as np
import pytest

from tests.cuda.conftest import SIMULATOR

pytestmark = pytest.mark.skipif(not SIMULATOR, reason="a GPU's shared memory needs no lock")


class _MeetingLookup(dict):
    """Allocations whose look-up, once done, waits (half a second at most) until ``threads``
    threads have done theirs: the switch of thread that makes two threads look up at once, made
    certain."""

    def __init__(self, threads):
        super().__init__()
        self._all_looked = threading.Barrier(threads, timeout=0.5)

    def get(self, key, default=None):
        found = super().get(key, default)
        with contextlib.suppress(threading.BrokenBarrierError):
            self._all_looked.wait()
        return found


def test_threads_asking_at_once_share_one_array():
    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    shared = FakeCUDAShared(0)
    shared._allocations = _MeetingLookup(8)
    barrier = threading.Barrier(8)
    got = []

    def thread():
        barrier.wait()
        got.append(shared.array(4, np.float64))

    threads = [threading.Thread(target=thread) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8
    assert all(a is got[0] for a in got)


def test_each_line_has_its_own_array():
    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    shared = FakeCUDAShared(0)
    first = shared.array(4, np.float64)
    second = shared.array(4, np.float64)
    assert first is not second
    assert shared.array(4, np.float64) is not first
