"""``--compare-torch``: the same model, initial state and batches trained in torch, and the two
runs side by side. The only module of the demo that imports torch, and only when asked to."""

from __future__ import annotations

import statistics
from typing import Any, TextIO

import numpy as np

from numbanorm.demo.data import Dataset
from numbanorm.demo.errors import DemoError
from numbanorm.demo.models import build
from numbanorm.demo.train import Framework, History, Schedule, fit, make_optimizer

MISSING = (
    "--compare-torch trains the same model in torch, which is not installed here "
    "(pip install torch); numbanorm itself needs no torch"
)


def framework() -> Framework:
    """torch's side of the loop; ``DemoError(MISSING)`` when torch cannot be imported."""
    try:
        import torch
    except ImportError as error:
        raise DemoError(MISSING) from error
    return Framework("torch", torch.nn, torch.optim, torch.from_numpy, torch.no_grad)


def to_torch(value: Any) -> Any:
    """A state dict with its numpy arrays turned into torch tensors, structure kept."""
    import torch

    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value, copy=True))
    if isinstance(value, dict):
        converted = type(value)((key, to_torch(item)) for key, item in value.items())
        if hasattr(value, "_metadata"):
            converted._metadata = value._metadata
        return converted
    if isinstance(value, (list, tuple)):
        return type(value)(to_torch(item) for item in value)
    return value


def train(
    settings: dict[str, Any],
    data: Dataset,
    model_state: dict,
    optimizer_state: dict,
    schedule: Schedule,
    out: TextIO,
    progress: bool,
) -> History:
    """Train torch's copy of the model from the states numbanorm's run started from."""
    fw = framework()
    model = build(settings["model"], fw.nn, data.sample_shape, data.num_classes)
    model.load_state_dict(to_torch(model_state))
    optimizer = make_optimizer(fw.optim, model.parameters(), settings["optimizer"], settings["lr"])
    optimizer.load_state_dict(to_torch(optimizer_state))
    import torch

    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads:", file=out)
    history = History()
    fit(fw, model, optimizer, data, schedule, out, history, progress)
    return history


def report(ours: History, theirs: History, start: int, out: TextIO) -> None:
    """Both runs' epochs side by side, then both accuracies and the median epoch times."""
    print(f"\n{'':6}{'numbanorm':^29}  {'torch':^29}", file=out)
    columns = f"{'loss':>9} {'accuracy':>9} {'time':>9}"
    print(f"{'epoch':>5} {columns}  {columns}", file=out)
    for i, epoch in enumerate(range(start, start + len(theirs.loss))):
        cells = [
            f"{h.loss[i]:9.4f} {100 * h.accuracy[i]:8.1f}% {h.seconds[i]:7.3f} s"
            for h in (ours, theirs)
        ]
        print(f"{epoch + 1:5d} {cells[0]}  {cells[1]}", file=out)
    print(
        f"test accuracy: numbanorm {100 * ours.accuracy[-1]:.1f}%, "
        f"torch {100 * theirs.accuracy[-1]:.1f}%",
        file=out,
    )
    mine, torch_time = statistics.median(ours.seconds), statistics.median(theirs.seconds)
    print(
        f"median epoch time: numbanorm {mine:.3f} s, torch {torch_time:.3f} s "
        f"(numbanorm/torch = {mine / torch_time:.2f}; numbanorm's first epoch includes "
        "loading or compiling its kernels)",
        file=out,
    )
