"""``python -m numbanorm``: a short, self-contained BatchNorm2d example.

With no arguments (or ``python -m numbanorm example``) it builds ``BatchNorm2d(3)``, runs a training
forward pass on a fixed ``(2, 3, 2, 2)`` float32 input, back-propagates a fixed upstream gradient,
prints the output, the gradients and the running statistics, then runs an evaluation forward pass.
The same numbers come out of torch for the same input::

    m = torch.nn.BatchNorm2d(3); x = torch.tensor(INPUT, requires_grad=True)
    y = m(x); y.backward(torch.tensor(GRAD_OUTPUT))

``python -m numbanorm demo`` trains a small CNN on scikit-learn's handwritten digits without torch
(``numbanorm.demo``; ``python -m numbanorm demo --help`` lists its options).

``python -m numbanorm bench`` prints numbanorm's times against torch's on the standard shapes
(``numbanorm.bench``).

Sub-commands are registered in ``COMMANDS``; any other name is a usage error (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NamedTuple, TextIO

import numpy as np

import numbanorm as nb
from numbanorm import bench, demo

# Two images of three 2x2 channels; the channels have different means and spreads.
INPUT = np.array(
    [
        [
            [[0.5, -1.0], [2.0, 0.0]],
            [[1.5, 3.0], [-0.5, 1.0]],
            [[-2.0, 0.25], [0.75, -1.25]],
        ],
        [
            [[1.0, 0.5], [-1.5, 2.5]],
            [[0.0, -2.0], [2.5, 1.5]],
            [[3.0, -0.75], [1.25, 0.5]],
        ],
    ],
    dtype=np.float32,
)

# The upstream gradient dL/dy: -1.15, -1.05, ..., 1.15 in C order. Not constant per channel, so the
# input gradient is not zero.
GRAD_OUTPUT = ((np.arange(24, dtype=np.float32) - 11.5) / 10).reshape(2, 3, 2, 2)


def _section(out: TextIO, title: str) -> None:
    print(f"\n== {title} ==", file=out)


def _format(value: Any) -> str:
    array = np.asarray(value)
    options = {
        "formatter": {"float_kind": "{:7.4f}".format},
        "separator": ", ",
        "max_line_width": 200,
    }
    if array.ndim != 4:
        return np.array2string(array, **options)
    # One line per (sample, channel) plane, so an (N, C, H, W) tensor reads as a table.
    lines = []
    for n in range(array.shape[0]):
        for c in range(array.shape[1]):
            plane = np.array2string(array[n, c], **options).replace("\n", "")
            lines.append(f"n={n} c={c}  {plane}")
    return "\n".join(lines)


def _show(out: TextIO, label: str, value: Any) -> None:
    text = _format(value)
    if "\n" in text:
        print(f"{label}:", file=out)
        for line in text.split("\n"):
            print(f"    {line}", file=out)
    else:
        print(f"{label}: {text}", file=out)


def run_example(args: argparse.Namespace, out: TextIO) -> int:
    """Train forward, backward and eval forward of ``BatchNorm2d(3)`` on the fixed input."""
    m = nb.nn.BatchNorm2d(3)
    x = nb.tensor(INPUT, requires_grad=True)
    print(f"numbanorm {nb.__version__}: {m}", file=out)
    _show(out, f"input x {x.shape}", x)

    _section(out, "training forward: y = m(x), normalized with the batch's statistics")
    y = m(x)
    _show(out, "y", y)

    _section(out, "backward: y.backward(dy)")
    y.backward(nb.tensor(GRAD_OUTPUT))
    _show(out, "dy", GRAD_OUTPUT)
    _show(out, "x.grad", x.grad)
    _show(out, "m.weight.grad", m.weight.grad)
    _show(out, "m.bias.grad", m.bias.grad)

    _section(out, "buffers after one training step (momentum=0.1; running_var is unbiased)")
    _show(out, "m.running_mean", m.running_mean)
    _show(out, "m.running_var", m.running_var)
    print(f"m.num_batches_tracked: {int(m.num_batches_tracked.item())}", file=out)
    print(f"state_dict keys: {list(m.state_dict())}", file=out)

    _section(out, "eval forward: m.eval(); m(x), normalized with the running statistics")
    m.eval()
    with nb.no_grad():
        _show(out, "y", m(x))
    return 0


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A sub-command without options."""


class Command(NamedTuple):
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, TextIO], int]  # returns the exit status


# Add new sub-commands here.
COMMANDS: dict[str, Command] = {
    "example": Command("run the BatchNorm2d example (the default)", _no_arguments, run_example),
    "demo": Command(
        "train a small CNN on scikit-learn's handwritten digits, without torch",
        demo.add_arguments,
        demo.run,
    ),
    "bench": Command(
        "time numbanorm against torch (when installed) on the standard shapes",
        bench.add_arguments,
        bench.run,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m numbanorm",
        description="numbanorm: PyTorch's normalization layers on Numba kernels. "
        "With no command, runs a short BatchNorm2d example.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.add_arguments(
            commands.add_parser(name, help=command.help, description=command.help)
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m numbanorm [COMMAND]``; return the exit status (2 on a usage error)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error such as an unknown command (2)
        return exc.code if isinstance(exc.code, int) else 2
    return COMMANDS[args.command or "example"].run(args, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
