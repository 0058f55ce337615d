"""Demo checkpoints: model and optimizer state, settings, input scale and history in one
``numbanorm.save`` file (atomic, no pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import numbanorm
from numbanorm.demo.errors import DemoError

FORMAT = "numbanorm-demo"
VERSION = 1

# Settings that change what a checkpoint's numbers mean: --load refuses different ones.
FIXED = ("model", "seed", "optimizer")


class CheckpointError(DemoError):
    """A checkpoint that is not the demo's, or does not fit the data or the options given."""


def write(
    path: str | Path,
    settings: dict[str, Any],
    data: dict[str, Any],
    epoch: int,
    history: dict[str, list[float]],
    model: Any,
    optimizer: Any,
) -> None:
    """Save everything ``--load`` needs to resume after ``epoch`` finished epochs; ``data`` holds
    the input scale, the classes and the sample shape."""
    numbanorm.save(
        {
            "format": FORMAT,
            "version": VERSION,
            "settings": settings,
            "data": data,
            "epoch": epoch,
            "history": history,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
        },
        path,
    )


def read(path: str | Path) -> dict[str, Any]:
    """A checkpoint that ``write`` wrote, or ``CheckpointError`` saying why not."""
    where = f"--load {path}"
    try:
        checkpoint = numbanorm.load(path)
    except FileNotFoundError as error:
        raise CheckpointError(f"{where}: no such file") from error
    except numbanorm.SerializationError as error:
        raise CheckpointError(f"{where}: {error}") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(
            f"{where}: a numbanorm file, but not a checkpoint of `python -m numbanorm demo --save`"
        )
    if checkpoint.get("version") != VERSION:
        raise CheckpointError(
            f"{where}: checkpoint version {checkpoint.get('version')}, this demo reads {VERSION}"
        )
    return checkpoint


def resolve(given: dict[str, Any], defaults: dict[str, Any], checkpoint: dict | None) -> dict:
    """Each setting from the command line, else the checkpoint, else the default; a fixed setting
    given on the command line must equal the checkpoint's."""
    stored = {} if checkpoint is None else checkpoint["settings"]
    settings = {}
    for key, default in defaults.items():
        value = given.get(key)
        if value is not None and key in FIXED and key in stored and stored[key] != value:
            flag = key.replace("_", "-")
            raise CheckpointError(
                f"--load: the checkpoint was trained with --{flag} {stored[key]}, not {value}"
            )
        settings[key] = value if value is not None else stored.get(key, default)
    return settings


def check_data(checkpoint: dict, sample_shape: tuple[int, ...], classes: np.ndarray) -> None:
    """The data's sample shape and classes are those the checkpoint's model was trained on."""
    stored = checkpoint["data"]
    if tuple(stored["sample_shape"]) != tuple(sample_shape):
        raise CheckpointError(
            f"--load: the checkpoint's model takes samples of shape "
            f"{tuple(stored['sample_shape'])}, the data has {tuple(sample_shape)}"
        )
    if not np.array_equal(np.asarray(stored["classes"]), classes):
        raise CheckpointError(
            f"--load: the checkpoint's model has classes {np.asarray(stored['classes']).tolist()}, "
            f"the data has {classes.tolist()}"
        )
