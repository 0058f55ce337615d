"""InstanceNorm1d/2d/3d and their lazy forms (torch.nn.modules.instancenorm)."""

from __future__ import annotations

import warnings
from typing import Any

from numbanorm.nn import functional as F
from numbanorm.nn.functional.checks import as_tensor
from numbanorm.nn.modules.batchnorm import _LazyNormBase, _NormBase
from numbanorm.tensor import Tensor


class _InstanceNorm(_NormBase):
    """Per-sample, per-channel normalization (torch's _InstanceNorm): no affine parameters and
    no running statistics unless asked for."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )

    def _check_input_dim(self, input: Tensor) -> None:
        raise NotImplementedError

    def _get_no_batch_dim(self) -> int:
        raise NotImplementedError

    def _apply_instance_norm(self, input: Tensor) -> Tensor:
        # As torch: momentum=None is 0 (running statistics then never move), and the counter
        # num_batches_tracked is never bumped.
        return F.instance_norm(
            input,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            self.momentum if self.momentum is not None else 0.0,
            self.eps,
        )

    def _load_old_version(
        self, state: dict[str, Any], prefix: str, version: int | None, errors: list[str]
    ) -> None:
        # Checkpoints from before version 1 (torch 0.4) hold running statistics that an
        # instance norm without track_running_stats no longer has: refuse them, and say why.
        if version is None and not self.track_running_stats:
            keys = [
                prefix + name for name in ("running_mean", "running_var") if prefix + name in state
            ]
            if keys:
                klass = type(self).__name__
                names = " and ".join(f'"{k}"' for k in keys)
                errors.append(
                    f"Unexpected running stats buffer(s) {names} for {klass} with "
                    "track_running_stats=False. If state_dict is a checkpoint saved before "
                    f"0.4.0, this may be expected because {klass} does not track running stats "
                    "by default since 0.4.0. Please remove these keys from state_dict. If the "
                    "running stats are actually needed, instead set track_running_stats=True in "
                    f"{klass} to enable them. See the documentation of {klass} for details."
                )
                for key in keys:
                    del state[key]
        super()._load_old_version(state, prefix, version, errors)

    def forward(self, input: Tensor) -> Tensor:
        """Normalize each sample's channels; unbatched input is taken as a batch of one."""
        input = as_tensor(input)
        self._check_input_dim(input)
        feature_dim = input.dim() - self._get_no_batch_dim()
        if input.size(feature_dim) != self.num_features:
            if self.affine:
                raise ValueError(
                    f"expected input's size at dim={feature_dim} to match num_features"
                    f" ({self.num_features}), but got: {input.size(feature_dim)}."
                )
            warnings.warn(
                f"input's size at dim={feature_dim} does not match num_features. You can "
                "silence this warning by not passing in num_features, which is not used "
                "because affine=False",
                stacklevel=2,
            )
        if input.dim() == self._get_no_batch_dim():
            output = self._apply_instance_norm(input.reshape(1, *input.shape))
            return output.reshape(output.shape[1:])
        return self._apply_instance_norm(input)


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization over ``(N, C, L)`` or unbatched ``(C, L)`` input
    (torch.nn.InstanceNorm1d)."""

    def _get_no_batch_dim(self) -> int:
        return 2

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization over ``(N, C, H, W)`` or unbatched ``(C, H, W)`` input
    (torch.nn.InstanceNorm2d)."""

    def _get_no_batch_dim(self) -> int:
        return 3

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in (3, 4):
            raise ValueError(f"expected 3D or 4D input (got {input.dim()}D input)")


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization over ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)`` input
    (torch.nn.InstanceNorm3d)."""

    def _get_no_batch_dim(self) -> int:
        return 4

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in (4, 5):
            raise ValueError(f"expected 4D or 5D input (got {input.dim()}D input)")


class LazyInstanceNorm1d(_LazyNormBase, _InstanceNorm):
    """InstanceNorm1d whose ``num_features`` is its first input's ``shape[1]``
    (torch.nn.LazyInstanceNorm1d; as there, ``affine`` and ``track_running_stats`` default to
    True, and an unbatched first input gives its length, not its channels)."""

    cls_to_become = InstanceNorm1d
    _get_no_batch_dim = InstanceNorm1d._get_no_batch_dim
    _check_input_dim = InstanceNorm1d._check_input_dim


class LazyInstanceNorm2d(_LazyNormBase, _InstanceNorm):
    """InstanceNorm2d whose ``num_features`` is its first input's ``shape[1]``
    (torch.nn.LazyInstanceNorm2d, with its defaults: see LazyInstanceNorm1d)."""

    cls_to_become = InstanceNorm2d
    _get_no_batch_dim = InstanceNorm2d._get_no_batch_dim
    _check_input_dim = InstanceNorm2d._check_input_dim


class LazyInstanceNorm3d(_LazyNormBase, _InstanceNorm):
    """InstanceNorm3d whose ``num_features`` is its first input's ``shape[1]``
    (torch.nn.LazyInstanceNorm3d, with its defaults: see LazyInstanceNorm1d)."""

    cls_to_become = InstanceNorm3d
    _get_no_batch_dim = InstanceNorm3d._get_no_batch_dim
    _check_input_dim = InstanceNorm3d._check_input_dim
