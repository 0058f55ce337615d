"""``Parameter``: a Tensor that a Module registers as learnable (torch.nn.Parameter)."""

from typing import Any

import numpy as np

from numbanorm.tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad by default and is listed by ``Module.parameters()``."""

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(np.empty(0, np.float32) if data is None else data, requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
