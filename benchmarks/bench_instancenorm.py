"""InstanceNorm2d (torch.nn.modules.instancenorm): numbanorm against torch on the same inputs and
thread count (see ``numbanorm.bench.cases`` for the phases)."""

from numbanorm.bench.cases import NORMS

from .norms import NormMemoryBase, NormTimeBase, params_for


class InstanceNorm2d(NormTimeBase):
    """nn.InstanceNorm2d(64) with torch's defaults: no affine parameters, no running statistics,
    so eval forward normalizes with the input's own statistics too."""

    norm = NORMS["InstanceNorm2d"]
    params = params_for(norm)


class InstanceNorm2dMemory(NormMemoryBase):
    norm = NORMS["InstanceNorm2d"]
    params = params_for(norm)
