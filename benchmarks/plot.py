"""Plot the raw samples of ``python -m numbanorm bench --json FILE`` as torch/numbanorm ratios:

    python -m numbanorm bench --json bench.json
    python -m benchmarks.plot bench.json docs/performance.png

One bar per case and phase (above 1: numbanorm is faster), on a log scale, with the line at 1.
"""

import json
import statistics
import sys


def ratios(raw: dict) -> dict[str, dict[str, float]]:
    """``{case: {phase: torch median / numbanorm median}}`` for the cases both libraries ran."""
    out: dict[str, dict[str, float]] = {}
    for key, entry in raw.items():
        library, norm, phase, dtype, layout = key.split("|")
        other = raw.get("|".join(("torch", norm, phase, dtype, layout)))
        if library != "numbanorm" or other is None:
            continue
        ours = statistics.median(entry["kept"] or entry["noisy"])
        theirs = statistics.median(other["kept"] or other["noisy"])
        out.setdefault(f"{norm} {dtype} {layout}", {})[phase] = theirs / ours
    return out


def plot(raw: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = ratios(raw)
    phases = ["train_forward", "eval_forward", "forward_backward"]
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(table)), 6))
    width = 0.8 / len(phases)
    for k, phase in enumerate(phases):
        xs = [i + (k - 1) * width for i in range(len(table))]
        ax.bar(xs, [row.get(phase, 0) for row in table.values()], width, label=phase)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("torch time / numbanorm time")
    ax.set_xticks(range(len(table)), list(table), fontsize=8, rotation=60, ha="right")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    with open(sys.argv[1]) as raw:
        plot(json.load(raw), sys.argv[2])


if __name__ == "__main__":
    main()
