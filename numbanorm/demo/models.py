"""The demo's models, written once against torch.nn's API: ``nn`` is ``numbanorm.nn`` or
``torch.nn``, so ``--compare-torch`` builds the same architecture with the same state_dict keys.

- ``cnn``: two 3x3 convolutions, each followed by BatchNorm2d and ReLU, max pooling between them,
  adaptive average pooling to 2x2, and a linear classifier. Takes images (C, H, W), H, W >= 2.
- ``mlp``: Flatten, then two hidden Linear(., 128) + BatchNorm1d + ReLU blocks, then the linear
  classifier.
- ``mlp-layernorm``: the same MLP with LayerNorm(128) in place of BatchNorm1d.

Convolutions and linear layers that feed a BatchNorm have no bias: BatchNorm subtracts it again,
so its gradient is zero but for rounding, and optimizers like Adam, which normalize each
gradient, would turn that rounding into steps of the full learning rate.
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod
from typing import Any

from numbanorm.demo.errors import DemoError

HIDDEN = 128
CHANNELS = (32, 64)


class ModelError(DemoError):
    """A model that cannot take the data's samples."""


def cnn(nn: Any, sample_shape: tuple[int, ...], num_classes: int) -> Any:
    """Conv-BN-ReLU, max pool, Conv-BN-ReLU, adaptive average pool, linear."""
    if len(sample_shape) != 3 or min(sample_shape[1:]) < 2:
        raise ModelError(
            f"--model cnn takes images of at least 2x2 pixels: X of shape (N, H, W) or "
            f"(N, C, H, W), or (N, D) with D a square number; these samples have shape "
            f"{sample_shape}. Use --model mlp."
        )
    first, second = CHANNELS
    return nn.Sequential(
        nn.Conv2d(sample_shape[0], first, 3, padding=1, bias=False),
        nn.BatchNorm2d(first),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(first, second, 3, padding=1, bias=False),
        nn.BatchNorm2d(second),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(second * 4, num_classes),
    )


def _mlp(
    nn: Any, sample_shape: tuple[int, ...], num_classes: int, norm: Callable, bias: bool
) -> Any:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(prod(sample_shape), HIDDEN, bias=bias),
        norm(HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN, bias=bias),
        norm(HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, num_classes),
    )


def mlp(nn: Any, sample_shape: tuple[int, ...], num_classes: int) -> Any:
    """Linear-BatchNorm1d-ReLU twice, then linear."""
    return _mlp(nn, sample_shape, num_classes, nn.BatchNorm1d, bias=False)


def mlp_layernorm(nn: Any, sample_shape: tuple[int, ...], num_classes: int) -> Any:
    """Linear-LayerNorm-ReLU twice, then linear."""
    return _mlp(nn, sample_shape, num_classes, nn.LayerNorm, bias=True)


MODELS: dict[str, Callable[[Any, tuple[int, ...], int], Any]] = {
    "cnn": cnn,
    "mlp": mlp,
    "mlp-layernorm": mlp_layernorm,
}


def build(name: str, nn: Any, sample_shape: tuple[int, ...], num_classes: int) -> Any:
    """Model ``name`` built from ``nn``'s layers for samples of ``sample_shape``."""
    return MODELS[name](nn, tuple(sample_shape), num_classes)
