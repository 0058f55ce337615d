"""The demo's data: digits and users' .npz files, the seeded split, the scaling, and clear errors
for files it cannot train on."""

import re

import numpy as np
import pytest

from numbanorm.demo import data
from numbanorm.demo.data import DataError


def test_digits_split_is_stratified_seeded_and_scaled():
    digits = data.load(None, 0)
    assert digits.sample_shape == (1, 8, 8) and digits.num_classes == 10
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert abs(len(digits.x_test) - 0.2 * 1797) < 10
    assert digits.x_train.dtype == np.float32 and digits.y_train.dtype == np.int64
    # 0..16 scaled to 0..1: zeros stay exact zeros.
    assert digits.scale == 16.0 and digits.x_train.min() == 0 and digits.x_train.max() == 1
    # Each class is held out in proportion.
    counts = np.bincount(digits.y_test, minlength=10)
    assert counts.min() >= 0.2 * 174 and counts.max() <= 0.2 * 183 + 1
    again, other = data.load(None, 0), data.load(None, 1)
    np.testing.assert_array_equal(again.x_test, digits.x_test)
    assert not np.array_equal(other.y_test, digits.y_test)


@pytest.mark.parametrize(
    ("shape", "sample_shape"),
    [((40, 64), (1, 8, 8)), ((40, 8, 8), (1, 8, 8)), ((40, 1, 8, 8), (1, 8, 8)),
     ((40, 3, 5, 6), (3, 5, 6)), ((40, 10), (10,))],
)  # fmt: skip
def test_sample_shapes(digits_file, shape, sample_shape):
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) - 7
    y = np.arange(shape[0]) % 2
    dataset = data.load(digits_file(X=x, y=y), 0)
    assert dataset.sample_shape == sample_shape
    # Scaled by the training split's largest absolute value.
    assert np.abs(dataset.x_train).max() == 1


def test_labels_of_any_sortable_type_become_class_indices(digits_file):
    x = np.random.default_rng(0).standard_normal((30, 4))
    y = np.array(["cat", "dog", "emu"] * 10)
    dataset = data.load(digits_file(X=x, y=y), 0)
    assert dataset.classes.tolist() == ["cat", "dog", "emu"]
    assert sorted(set(dataset.y_train.tolist())) == [0, 1, 2]


GOOD_X = np.zeros((20, 4))
GOOD_Y = np.arange(20) % 2


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": GOOD_X}, r"needs arrays 'X' and 'y', missing \['y'\]; it has \['X'\]"),
        ({"X": GOOD_X, "y": GOOD_Y[:5]}, r"y must have shape \(20,\)"),
        ({"X": GOOD_X, "y": GOOD_Y[:, None]}, r"y must have shape \(20,\)"),
        ({"X": GOOD_X, "y": np.zeros(20)}, "y must hold at least 2 classes, got 1"),
        ({"X": GOOD_X[:, 0], "y": GOOD_Y}, r"X must have shape \(N, D\), \(N, H, W\)"),
        ({"X": GOOD_X.astype(str), "y": GOOD_Y}, "X must hold numbers, got dtype <U"),
        ({"X": np.full((20, 4), np.nan), "y": GOOD_Y}, "X holds NaN or infinite values"),
        ({"X": GOOD_X[:2], "y": GOOD_Y[:2]}, "too few samples to hold out 20% for testing"),
    ],
    ids=["no-y", "short-y", "2d-y", "one-class", "1d-x", "text-x", "nan-x", "two-samples"],
)
def test_bad_arrays(digits_file, arrays, message):
    path = digits_file(**arrays)
    with pytest.raises(DataError, match=f"^--data {path}: {message}"):
        data.load(path, 0)


def test_bad_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 this is not a zip archive")
    single = tmp_path / "single.npy"
    np.save(single, GOOD_X)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, X=np.array([{"a": 1}] * 20, dtype=object), y=GOOD_Y)
    cases = [
        (tmp_path / "missing.npz", "no such file"),
        (garbage, "cannot read it as an .npz archive ("),
        (single, "a single .npy array, not an .npz archive of 'X' and 'y'"),
        (pickled, "cannot read its arrays (Object arrays cannot be loaded"),
    ]
    for path, message in cases:
        with pytest.raises(DataError, match=re.escape(f"--data {path}: {message}")):
            data.load(str(path), 0)
