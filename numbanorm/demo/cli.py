"""``python -m numbanorm demo``: the options, and the run they describe."""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any, TextIO

import numbanorm
from numbanorm.demo import checkpoint, compare_torch, plot
from numbanorm.demo.data import Dataset, load
from numbanorm.demo.errors import DemoError
from numbanorm.demo.models import MODELS, build
from numbanorm.demo.train import (
    NUMBANORM,
    OPTIMIZERS,
    History,
    Schedule,
    accuracy,
    fit,
    make_optimizer,
)

DEFAULTS = {"model": "cnn", "seed": 0, "optimizer": "sgd", "lr": None, "batch_size": 64}
EPOCHS = 10

NO_CUDA = (
    "--device cuda: numbanorm runs only its normalization layers on CUDA, and the demo's models "
    "also need convolution, linear layers, pooling and an optimizer; use --device cpu"
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options (see the README's "Train a model")."""
    add = parser.add_argument
    add("--model", choices=sorted(MODELS), help="cnn (default), mlp or mlp-layernorm")
    add(
        "--epochs",
        type=_non_negative_int,
        default=EPOCHS,
        help=f"train until this many epochs are done (default {EPOCHS}); with --load the "
        "checkpoint's epochs count, so a number not above them only evaluates",
    )
    add("--seed", type=int, help="seeds the weights, the test split and the batch order (0)")
    add("--device", choices=["cpu", "cuda"], default="cpu", help="cpu (cuda: not for the demo)")
    add(
        "--data",
        metavar="FILE.npz",
        help="train on arrays X (N, D), (N, H, W) or (N, C, H, W) and y (N,) instead of "
        "scikit-learn's digits",
    )
    add("--save", metavar="PATH", help="write model and optimizer state after every epoch")
    add("--load", metavar="PATH", help="resume from a --save checkpoint, or evaluate it")
    add("--plot", metavar="PNG", help="draw loss and accuracy curves into this file")
    add(
        "--compare-torch",
        action="store_true",
        help="also train the same model from the same weights in torch, and compare",
    )
    add(
        "--optimizer",
        choices=sorted(OPTIMIZERS),
        help="sgd (default; momentum 0.9, weight decay 5e-4) or adam (weight decay 1e-4)",
    )
    add("--lr", type=_positive_float, help="learning rate (default 0.05 for sgd, 1e-3 for adam)")
    add("--batch-size", type=_positive_int, help="samples per step (default 64)")
    add("--no-progress", action="store_true", help="no progress bars")


def _check_options(args: argparse.Namespace) -> None:
    if args.device == "cuda":
        raise DemoError(NO_CUDA)
    if args.compare_torch:
        compare_torch.framework()  # before training: torch may be missing
    if args.plot is not None and not plot.available():
        raise DemoError(plot.MISSING)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Train (or resume, or evaluate) as ``args`` say; 2 and a message on bad options or files."""
    try:
        return _run(args, out)
    except DemoError as error:
        print(f"python -m numbanorm demo: error: {error}", file=sys.stderr)
        return 2


def _setup(args: argparse.Namespace) -> tuple[dict, Dataset, dict | None]:
    """The settings (options, else the checkpoint's, else defaults), the data and the checkpoint."""
    saved = None if args.load is None else checkpoint.read(args.load)
    given = {key: getattr(args, key) for key in DEFAULTS}
    settings = checkpoint.resolve(given, DEFAULTS, saved)
    if saved is None:
        return settings, load(args.data, settings["seed"]), None
    data = load(args.data, settings["seed"], saved["data"]["scale"])
    checkpoint.check_data(saved, data.sample_shape, data.classes)
    return settings, data, saved


def _save(
    path: str,
    settings: dict,
    data: Dataset,
    epoch: int,
    history: History,
    model: Any,
    optimizer: Any,
) -> None:
    about = {"scale": data.scale, "classes": data.classes, "sample_shape": list(data.sample_shape)}
    checkpoint.write(path, settings, about, epoch, history.as_dict(), model, optimizer)


def _run(args: argparse.Namespace, out: TextIO) -> int:
    _check_options(args)
    settings, data, saved = _setup(args)
    numbanorm.manual_seed(settings["seed"])
    model = build(settings["model"], NUMBANORM.nn, data.sample_shape, data.num_classes)
    optimizer = make_optimizer(
        NUMBANORM.optim, model.parameters(), settings["optimizer"], settings["lr"]
    )
    history, start = History(), 0
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        history = History(*(list(saved["history"][key]) for key in History().as_dict()))
        start = saved["epoch"]
    initial = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()))
    schedule = Schedule(max(args.epochs, start), settings["batch_size"], settings["seed"], start)

    print(
        f"numbanorm {numbanorm.__version__}: {settings['model']} on {data.source} "
        f"({len(data.x_train)} training and {len(data.x_test)} test samples of shape "
        f"{data.sample_shape}, {data.num_classes} classes), {settings['optimizer']} "
        f"lr {optimizer.param_groups[0]['lr']:g}, batch size {settings['batch_size']}, "
        f"seed {settings['seed']}",
        file=out,
    )
    if saved is not None:
        print(f"resuming from {args.load} after epoch {start}", file=out)

    def save(epoch: int) -> None:
        if args.save is not None:
            _save(args.save, settings, data, epoch, history, model, optimizer)

    progress = not args.no_progress
    fit(NUMBANORM, model, optimizer, data, schedule, out, history, progress, save)
    trained = History(*(values[start:] for values in history.as_dict().values()))
    if trained.loss:
        final = trained.accuracy[-1]
    else:  # nothing left to train: evaluate the checkpoint
        final = accuracy(NUMBANORM, model, data.x_test, data.y_test)
        save(start)
    curves = {"numbanorm": history}
    if args.compare_torch and trained.loss:
        theirs = compare_torch.train(settings, data, *initial, schedule, out, progress)
        compare_torch.report(trained, theirs, start, out)
        curves = {"numbanorm": trained, "torch": theirs}
    if args.plot is not None:
        plot.save(args.plot, curves, first_epoch=start + 1 if len(curves) > 1 else 1)
        print(f"curves written to {args.plot}", file=out)
    print(f"test accuracy: {100 * final:.1f}%", file=out)
    return 0
