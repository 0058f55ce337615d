"""BatchNorm1d/2d/3d modules against torch: train steps, running stats, eval, gradients."""

import itertools

import numpy as np
import pytest

from tests.oracle import Cases, channels_last, deterministic

CASES = Cases("batchnorm_module")

SHAPES = {
    "BatchNorm1d-2D": (6, 3),
    "BatchNorm1d-3D": (4, 3, 5),
    "BatchNorm2d": (3, 4, 3, 5),
    "BatchNorm3d": (2, 3, 2, 3, 4),
}


def _is_channels_last(lib, tensor) -> bool:
    if lib.name == "torch":
        fmt = lib.torch.channels_last if tensor.dim() == 4 else lib.torch.channels_last_3d
        return tensor.is_contiguous(memory_format=fmt)
    moved = np.moveaxis(tensor.data, 1, -1)
    return moved.flags.c_contiguous


def train_then_eval(lib, kind, dtype, layout, affine, bias, track, momentum, input_dtype=None):
    """Three training steps (forward, backward) on shifted data, then an eval step.

    ``input_dtype`` other than the module's ``dtype`` is torch's mixed precision (float16 input,
    float32 parameters).
    """
    shape = SHAPES[kind]
    channels = shape[1]
    module = getattr(lib.nn, kind.split("-")[0])(
        channels,
        momentum=momentum,
        affine=affine,
        track_running_stats=track,
        dtype=lib.dtype(dtype),
        bias=bias,
    )
    input_dtype = input_dtype or dtype
    if affine:
        values = {"weight": deterministic((channels,), 7, dtype, 0.5, 1.5)}
        if bias:
            values["bias"] = deterministic((channels,), 8, dtype)
        module.load_state_dict({k: lib.tensor(v) for k, v in values.items()}, strict=False)
    out = {}
    for step in range(4):
        if step == 3:
            module.eval()
        array = (deterministic(shape, step) * (step + 1) + 3 * step).astype(input_dtype)
        if layout == "channels_last":
            array = channels_last(array)
        x = lib.tensor(array, requires_grad=True)
        y = module(x)
        y.backward(lib.tensor(deterministic(shape, 100 + step, input_dtype)))
        out[f"y{step}"] = lib.numpy(y)
        out[f"dx{step}"] = lib.numpy(x.grad)
        if layout == "channels_last":
            out[f"y{step}_channels_last"] = _is_channels_last(lib, y)
        for name, param in module.named_parameters():
            out[f"d{name}{step}"] = lib.numpy(param.grad)
        module.zero_grad()
        for key, value in module.state_dict().items():
            out[f"{key}{step}"] = np.asarray(value)
    return out


# (affine, bias, track_running_stats, momentum): each argument takes each value at least once.
CONFIGS = [
    (True, True, True, 0.1),
    (True, False, True, None),
    (False, False, True, 0.1),
    (True, True, False, 0.1),
    (False, False, False, None),
]

for kind, dtype, layout, config in itertools.product(
    SHAPES, ["float32", "float64"], ["contiguous", "channels_last"], CONFIGS
):
    if layout == "channels_last" and len(SHAPES[kind]) < 4:
        continue
    affine, bias, track, momentum = config
    name = f"{kind}-{dtype}-{layout}-affine={affine}-bias={bias}-track={track}-momentum={momentum}"
    CASES.add(name, lambda lib, a=(kind, dtype, layout, *config): train_then_eval(lib, *a))

# float16: computed in float32 and rounded, with float16 parameters or float32 ones (mixed).
for kind, layout, param_dtype in itertools.product(
    ["BatchNorm1d-2D", "BatchNorm2d"], ["contiguous", "channels_last"], ["float16", "float32"]
):
    if layout == "channels_last" and len(SHAPES[kind]) < 4:
        continue
    CASES.add(
        f"{kind}-float16-input-{param_dtype}-params-{layout}",
        lambda lib, a=(kind, param_dtype, layout, *CONFIGS[0]): train_then_eval(
            lib, *a, input_dtype="float16"
        ),
    )


@pytest.mark.parametrize("name", CASES.names())
def test_module_matches_torch(name):
    CASES.check(name)
