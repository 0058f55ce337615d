"""BatchNorm1d/2d/3d and their lazy forms (torch.nn.modules.batchnorm)."""

from __future__ import annotations

from typing import Any

import numpy as np

from numbanorm.dispatch import backend, device_of
from numbanorm.nn import functional as F
from numbanorm.nn.functional.checks import as_tensor
from numbanorm.nn.modules.lazy import LazyModuleMixin
from numbanorm.nn.modules.module import Module, assign_data
from numbanorm.nn.parameter import Parameter, UninitializedBuffer, UninitializedParameter
from numbanorm.tensor import Tensor
from numbanorm.types import DEFAULT_DTYPE, as_dtype, device_type


def _batch_counter(device: Any) -> Tensor:
    """``num_batches_tracked``: an int64 0 on ``device``, as torch makes it."""
    return Tensor(backend(device_type(device)).full((), 0, np.int64))


class _NormBase(Module):
    """Parameters, buffers and resets shared by BatchNorm and InstanceNorm (torch's _NormBase)."""

    _version = 2

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dtype = DEFAULT_DTYPE if dtype is None else as_dtype(dtype)
        xp = backend(device_type(device))

        def new(value: float, requires_grad: bool = False) -> Tensor:
            cls = Parameter if requires_grad else Tensor
            return cls(xp.full(num_features, value, dtype=dtype), requires_grad)

        if affine:
            self.weight = new(1.0, requires_grad=True)
            if bias:
                self.bias = new(0.0, requires_grad=True)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", new(0.0))
            self.register_buffer("running_var", new(1.0))
            self.register_buffer("num_batches_tracked", _batch_counter(device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean to 0, running variance to 1, ``num_batches_tracked`` to 0."""
        if self.track_running_stats:
            assign_data(self.running_mean, 0)
            assign_data(self.running_var, 1)
            assign_data(self.num_batches_tracked, 0)

    def reset_parameters(self) -> None:
        """Reset running statistics, weight to 1 and bias to 0."""
        self.reset_running_stats()
        if self.affine:
            assign_data(self.weight, 1)
            if self.bias is not None:
                assign_data(self.bias, 0)

    def _check_input_dim(self, input: Tensor) -> None:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def _load_old_version(
        self, state: dict[str, Any], prefix: str, version: int | None, errors: list[str]
    ) -> None:
        # Checkpoints from before version 2 have no num_batches_tracked: keep the current count.
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state:
            state[key] = backend("cpu").asarray(self.num_batches_tracked.data).copy()


def _materialize(name: str, param: Any, size: int) -> None:
    if not isinstance(param, UninitializedParameter):
        raise AssertionError(f"self.{name} must be an UninitializedParameter")
    param.materialize((size,))


class _LazyNormBase(LazyModuleMixin, _NormBase):
    """A norm whose ``num_features`` comes from its first input's ``shape[1]`` (torch's
    _LazyNormBase); until then its parameters and running statistics are uninitialized."""

    def __init__(
        self,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        # As torch: built without parameters or buffers, which get uninitialized ones below.
        super().__init__(0, eps, momentum, False, False, device, dtype, bias=False)
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = UninitializedParameter(device=device, dtype=dtype)
            if bias:
                self.bias = UninitializedParameter(device=device, dtype=dtype)
        if track_running_stats:
            self.running_mean = UninitializedBuffer(device=device, dtype=dtype)
            self.running_var = UninitializedBuffer(device=device, dtype=dtype)
            self.num_batches_tracked = _batch_counter(device)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.num_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input: Any) -> None:
        """``num_features = input.shape[1]``; parameters and buffers of that size, reset."""
        if not self.has_uninitialized_params():
            return
        self.num_features = input.shape[1]
        if self.affine:
            _materialize("weight", self.weight, self.num_features)
            if self.bias is not None:
                _materialize("bias", self.bias, self.num_features)
        if self.track_running_stats:
            self.running_mean.materialize((self.num_features,))
            self.running_var.materialize((self.num_features,))
        self.reset_parameters()


class _BatchNorm(_NormBase):
    def forward(self, input: Tensor) -> Tensor:
        """Normalize ``input`` per channel; in training, update the running statistics."""
        input = as_tensor(input)
        self._check_input_dim(input)
        weight, bias, running_mean, running_var, counter = self._members(
            "weight", "bias", "running_mean", "running_var", "num_batches_tracked"
        )
        tracking = self.training and self.track_running_stats
        factor = 0.0 if self.momentum is None else self.momentum
        if tracking and counter is not None and self.momentum is None:
            factor = 1.0 / float(counter.item() + 1)
        use_batch_stats = self.training or (running_mean is None and running_var is None)
        buffers_used = not self.training or self.track_running_stats
        output = F.batch_norm(
            input,
            running_mean if buffers_used else None,
            running_var if buffers_used else None,
            weight,
            bias,
            use_batch_stats,
            factor,
            self.eps,
        )
        # torch bumps the counter before validating; here a failed call changes nothing.
        if tracking and counter is not None:
            backend(device_of(counter.data)).increment(counter.data)
        return output


class BatchNorm1d(_BatchNorm):
    """Batch normalization over ``(N, C)`` or ``(N, C, L)`` input (torch.nn.BatchNorm1d)."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")


class BatchNorm2d(_BatchNorm):
    """Batch normalization over a 4-D ``(N, C, H, W)`` input (torch.nn.BatchNorm2d)."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() != 4:
            raise ValueError(f"expected 4D input (got {input.dim()}D input)")


class BatchNorm3d(_BatchNorm):
    """Batch normalization over a 5-D ``(N, C, D, H, W)`` input (torch.nn.BatchNorm3d)."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() != 5:
            raise ValueError(f"expected 5D input (got {input.dim()}D input)")


class LazyBatchNorm1d(_LazyNormBase, _BatchNorm):
    """BatchNorm1d whose ``num_features`` is its first input's ``shape[1]``
    (torch.nn.LazyBatchNorm1d)."""

    cls_to_become = BatchNorm1d

    _check_input_dim = BatchNorm1d._check_input_dim


class LazyBatchNorm2d(_LazyNormBase, _BatchNorm):
    """BatchNorm2d whose ``num_features`` is its first input's ``shape[1]``
    (torch.nn.LazyBatchNorm2d)."""

    cls_to_become = BatchNorm2d

    _check_input_dim = BatchNorm2d._check_input_dim


class LazyBatchNorm3d(_LazyNormBase, _BatchNorm):
    """BatchNorm3d whose ``num_features`` is its first input's ``shape[1]``
    (torch.nn.LazyBatchNorm3d)."""

    cls_to_become = BatchNorm3d

    _check_input_dim = BatchNorm3d._check_input_dim
