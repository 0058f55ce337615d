"""InstanceNorm1d/2d/3d modules against torch: train steps, running stats, eval, gradients,
unbatched input, reprs, the num_features check and torch's state_dict rules."""

import itertools
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import numbanorm
from tests.oracle import Cases, channels_last, deterministic

CASES = Cases("instancenorm_module")

SHAPES = {
    "InstanceNorm1d": (3, 4, 5),
    "InstanceNorm1d-unbatched": (4, 5),
    "InstanceNorm2d": (2, 3, 4, 5),
    "InstanceNorm2d-unbatched": (3, 4, 5),
    "InstanceNorm3d": (2, 3, 2, 3, 2),
    "InstanceNorm3d-unbatched": (3, 2, 3, 2),
}


def _channels(kind):
    shape = SHAPES[kind]
    return shape[0] if kind.endswith("unbatched") else shape[1]


def train_then_eval(lib, kind, dtype, layout, affine, bias, track, momentum, input_dtype=None):
    """Three training steps (forward, backward) on shifted data, then an eval step; the
    state_dict after each. ``input_dtype`` other than the module's ``dtype`` is torch's mixed
    precision (float16 input, float32 parameters)."""
    shape = SHAPES[kind]
    channels = _channels(kind)
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
        for name, param in module.named_parameters():
            out[f"d{name}{step}"] = lib.numpy(param.grad)
        module.zero_grad()
        for key, value in module.state_dict().items():
            out[f"{key}{step}"] = np.asarray(value)
    return out


# (affine, bias, track_running_stats, momentum): torch's defaults first; each argument takes each
# value at least once.
CONFIGS = [
    (False, False, False, 0.1),
    (True, True, False, 0.1),
    (True, False, True, 0.1),
    (False, False, True, None),
    (True, True, True, 0.5),
]

for kind, dtype, layout, config in itertools.product(
    SHAPES, ["float32", "float64"], ["contiguous", "channels_last"], CONFIGS
):
    if layout == "channels_last" and (len(SHAPES[kind]) < 4 or kind.endswith("unbatched")):
        continue
    affine, bias, track, momentum = config
    name = f"{kind}-{dtype}-{layout}-affine={affine}-bias={bias}-track={track}-momentum={momentum}"
    CASES.add(name, lambda lib, a=(kind, dtype, layout, *config): train_then_eval(lib, *a))

# float16: computed in float32 and rounded, with float16 parameters or float32 ones (mixed); the
# running statistics are cast to the weight's dtype, as torch does.
for layout, param_dtype, config in itertools.product(
    ["contiguous", "channels_last"], ["float16", "float32"], [CONFIGS[0], CONFIGS[4]]
):
    CASES.add(
        f"InstanceNorm2d-float16-input-{param_dtype}-params-{layout}-affine={config[0]}",
        lambda lib, a=("InstanceNorm2d", param_dtype, layout, *config): train_then_eval(
            lib, *a, input_dtype="float16"
        ),
    )


# ---- construction, repr, state_dict ----------------------------------------------------------


def text(value) -> np.ndarray:
    return np.array(str(value))


def describe(lib, kind, *args, **kwargs):
    module = getattr(lib.nn, kind)(*args, **kwargs)
    state = module.state_dict()
    out = {"repr": text(module), "keys": text(list(state))}
    out |= {f"value:{k}": np.asarray(v) for k, v in state.items()}
    out["version"] = np.array(state._metadata[""]["version"])
    for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        out[f"{name} is None"] = np.array(getattr(module, name) is None)
    return out


CONSTRUCTIONS = {
    "default": ("InstanceNorm1d", (3,), {}),
    "affine": ("InstanceNorm2d", (4,), {"affine": True}),
    "affine-no-bias": ("InstanceNorm2d", (4,), {"affine": True, "bias": False}),
    "no-affine-bias-ignored": ("InstanceNorm3d", (2,), {"bias": True}),
    "track": ("InstanceNorm3d", (2,), {"track_running_stats": True, "momentum": None}),
    "all": ("InstanceNorm1d", (5, 1e-3, 0.3, True, True), {}),
}
for name, (kind, args, kwargs) in CONSTRUCTIONS.items():
    CASES.add(
        f"construct-{name}", lambda lib, a=(kind, args, kwargs): describe(lib, *a[:2], **a[2])
    )


def mismatch(lib, kind, num_features, shape, affine, track=False):
    """A call with ``num_features`` other than the input's channels: torch warns without
    affine parameters (the feature count is unused) and raises with them."""
    module = getattr(lib.nn, kind)(num_features, affine=affine, track_running_stats=track)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = module(lib.tensor(deterministic(shape, 0)))
    messages = [str(w.message) for w in caught]
    categories = [w.category.__name__ for w in caught]
    return {"y": lib.numpy(y), "warnings": text(messages), "categories": text(categories)}


MISMATCHES = {
    "1d-warn": ("InstanceNorm1d", 4, (2, 3, 5), False),
    "1d-unbatched-warn": ("InstanceNorm1d", 4, (3, 5), False),
    "2d-raise": ("InstanceNorm2d", 4, (2, 3, 2, 2), True),
    "2d-unbatched-raise": ("InstanceNorm2d", 2, (3, 2, 2), True),
    "3d-warn": ("InstanceNorm3d", 1, (2, 3, 2, 1, 2), False),
    # Tracking without affine: the warning, then the running statistics' size error.
    "2d-track-warn-then-size": ("InstanceNorm2d", 4, (2, 3, 2, 2), False, True),
}
for name, args in MISMATCHES.items():
    CASES.add(f"num_features-{name}", lambda lib, a=args: mismatch(lib, *a))


def unbatched_matches_batch_of_one(lib, kind, shape):
    """An unbatched input gives what a batch of one gives, and its gradient has its shape."""
    module = getattr(lib.nn, kind)(shape[0], affine=True, track_running_stats=True)
    x = lib.tensor(deterministic(shape, 3), requires_grad=True)
    y = module(x)
    y.backward(lib.tensor(deterministic(shape, 4)))
    out = {"y": lib.numpy(y), "dx": lib.numpy(x.grad), "shape": np.array(tuple(y.shape))}
    out |= {k: np.asarray(v) for k, v in module.state_dict().items()}
    return out


for kind, shape in [("InstanceNorm1d", (3, 4)), ("InstanceNorm2d", (2, 3, 3))]:
    CASES.add(
        f"unbatched-{kind}", lambda lib, a=(kind, shape): unbatched_matches_batch_of_one(lib, *a)
    )


def load(lib, kind, state, metadata=None, strict=True, nested=False, **kwargs):
    """``load_state_dict`` of ``state`` (name -> array) into ``kind(3, **kwargs)``, with
    ``_metadata`` when given: the result's repr and the state_dict after, or the error (torch
    has copied some values by then, numbanorm none: see test_module.py)."""
    module = getattr(lib.nn, kind)(3, **kwargs)
    target = lib.nn.Sequential(module) if nested else module
    prefix = "0." if nested else ""
    values = OrderedDict((prefix + k, lib.tensor(v)) for k, v in state.items())
    if metadata is not None:
        values._metadata = {prefix[:-1]: {"version": metadata}}
    out = {"result": text(target.load_state_dict(values, strict=strict))}
    out |= {f"after:{k}": np.asarray(v) for k, v in target.state_dict().items()}
    return out


STATS = {"running_mean": np.full(3, 0.5, np.float32), "running_var": np.full(3, 2.0, np.float32)}
LOADS = {
    # A pre-0.4 checkpoint (no version): running statistics an untracking instance norm refuses,
    # with torch's explanation, strict or not.
    "no-version-stats": dict(state=STATS),
    "no-version-stats-not-strict": dict(state=STATS, strict=False),
    "no-version-mean-only": dict(state={"running_mean": STATS["running_mean"]}),
    "no-version-stats-nested": dict(state=STATS, nested=True),
    "no-version-stats-and-weight": dict(state={**STATS, "weight": np.ones(3, np.float32)}),
    # A versioned checkpoint: the same keys are merely unexpected.
    "version-1-stats": dict(state=STATS, metadata=1),
    "version-2-stats": dict(state=STATS, metadata=2),
    "version-2-stats-not-strict": dict(state=STATS, metadata=2, strict=False),
    # Tracking: an old checkpoint without num_batches_tracked keeps the module's count.
    "no-version-track": dict(state=STATS, track_running_stats=True),
    "version-1-track": dict(state=STATS, metadata=1, track_running_stats=True),
    "version-2-track-missing-count": dict(state=STATS, metadata=2, track_running_stats=True),
    "affine": dict(
        state={"weight": np.arange(3, dtype=np.float32), "bias": np.ones(3, np.float32)},
        affine=True,
    ),
}
for name, kwargs in LOADS.items():
    CASES.add(f"load-{name}", lambda lib, k=kwargs: load(lib, "InstanceNorm1d", **k))


@pytest.mark.parametrize("name", CASES.names())
def test_module_matches_torch(name):
    CASES.check(name)


# ---- numbanorm's own promises -----------------------------------------------------------------


def test_momentum_none_never_moves_the_running_stats():
    """torch passes momentum 0 for momentum=None and never counts batches: the running
    statistics keep their initial values, whatever the data."""
    module = numbanorm.nn.InstanceNorm2d(3, momentum=None, track_running_stats=True)
    for seed in range(3):
        module(numbanorm.tensor(deterministic((2, 3, 2, 2), seed) * 5 + 7))
    np.testing.assert_array_equal(module.running_mean.data, np.zeros(3, np.float32))
    np.testing.assert_array_equal(module.running_var.data, np.ones(3, np.float32))
    assert int(module.num_batches_tracked.item()) == 0


def test_failed_call_changes_nothing():
    module = numbanorm.nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    module(numbanorm.tensor(deterministic((2, 3, 2, 2), 0) + 1)).sum().backward()
    module.running_var = numbanorm.tensor(np.ones(3))  # float64: a dtype error on the next call
    before = {k: np.array(v, copy=True) for k, v in module.state_dict().items()}
    grads = [np.array(p.grad.data, copy=True) for p in module.parameters()]
    x = numbanorm.tensor(deterministic((2, 3, 2, 2), 1), requires_grad=True)
    with pytest.raises(RuntimeError, match="expected scalar type Float but found Double"):
        module(x)
    for key, value in module.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    for param, grad in zip(module.parameters(), grads, strict=True):
        np.testing.assert_array_equal(param.grad.data, grad)
    assert x.grad is None


def test_channels_last_output_keeps_the_layout():
    """torch copies channels-last input to contiguous; numbanorm normalizes it in place of
    its layout, and the output and input gradient are channels-last too."""
    array = channels_last(deterministic((2, 3, 4, 5), 0))
    x = numbanorm.Tensor(array, requires_grad=True)
    y = numbanorm.nn.InstanceNorm2d(3)(x)
    y.backward(numbanorm.Tensor(channels_last(deterministic((2, 3, 4, 5), 1))))
    for a in (y.data, x.grad.data):
        assert np.moveaxis(a, 1, -1).flags.c_contiguous
