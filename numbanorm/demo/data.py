"""The demo's data: scikit-learn's digits or a user's ``.npz``, split (seeded) and scaled.

Samples keep an image shape where they have one: digits are ``(N, 1, 8, 8)``; a user's ``X`` of
shape ``(N, H, W)`` becomes ``(N, 1, H, W)``, ``(N, C, H, W)`` stays, and ``(N, D)`` becomes
``(N, 1, s, s)`` when ``D == s * s``, else stays ``(N, D)`` (which only the MLPs take). Labels may
be of any type ``np.unique`` sorts; they are mapped to class indices ``0 .. K-1``.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from numbanorm.demo.errors import DemoError

TEST_FRACTION = 0.2


class DataError(DemoError):
    """A data file the demo cannot train on, with what is wrong with it."""


@dataclass(frozen=True)
class Dataset:
    """A seeded held-out split; inputs divided by ``scale``, the training split's largest absolute
    value, so they lie in [-1, 1] and zeros stay exact zeros (digits: 0..16 -> 0..1)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray
    scale: float
    source: str

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.x_train.shape[1:]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits: ``X`` (N, 1, 8, 8) float32 in 0..16, ``y`` int64."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise DataError(
            'the digits dataset comes with scikit-learn: pip install "numbanorm[demo]" '
            "(or pass --data FILE.npz)"
        ) from error
    digits = load_digits()
    return digits.images[:, None].astype(np.float32), digits.target.astype(np.int64)


def npz_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``X`` and ``y`` of a ``.npz`` file, checked; no pickled objects are loaded."""
    where = f"--data {path}"
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError as error:
        raise DataError(f"{where}: no such file") from error
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{where}: cannot read it as an .npz archive ({error})") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{where}: a single .npy array, not an .npz archive of 'X' and 'y'")
    with archive:
        missing = [name for name in ("X", "y") if name not in archive.files]
        if missing:
            raise DataError(
                f"{where}: needs arrays 'X' and 'y', missing {missing}; "
                f"it has {sorted(archive.files)}"
            )
        try:
            x, y = archive["X"], archive["y"]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(f"{where}: cannot read its arrays ({error})") from error
    return x, y


def as_samples(x: np.ndarray, where: str) -> np.ndarray:
    """``x`` as float32 samples of the shapes the module docstring lists."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: X must hold numbers, got dtype {x.dtype}")
    if x.ndim not in (2, 3, 4):
        raise DataError(
            f"{where}: X must have shape (N, D), (N, H, W) or (N, C, H, W), got {x.shape}"
        )
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{where}: X holds NaN or infinite values")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side == x.shape[1]:
            return x.reshape(len(x), 1, side, side)
    return x


def labels(y: np.ndarray, n: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The distinct labels (sorted) and each sample's class index."""
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{where}: y must have shape ({n},), one label per sample, got {y.shape}")
    classes, index = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{where}: y must hold at least 2 classes, got {len(classes)}")
    return classes, index.astype(np.int64)


def stratified_split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: ``TEST_FRACTION`` of each class held out, shuffled by ``seed``."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        held = round(TEST_FRACTION * len(members))
        test.append(members[:held])
        train.append(members[held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load(path: str | None, seed: int, scale: float | None = None) -> Dataset:
    """The digits (``path`` None) or the arrays of ``path``, split by ``seed``, divided by
    ``scale``, by default the training split's largest absolute value."""
    source = "digits" if path is None else str(path)
    where = "digits" if path is None else f"--data {path}"
    x, y = digits_arrays() if path is None else npz_arrays(path)
    x = as_samples(x, where)
    classes, y = labels(y, len(x), where)
    train, test = stratified_split(y, seed)
    if len(train) < 2 or len(test) < 1:
        raise DataError(
            f"{where}: too few samples to hold out {TEST_FRACTION:.0%} for testing "
            f"({len(x)} samples)"
        )
    if scale is None:
        scale = float(np.abs(x[train]).max()) or 1.0
    return Dataset(
        x_train=x[train] / np.float32(scale),
        y_train=y[train],
        x_test=x[test] / np.float32(scale),
        y_test=y[test],
        classes=classes,
        scale=scale,
        source=source,
    )
