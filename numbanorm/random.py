"""The module-level random generator (torch.manual_seed / torch.default_generator's role).

Initializations (``numbanorm.nn.init``) and dropout draw from one ``numpy.random.Generator``.
``numbanorm.manual_seed(seed)`` reseeds it, so the same seed gives the same numbers again.

The numbers are *not* torch's: the distributions are the same (uniform, normal with the same
bounds and standard deviations), but the stream comes from numpy's PCG64 bit generator, not from
torch's Mersenne Twister / Philox, so ``manual_seed(0)`` here and ``torch.manual_seed(0)`` give
different values.
"""

from __future__ import annotations

import numpy as np

__all__ = ["default_generator", "initial_seed", "manual_seed", "seed"]

_INITIAL_SEED = int(np.random.SeedSequence().entropy % 2**64)
_state: dict = {"seed": _INITIAL_SEED, "generator": np.random.default_rng(_INITIAL_SEED)}


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed expected an int seed, got {type(seed).__name__}")
    seed = int(seed)
    # torch accepts [-2**63, 2**64) and maps negatives onto uint64: do the same.
    if not -(2**63) <= seed < 2**64:
        raise ValueError("Overflow when unpacking long long")
    return seed % 2**64


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the module generator with ``seed`` and return it (torch.manual_seed)."""
    value = _check_seed(seed)
    _state["seed"] = value
    _state["generator"] = np.random.default_rng(value)
    return _state["generator"]


def seed() -> int:
    """Reseed the module generator from the operating system's entropy; return the seed used."""
    value = int(np.random.SeedSequence().entropy % 2**64)
    manual_seed(value)
    return value


def initial_seed() -> int:
    """The seed given to the last ``manual_seed``/``seed`` (a random one at import)."""
    return _state["seed"]


def default_generator() -> np.random.Generator:
    """The module generator that initializations and dropout draw from."""
    return _state["generator"]
