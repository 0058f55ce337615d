"""The demo's models trained 20 steps in numbanorm and in torch from the same initial weights, on
the same batches (no dropout in these models): the same losses, parameters and evaluation logits
within float64 tolerance, for SGD (momentum, weight decay) and Adam (weight decay).

The steps run in float64: training is chaotic, and float32's rounding differences (torch's own
differ from one CPU to another, by its convolution kernels' choice of instructions) grow from one
ulp to 1e-3 within 20 SGD steps, while float64's stay far below its tolerance."""

from functools import cache
from math import prod

import numpy as np
import pytest

import numbanorm
from numbanorm.demo import data, models
from numbanorm.demo.train import make_optimizer, train_step
from tests.oracle import Cases, deterministic

CASES = Cases("demo_equivalence")

STEPS = 20
BATCH = 32
SEED = 0


@cache
def _digits() -> data.Dataset:
    return data.load(None, SEED)


def initial_state(model: str) -> dict[str, np.ndarray]:
    """The model's state dict with every Linear/Conv2d weight and bias drawn from the fixed hash
    (uniform within torch's default bounds, +-1/sqrt(fan_in)); norms keep their defaults."""
    digits = _digits()
    state = models.build(model, numbanorm.nn, digits.sample_shape, digits.num_classes).state_dict()
    for i, (key, value) in enumerate(state.items()):
        prefix, _, name = key.rpartition(".")
        weight = state[f"{prefix}.weight"]
        if name in ("weight", "bias") and weight.ndim >= 2:
            bound = 1 / np.sqrt(prod(weight.shape[1:]))
            state[key] = deterministic(value.shape, 1000 + i, low=-bound, high=bound)
    return state


def steps_case(model: str, optimizer: str):
    def case(lib):
        digits = _digits()
        network = models.build(model, lib.nn, digits.sample_shape, digits.num_classes).double()
        network.load_state_dict({k: lib.tensor(v) for k, v in initial_state(model).items()})
        opt = make_optimizer(lib.optim, network.parameters(), optimizer, None)
        losses = []
        for step in range(STEPS):
            batch = slice(step * BATCH, (step + 1) * BATCH)
            x = lib.tensor(digits.x_train[batch].astype(np.float64))
            y = lib.tensor(digits.y_train[batch])
            losses.append(lib.numpy(train_step(network, opt, lib.nn, x, y)))
        network.eval()
        logits = network(lib.tensor(digits.x_test[:64].astype(np.float64)))
        result = {"losses": np.stack(losses), "eval_logits": lib.numpy(logits)}
        for key, value in network.state_dict().items():
            result[f"state.{key}"] = lib.numpy(value) if hasattr(value, "detach") else value
        return result

    return case


NAMES = []
for _model in ("mlp", "cnn"):
    for _optimizer in ("sgd", "adam"):
        NAMES.append(f"{_model}-{_optimizer}")
        CASES.add(NAMES[-1], steps_case(_model, _optimizer))


@pytest.mark.parametrize("name", NAMES)
def test_twenty_steps_match_torch(name):
    CASES.check(name)
