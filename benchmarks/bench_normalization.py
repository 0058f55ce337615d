"""The norms of torch.nn.modules.normalization: GroupNorm, LayerNorm, RMSNorm and
LocalResponseNorm, numbanorm against torch on the same inputs and thread count (see
``numbanorm.bench.cases`` for the phases). None of them keeps running statistics, so eval forward is
the training computation under ``no_grad``."""

from numbanorm.bench.cases import NORMS

from .norms import NormMemoryBase, NormTimeBase, params_for


class GroupNorm(NormTimeBase):
    """nn.GroupNorm(32, 64) on a ResNet-sized activation, NCHW and channels-last."""

    norm = NORMS["GroupNorm"]
    params = params_for(norm)


class GroupNormMemory(NormMemoryBase):
    norm = NORMS["GroupNorm"]
    params = params_for(norm)


class LayerNorm(NormTimeBase):
    """nn.LayerNorm(768) on a transformer's (tokens, features) activation."""

    norm = NORMS["LayerNorm"]
    params = params_for(norm)


class LayerNormMemory(NormMemoryBase):
    norm = NORMS["LayerNorm"]
    params = params_for(norm)


class RMSNorm(NormTimeBase):
    """nn.RMSNorm(768) on a transformer's (tokens, features) activation."""

    norm = NORMS["RMSNorm"]
    params = params_for(norm)


class RMSNormMemory(NormMemoryBase):
    norm = NORMS["RMSNorm"]
    params = params_for(norm)


class LocalResponseNorm(NormTimeBase):
    """nn.LocalResponseNorm(5) on an AlexNet-style activation, NCHW and channels-last."""

    norm = NORMS["LocalResponseNorm"]
    params = params_for(norm)


class LocalResponseNormMemory(NormMemoryBase):
    norm = NORMS["LocalResponseNorm"]
    params = params_for(norm)
