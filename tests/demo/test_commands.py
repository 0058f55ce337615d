"""``python -m numbanorm``'s sub-commands: the example stays the default, demo and bench are
registered, and unknown commands are usage errors."""

import subprocess
import sys

from numbanorm.__main__ import COMMANDS, main


def test_example_is_the_default(capsys):
    assert main([]) == 0
    default = capsys.readouterr().out
    assert main(["example"]) == 0
    assert capsys.readouterr().out == default
    assert default.startswith("numbanorm 0.1.0: BatchNorm2d(3, eps=1e-05, momentum=0.1")
    assert "m.num_batches_tracked: 1" in default


def test_demo_is_registered_with_its_options(capsys):
    assert list(COMMANDS) == ["example", "demo", "bench"]
    assert main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
    assert main(["demo", "--help"]) == 0
    help_text = capsys.readouterr().out
    for option in ("--model", "--epochs", "--seed", "--device", "--data", "--save", "--load",
                   "--plot", "--compare-torch", "--optimizer", "--lr", "--batch-size"):  # fmt: skip
        assert option in help_text


def test_bench_is_registered_with_its_options(capsys):
    assert main(["bench", "--help"]) == 0
    help_text = capsys.readouterr().out
    for option in ("--samples", "--rounds", "--budget", "--norms", "--dtypes", "--layouts",
                   "--shapes", "--json"):  # fmt: skip
        assert option in help_text


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["train"]) == 2
    assert "invalid choice: 'train'" in capsys.readouterr().err


def test_python_dash_m_runs_the_demo_help():
    result = subprocess.run(
        [sys.executable, "-m", "numbanorm", "demo", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--compare-torch" in result.stdout
