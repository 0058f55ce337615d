"""The training loop, written once for numbanorm and torch (``Framework``): seeded batches,
one progress bar per epoch, per-epoch loss, test accuracy and time."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

import numbanorm
from numbanorm.demo.data import Dataset

EVAL_BATCH = 1024

# Optimizer defaults: (learning rate, momentum, weight decay).
OPTIMIZERS = {"sgd": (0.05, 0.9, 5e-4), "adam": (1e-3, 0.0, 1e-4)}


@dataclass(frozen=True)
class Framework:
    """What the loop needs of a library; numbanorm and torch spell them the same."""

    name: str
    nn: Any
    optim: Any
    tensor: Callable[[np.ndarray], Any]
    no_grad: Callable[[], Any]


NUMBANORM = Framework(
    "numbanorm", numbanorm.nn, numbanorm.optim, numbanorm.tensor, numbanorm.no_grad
)


@dataclass
class History:
    """One entry per finished epoch: mean training loss, test accuracy (0..1), seconds."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[float]]:
        return {"loss": self.loss, "accuracy": self.accuracy, "seconds": self.seconds}


def make_optimizer(optim: Any, params: Any, name: str, lr: float | None) -> Any:
    """SGD with momentum and weight decay, or Adam with weight decay; ``lr`` None: the default."""
    default_lr, momentum, weight_decay = OPTIMIZERS[name]
    lr = default_lr if lr is None else lr
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return optim.Adam(params, lr=lr, weight_decay=weight_decay)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Epoch ``epoch``'s shuffled sample indices in batches of nearly equal sizes (none of size 1
    while ``n >= 2``, which BatchNorm could not train on); resuming repeats the same batches."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return np.array_split(order, max(1, math.ceil(n / batch_size)))


def train_step(model: Any, optimizer: Any, nn: Any, x: Any, y: Any) -> Any:
    """One optimizer step on cross-entropy; returns the loss tensor."""
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def accuracy(fw: Framework, model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``x`` classified as ``y``, in evaluation mode."""
    model.eval()
    correct = 0
    with fw.no_grad():
        for start in range(0, len(x), EVAL_BATCH):
            logits = np.asarray(model(fw.tensor(x[start : start + EVAL_BATCH])))
            correct += int((logits.argmax(axis=1) == y[start : start + EVAL_BATCH]).sum())
    return correct / len(x)


def _progress(batches: list[np.ndarray], label: str, show: bool) -> Iterator[np.ndarray]:
    if not show:
        yield from batches
        return
    from tqdm import tqdm

    with tqdm(batches, desc=label, unit="batch", leave=False, file=sys.stderr) as bar:
        yield from bar


@dataclass(frozen=True)
class Schedule:
    """Epochs ``start`` to ``epochs - 1`` of batches of ``batch_size``, ordered by ``seed``."""

    epochs: int
    batch_size: int
    seed: int
    start: int = 0


def fit(
    fw: Framework,
    model: Any,
    optimizer: Any,
    data: Dataset,
    schedule: Schedule,
    out: TextIO,
    history: History,
    progress: bool = True,
    on_epoch: Callable[[int], None] | None = None,
) -> None:
    """Train, appending each epoch to ``history`` and printing it as a line; ``on_epoch(done)``
    runs after each, ``done`` the number of epochs finished."""
    width = len(str(schedule.epochs))
    for epoch in range(schedule.start, schedule.epochs):
        began = time.perf_counter()
        model.train()
        total = 0.0
        batches = epoch_batches(len(data.x_train), schedule.batch_size, schedule.seed, epoch)
        label = f"{fw.name} epoch {epoch + 1}/{schedule.epochs}"
        for index in _progress(batches, label, progress):
            x, y = fw.tensor(data.x_train[index]), fw.tensor(data.y_train[index])
            loss = train_step(model, optimizer, fw.nn, x, y)
            total += loss.item() * len(index)
        history.loss.append(total / len(data.x_train))
        history.accuracy.append(accuracy(fw, model, data.x_test, data.y_test))
        history.seconds.append(time.perf_counter() - began)
        print(
            f"epoch {epoch + 1:{width}d}/{schedule.epochs}  "
            f"loss {history.loss[-1]:.4f}  test accuracy {100 * history.accuracy[-1]:5.1f}%  "
            f"{history.seconds[-1]:.2f} s",
            file=out,
            flush=True,
        )
        if on_epoch is not None:
            on_epoch(epoch + 1)
