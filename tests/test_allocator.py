"""Allocator settings and the allocation of large results (anxcor.allocator)."""

import mmap
import pickle
import sys

import numpy as np
import pytest

from anxcor.allocator import MAPPED_RESULT_BYTES, empty_result, tune_allocator


def _buffer_owner(array: np.ndarray):
    """The object at the end of an array's ``base`` chain (the array itself if it owns its data)."""
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array.obj if isinstance(array, memoryview) else array


def test_large_results_are_mapped_and_behave_like_plain_arrays():
    shape = (3, 9, MAPPED_RESULT_BYTES // (9 * 4) // 3 + 1)  # just over the threshold in float32
    array = empty_result(shape, np.float32)
    assert isinstance(_buffer_owner(array), mmap.mmap)
    assert array.shape == shape and array.dtype == np.float32
    assert array.flags.c_contiguous and array.flags.writeable
    values = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    array[...] = values
    np.testing.assert_array_equal(array, values)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(array)), values)  # pickles as a plain copy
    view = array[1:, 2]
    del array
    np.testing.assert_array_equal(view, values[1:, 2])  # a view keeps the mapping alive


def test_small_results_come_from_numpy():
    array = empty_result((4, 9, 11), np.complex64)
    assert array.flags.owndata and array.dtype == np.complex64 and array.shape == (4, 9, 11)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is a glibc (Linux) function")
def test_tune_allocator_applies_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not a glibc system")
    assert tune_allocator() is True
    blocks = [np.full(2**22, k, dtype=np.float64) for k in range(4)]  # 32 MB each side of the threshold
    assert [float(b[-1]) for b in blocks] == [0.0, 1.0, 2.0, 3.0]


def test_spill_arrays_live_in_a_file_that_is_already_gone(tmp_path):
    from anxcor.allocator import spill_array

    array = spill_array(tmp_path / "result.zarr", (5, 9, 7), np.float32)
    assert isinstance(array, np.memmap) and array.shape == (5, 9, 7) and array.dtype == np.float32
    assert not array.any()  # starts as zeros
    assert list(tmp_path.iterdir()) == []  # unlinked at once: nothing to clean up after a crash
    array[2] = 7.0
    np.testing.assert_array_equal(array.sum(axis=(1, 2)), [0, 0, 7 * 63, 0, 0])
    assert spill_array(tmp_path / "empty.zarr", (0, 9, 7), np.float32).size == 0
