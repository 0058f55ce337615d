"""numbanorm.manual_seed and the module generator that initializations and dropout draw from."""

import numpy as np
import pytest

import numbanorm
from numbanorm import random as nb_random
from tests.oracle import TORCH_AVAILABLE


def test_manual_seed_returns_the_module_generator():
    generator = numbanorm.manual_seed(42)
    assert isinstance(generator, np.random.Generator)
    assert generator is nb_random.default_generator()
    assert nb_random.initial_seed() == 42


def test_same_seed_same_stream():
    first = numbanorm.manual_seed(5).random(8)
    numbanorm.manual_seed(5)
    np.testing.assert_array_equal(nb_random.default_generator().random(8), first)
    numbanorm.manual_seed(6)
    assert not np.array_equal(nb_random.default_generator().random(8), first)


def test_stream_is_numpys_pcg64_for_the_seed():
    """Documented: numpy's stream for the seed, the same distributions as torch, not its numbers."""
    numbanorm.manual_seed(123)
    np.testing.assert_array_equal(
        nb_random.default_generator().normal(size=4), np.random.default_rng(123).normal(size=4)
    )


def test_reseeding_replaces_the_generator_for_later_draws():
    old = numbanorm.manual_seed(1)
    new = numbanorm.manual_seed(2)
    assert nb_random.default_generator() is new and old is not new


@pytest.mark.parametrize("seed", [0, 2**64 - 1, np.int64(9)])
def test_accepts_torchs_seed_range(seed):
    numbanorm.manual_seed(seed)
    assert nb_random.initial_seed() == int(seed)


def test_negative_seed_wraps_like_torch():
    numbanorm.manual_seed(-1)
    assert nb_random.initial_seed() == 2**64 - 1


@pytest.mark.parametrize("seed", [2**64, -(2**63) - 1])
def test_out_of_range_seed(seed):
    with pytest.raises(ValueError, match=r"^Overflow when unpacking long long$"):
        numbanorm.manual_seed(seed)
    if TORCH_AVAILABLE:
        import torch

        with pytest.raises(ValueError, match=r"^Overflow when unpacking long long$"):
            torch.manual_seed(seed)


@pytest.mark.parametrize("seed", [1.5, "3", None, True])
def test_non_integer_seed(seed):
    with pytest.raises(TypeError, match="manual_seed expected an int seed"):
        numbanorm.manual_seed(seed)


def test_seed_draws_a_fresh_seed_and_reports_it():
    value = nb_random.seed()
    assert nb_random.initial_seed() == value
    drawn = nb_random.default_generator().random(3)
    numbanorm.manual_seed(value)
    np.testing.assert_array_equal(nb_random.default_generator().random(3), drawn)
