"""The result memory file (anxcor.shared_result): writes land where numpy indexing puts them,
another process on this machine can write into it, and anything else is refused."""

import base64
import os
import pickle
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from anxcor.shared_result import ArrayWriter, attach_result, shared_result

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(os, "memfd_create"),
    reason="result memory files need Linux (memfd_create and /proc)",
)

SHAPE = (23, 9, 41)


def _blocks(rng):
    """Pair indices in a few blocks (runs of consecutive pairs with gaps, as pair blocks give) and their rows."""
    order = rng.permutation(SHAPE[0])
    for pairs in np.array_split(order, 4):
        pairs = np.sort(pairs)
        yield pairs, rng.standard_normal((len(pairs), *SHAPE[1:])).astype(np.float32)


def _expected(rng) -> np.ndarray:
    expected = np.zeros(SHAPE, dtype=np.float32)
    for pairs, values in _blocks(rng):
        expected[pairs] = values
    return expected


@linux_only
def test_writes_land_where_numpy_indexing_puts_them():
    shared = shared_result(SHAPE, np.float32)
    assert shared is not None and not shared.array.any()  # starts as zeros
    with shared.writer() as writer:
        for pairs, values in _blocks(np.random.default_rng(1)):
            writer.write_pairs(pairs, values)
    shared.close()
    np.testing.assert_array_equal(shared.array, _expected(np.random.default_rng(1)))
    copy = pickle.loads(pickle.dumps(shared.array))  # an ordinary array once the file is closed
    np.testing.assert_array_equal(copy, shared.array)
    with pytest.raises(ValueError, match="closed"):
        shared.writer()


def test_array_writer_is_numpy_indexing():
    array = np.zeros(SHAPE, dtype=np.float32)
    with ArrayWriter(array) as writer:
        for pairs, values in _blocks(np.random.default_rng(2)):
            writer.write_pairs(pairs, values)
    np.testing.assert_array_equal(array, _expected(np.random.default_rng(2)))


@linux_only
def test_another_process_on_this_machine_writes_into_the_result():
    shared = shared_result(SHAPE, np.float32)
    rng = np.random.default_rng(3)
    blocks = list(_blocks(rng))
    payload = base64.b64encode(pickle.dumps((shared.target, blocks))).decode()
    code = (
        "import base64, pickle, sys\n"
        "from anxcor.shared_result import attach_result\n"
        f"target, blocks = pickle.loads(base64.b64decode({payload!r}))\n"
        "writer = attach_result(target)\n"
        "assert writer is not None\n"
        "with writer:\n"
        "    for pairs, values in blocks:\n"
        "        writer.write_pairs(pairs, values)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    shared.close()
    np.testing.assert_array_equal(shared.array, _expected(np.random.default_rng(3)))


@linux_only
def test_other_machines_and_other_files_are_refused():
    shared = shared_result(SHAPE, np.float32)
    target = shared.target
    assert attach_result(None) is None
    assert attach_result(replace(target, boot_id="another machine")) is None
    assert attach_result(replace(target, inode=target.inode + 1)) is None  # same path, not the same file
    other = os.memfd_create("other")
    os.ftruncate(other, 16)
    assert attach_result(replace(target, fd=other)) is None  # an open file of this process, not the result
    os.close(other)
    shared.close()
    assert attach_result(target) is None  # closed: /proc/<pid>/fd/<fd> is gone


@linux_only
def test_wrong_shapes_are_refused_before_writing():
    shared = shared_result(SHAPE, np.float32)
    with shared.writer() as writer, pytest.raises(ValueError, match="values of shape"):
        writer.write_pairs(np.arange(2), np.ones((2, 9, 40), dtype=np.float32))
    shared.close()
    assert not shared.array.any()


@linux_only
def test_a_result_beside_a_store_leaves_no_file(tmp_path):
    shared = shared_result(SHAPE, np.float32, beside=tmp_path / "result.zarr")
    assert list(tmp_path.iterdir()) == []  # unlinked at once
    with shared.writer() as writer:
        writer.write_pairs(np.array([4, 5]), np.full((2, 9, 41), 7.0, dtype=np.float32))
    shared.close()
    assert float(shared.array[4:6].min()) == 7.0 and not shared.array[:4].any()


def test_empty_results_need_no_file():
    assert shared_result((0, 9, 41), np.float32) is None
