"""``python -m numbanorm demo`` on a shortened schedule: accuracy, seeding, checkpoints, user data,
plots, the torch comparison, and the errors of bad options."""

import numpy as np
import pytest

import numbanorm
from numbanorm.demo import checkpoint
from tests.demo.conftest import epoch_lines, final_accuracy
from tests.oracle import TORCH_AVAILABLE

MLP = ("--model", "mlp")


def test_mlp_reaches_accuracy_and_reports_each_epoch(demo):
    status, out, _ = demo(*MLP, "--epochs", "3")
    assert status == 0
    assert out.startswith("numbanorm 0.1.0: mlp on digits (1438 training and 359 test samples")
    assert [line.split("  ")[0] for line in epoch_lines(out)] == [f"epoch {i}/3" for i in (1, 2, 3)]
    assert final_accuracy(out) >= 95.0


def test_cnn_is_the_default_and_reaches_accuracy(demo):
    status, out, _ = demo("--epochs", "3")
    assert status == 0
    assert out.startswith("numbanorm 0.1.0: cnn on digits (1438 training and 359 test samples")
    assert [line.split("  ")[0] for line in epoch_lines(out)] == [f"epoch {i}/3" for i in (1, 2, 3)]
    assert final_accuracy(out) >= 90.0


def test_same_seed_same_numbers_other_seed_other_numbers(demo):
    first = demo(*MLP, "--epochs", "2", "--seed", "5")[1]
    again = demo(*MLP, "--epochs", "2", "--seed", "5")[1]
    other = demo(*MLP, "--epochs", "2", "--seed", "6")[1]
    assert epoch_lines(first) == epoch_lines(again)
    assert epoch_lines(first) != epoch_lines(other)


def test_resuming_repeats_the_uninterrupted_run(demo, tmp_path):
    path = str(tmp_path / "run.ckpt")
    straight = demo(*MLP, "--epochs", "3")[1]
    demo(*MLP, "--epochs", "2", "--save", path)
    status, resumed, _ = demo("--epochs", "3", "--load", path, "--save", path)
    assert status == 0 and "resuming from" in resumed and "after epoch 2" in resumed
    assert epoch_lines(resumed) == epoch_lines(straight)[2:]
    saved = checkpoint.read(path)
    assert saved["epoch"] == 3 and saved["settings"]["model"] == "mlp"
    assert len(saved["history"]["loss"]) == 3
    # Nothing left to train: --load evaluates, and says the same accuracy.
    status, evaluated, _ = demo("--load", path, "--epochs", "3")
    assert status == 0 and epoch_lines(evaluated) == []
    assert final_accuracy(evaluated) == final_accuracy(straight)


def test_load_refuses_other_settings_and_foreign_files(demo, tmp_path):
    path = str(tmp_path / "run.ckpt")
    demo(*MLP, "--epochs", "1", "--save", path)
    foreign = tmp_path / "foreign.ckpt"
    numbanorm.save({"weights": np.zeros(3)}, foreign)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    cases = [
        (("--load", path, "--model", "cnn"), "trained with --model mlp, not cnn"),
        (("--load", path, "--seed", "1"), "trained with --seed 0, not 1"),
        (("--load", path, "--optimizer", "adam"), "trained with --optimizer sgd, not adam"),
        (("--load", str(foreign)), "not a checkpoint of `python -m numbanorm demo --save`"),
        (("--load", str(garbage)), "garbage.ckpt: not a numbanorm file"),
        (("--load", str(tmp_path / "missing.ckpt")), "missing.ckpt: no such file"),
    ]
    for options, message in cases:
        status, out, err = demo(*options)
        assert status == 2 and out == "", options
        assert err.startswith("python -m numbanorm demo: error: --load") and message in err


def test_load_refuses_data_of_another_shape(demo, digits_file, tmp_path):
    path = str(tmp_path / "run.ckpt")
    demo(*MLP, "--epochs", "1", "--save", path)
    x = np.random.default_rng(0).random((50, 10))
    status, _, err = demo("--load", path, "--data", digits_file(X=x, y=np.arange(50) % 10))
    assert status == 2
    assert "model takes samples of shape (1, 8, 8), the data has (10,)" in err


def test_user_data(demo, digits_file):
    status, out, _ = demo(*MLP, "--epochs", "2", "--data", digits_file())
    assert status == 0 and final_accuracy(out) >= 90.0
    assert "samples of shape (1, 8, 8), 10 classes" in out
    x = np.random.default_rng(0).standard_normal((60, 10))
    y = (x[:, 0] > 0).astype(int)
    status, out, _ = demo(*MLP, "--epochs", "1", "--data", digits_file("flat.npz", X=x, y=y))
    assert status == 0 and "samples of shape (10,), 2 classes" in out
    status, _, err = demo("--model", "cnn", "--data", digits_file("flat.npz", X=x, y=y))
    assert status == 2
    assert "--model cnn takes images" in err and "have shape (10,). Use --model mlp." in err
    status, _, err = demo(*MLP, "--data", digits_file("bad.npz", X=x))
    assert status == 2 and "needs arrays 'X' and 'y', missing ['y']" in err


def test_plot_writes_a_png(demo, tmp_path):
    path = tmp_path / "curves.png"
    status, out, _ = demo(*MLP, "--epochs", "2", "--plot", str(path))
    assert status == 0 and f"curves written to {path}" in out
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_compare_torch(demo, model):
    status, out, err = demo("--model", model, "--epochs", "2", "--compare-torch")
    if not TORCH_AVAILABLE:
        assert status == 2 and "--compare-torch trains the same model in torch" in err
        return
    assert status == 0
    lines = out.split("\n")
    header = next(i for i, line in enumerate(lines) if line.startswith("epoch      loss"))
    rows = [line.split() for line in lines[header + 1 : header + 3]]
    for row in rows:
        # epoch, numbanorm loss, accuracy, time, "s", torch loss, accuracy, time, "s"
        assert float(row[1]) == pytest.approx(float(row[5]), rel=1e-4)
        assert row[2] == row[6]
    assert "test accuracy: numbanorm" in out and "median epoch time: numbanorm" in out
    both = next(line for line in lines if line.startswith("test accuracy: numbanorm"))
    accuracies = [part.split()[-1] for part in both.split(",")]
    assert accuracies[0] == accuracies[1]
    assert final_accuracy(out) == float(accuracies[0].rstrip("%"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--device", "cuda"), "--device cuda: numbanorm runs only its normalization layers"),
        (("--epochs", "-1"), "argument --epochs: must be at least 0, got -1"),
        (("--batch-size", "0"), "argument --batch-size: must be at least 1, got 0"),
        (("--lr", "0"), "argument --lr: must be positive, got 0"),
        (("--model", "resnet"), "argument --model: invalid choice: 'resnet'"),
    ],
)
def test_bad_options(demo, options, message):
    status, out, err = demo(*options)
    assert status == 2 and out == "" and message in err


def test_progress_bars_on_stderr(capsys):
    from numbanorm.__main__ import main

    assert main(["demo", *MLP, "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "numbanorm epoch 1/1" in err and "batch" in err
