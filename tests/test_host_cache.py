"""The host caching allocator: large outputs reuse freed buffers, never live ones."""

import numpy as np
import pytest

import numbanorm
from numbanorm.backends import host_cache

LARGE = (host_cache.MIN_BYTES // 8 + 10,)


def address(a):
    return a.__array_interface__["data"][0]


@pytest.fixture(autouse=True)
def own_cache(monkeypatch):
    """Each test starts from an empty cache of its own and leaves the shared one alone."""
    monkeypatch.setattr(host_cache, "_buffers", [])


def test_a_dropped_array_buffer_is_reused():
    a = host_cache.empty(LARGE, np.float64)
    first = address(a)
    del a
    b = host_cache.empty(LARGE, np.float64)
    assert address(b) == first
    assert b.shape == LARGE and b.dtype == np.float64 and b.flags.writeable


@pytest.mark.parametrize("keep", [lambda a: a[3:], lambda a: a.reshape(2, -1), lambda a: a.T])
def test_a_buffer_with_a_live_view_is_not_reused(keep):
    a = host_cache.empty((2, LARGE[0]), np.float64)
    a[...] = 1.0
    view = keep(a)
    del a
    b = host_cache.empty((2, LARGE[0]), np.float64)
    b[...] = 2.0
    assert np.all(view == 1.0)
    assert len(host_cache._buffers) == 2


def test_sizes_share_a_buffer_rounded_to_pages():
    a = host_cache.empty(LARGE, np.float64)
    first = address(a)
    del a
    b = host_cache.empty((LARGE[0] * 2 + 1,), np.float32)
    assert address(b) == first


def test_small_arrays_are_plain_numpy():
    a = host_cache.empty((16, 16), np.float32)
    assert a.flags.owndata
    assert host_cache._buffers == []


def test_past_the_cap_free_buffers_go_oldest_first(monkeypatch):
    mib = host_cache.MIN_BYTES
    monkeypatch.setattr(host_cache, "CAPACITY", 4 * mib)
    a = host_cache.empty((mib,), np.uint8)
    b = host_cache.empty((2 * mib,), np.uint8)
    del a
    c = host_cache.empty((mib + 4096,), np.uint8)
    assert [len(x) for x in host_cache._buffers] == [2 * mib, mib + 4096]
    assert not b.flags.owndata and not c.flags.owndata


def test_past_the_cap_a_free_buffer_behind_a_live_one_goes(monkeypatch):
    mib = host_cache.MIN_BYTES
    monkeypatch.setattr(host_cache, "CAPACITY", 4 * mib)
    a = host_cache.empty((mib,), np.uint8)
    b = host_cache.empty((2 * mib,), np.uint8)
    del b
    c = host_cache.empty((2 * mib + 4096,), np.uint8)
    assert [len(x) for x in host_cache._buffers] == [mib, 2 * mib + 4096]
    assert not a.flags.owndata and not c.flags.owndata


def test_an_array_that_cannot_fit_under_the_cap_is_plain_numpy(monkeypatch):
    monkeypatch.setattr(host_cache, "CAPACITY", 3 * host_cache.MIN_BYTES)
    kept = host_cache.empty((2 * host_cache.MIN_BYTES,), np.uint8)
    extra = host_cache.empty((2 * host_cache.MIN_BYTES,), np.uint8)
    assert extra.flags.owndata
    assert len(host_cache._buffers) == 1 and kept.base is not None


def test_empty_cache_drops_free_buffers_only():
    kept = host_cache.empty(LARGE, np.float64)
    dropped = host_cache.empty((LARGE[0] * 2,), np.float64)
    del dropped
    numbanorm.empty_cache()
    assert len(host_cache._buffers) == 1
    kept[...] = 3.0
    assert np.all(kept == 3.0)


def test_norm_outputs_reuse_buffers_and_keep_their_values():
    ln = numbanorm.nn.LayerNorm(512)
    x = numbanorm.tensor(np.random.default_rng(0).standard_normal((1024, 512)).astype(np.float32))
    with numbanorm.no_grad():
        y1 = ln(x)
        first = address(y1.data)
        expected = y1.data.copy()
        y2 = ln(x * 2.0)
        assert address(y2.data) != first
        np.testing.assert_array_equal(y1.data, expected)
        del y1, y2
        y3 = ln(x)
    assert address(y3.data) == first
    np.testing.assert_array_equal(y3.data, expected)


def _huge_page_kib(array) -> int:
    """AnonHugePages of the mapping that holds ``array``'s middle byte (Linux smaps; the first
    page, with the allocator's header, is a mapping of its own)."""
    middle = address(array) + array.nbytes // 2
    with open("/proc/self/smaps") as smaps:
        inside = False
        for line in smaps:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                low, high = (int(part, 16) for part in head.split("-"))
                inside = low <= middle < high
            elif inside and head == "AnonHugePages:":
                return int(line.split()[1])
    return 0


def _transparent_huge_pages() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as setting:
            return setting.read()
    except OSError:
        return "[never]"


@pytest.mark.skipif(
    "[never]" in _transparent_huge_pages(), reason="no transparent huge pages on this system"
)
def test_buffers_are_backed_by_huge_pages_where_the_system_has_them():
    """numpy asks the kernel for huge pages on arrays of 4 MiB and more (madvise), as it does for
    its own arrays: writing a fresh 25 MB output then takes fewer page walks. The cache's buffers
    get the same, so that its outputs are not slower to write than numpy's."""
    a = host_cache.empty((16 << 20) // 4, np.float32)
    a[...] = 1.0
    assert _huge_page_kib(a) >= 2048
