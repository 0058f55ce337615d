"""BatchNorm2d (torch.nn.modules.batchnorm): numbanorm against torch on the same inputs and
thread count, on a ResNet-sized activation (see ``numbanorm.bench.cases`` for the phases)."""

from numbanorm.bench.cases import NORMS

from .norms import NormMemoryBase, NormTimeBase, params_for


class BatchNorm2d(NormTimeBase):
    """nn.BatchNorm2d(64) with affine parameters and running statistics (torch's defaults)."""

    norm = NORMS["BatchNorm2d"]
    params = params_for(norm)


class BatchNorm2dMemory(NormMemoryBase):
    norm = NORMS["BatchNorm2d"]
    params = params_for(norm)
