"""``--plot curves.png``: training loss and test accuracy per epoch, with matplotlib."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from numbanorm.demo.train import History

MISSING = '--plot draws with matplotlib, which is not installed: pip install "numbanorm[demo]"'


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def save(path: str | Path, histories: dict[str, History], first_epoch: int = 1) -> None:
    """One line per run in each of two panels (loss, accuracy), written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    # Dashed over solid: runs that agree stay both visible.
    for (name, history), style in zip(histories.items(), ("o-", "x--"), strict=False):
        epochs = range(first_epoch, first_epoch + len(history.loss))
        loss_axes.plot(epochs, history.loss, style, label=name)
        accuracy_axes.plot(epochs, [100 * a for a in history.accuracy], style, label=name)
    loss_axes.set(xlabel="epoch", ylabel="training loss (cross-entropy)", yscale="log")
    accuracy_axes.set(xlabel="epoch", ylabel="test accuracy (%)")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
    figure.savefig(path, dpi=100)
    plt.close(figure)
