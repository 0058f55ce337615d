"""Lazy modules (LazyBatchNorm1d/2d/3d, LazyInstanceNorm1d/2d/3d) and uninitialized tensors
against torch: construction, reprs, state dicts before and after the first call, the first
call's inference and its errors, loading into a lazy module, dtypes; then numbanorm's own promise
that a first call that raises leaves the module lazy."""

from collections import OrderedDict

import numpy as np
import pytest

import numbanorm
from tests.oracle import Cases, deterministic

CASES = Cases("lazy")

LAZY = {
    "LazyBatchNorm1d": ((4, 3), (4, 3, 5)),
    "LazyBatchNorm2d": ((2, 3, 2, 2),),
    "LazyBatchNorm3d": ((2, 3, 2, 1, 2),),
    "LazyInstanceNorm1d": ((2, 3, 5),),
    "LazyInstanceNorm2d": ((2, 3, 2, 3), (3, 2, 3)),
    "LazyInstanceNorm3d": ((2, 3, 2, 1, 2),),
}


def text(value) -> np.ndarray:
    return np.array(str(value))


def is_lazy(value) -> bool:
    return type(value).__name__.startswith("Uninitialized")


def dtype_name(value) -> np.ndarray:
    return text(np.dtype(str(value.dtype).replace("torch.", "")))


def state(prefix, module) -> dict:
    """A module's class, repr, ``num_features`` and state_dict (uninitialized values by their
    reprs), its tensors' types and dtypes."""
    out = {
        f"{prefix}class": text(type(module).__name__),
        f"{prefix}repr": text(module),
        f"{prefix}num_features": np.array(module.num_features),
        f"{prefix}keys": text(list(module.state_dict())),
    }
    for key, value in module.state_dict().items():
        out[f"{prefix}{key}"] = text(value) if is_lazy(value) else np.asarray(value)
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(module, name)
        out[f"{prefix}{name}.type"] = text(type(value).__name__)
        if value is not None:
            out[f"{prefix}{name}.dtype"] = dtype_name(value)
    if hasattr(module, "has_uninitialized_params"):
        out[f"{prefix}has_uninitialized_params"] = np.array(module.has_uninitialized_params())
    return out


def make(lib, kind, **kwargs):
    if "dtype" in kwargs:
        kwargs["dtype"] = lib.dtype(kwargs["dtype"])
    return getattr(lib.nn, kind)(**kwargs)


def first_call(lib, kind, shape, training=True, input_dtype="float32", **kwargs):
    """The module before, its first call (output, gradients), the module after, and a second
    call, which a plain module makes."""
    module = make(lib, kind, **kwargs)
    module.train(training)
    out = state("before:", module)
    x = lib.tensor(deterministic(shape, 0, input_dtype) * 2 + 1, requires_grad=True)
    y = module(x)
    y.backward(lib.tensor(deterministic(shape, 1, input_dtype)))
    out |= {"y": lib.numpy(y), "dx": lib.numpy(x.grad)}
    for name, param in module.named_parameters():
        out[f"d{name}"] = lib.numpy(param.grad)
    out |= state("after:", module)
    y = module(lib.tensor(deterministic(shape, 2, input_dtype)))
    out |= {"y2": lib.numpy(y)} | state("second:", module)
    return out


CONFIGS = {
    "default": {},
    "no-affine": {"affine": False},
    "no-bias": {"bias": False},
    "no-track": {"track_running_stats": False},
    "nothing": {"affine": False, "track_running_stats": False},
    "arguments": {"eps": 1e-3, "momentum": None},
}
for kind, shapes in LAZY.items():
    for shape in shapes:
        label = "x".join(map(str, shape))
        for config, kwargs in CONFIGS.items():
            CASES.add(
                f"{kind}-{label}-{config}",
                lambda lib, a=(kind, shape), k=kwargs: first_call(lib, *a, **k),
            )
for kind, shape in [("LazyBatchNorm2d", (2, 3, 2, 2)), ("LazyInstanceNorm1d", (2, 3, 4))]:
    CASES.add(f"{kind}-eval", lambda lib, a=(kind, shape): first_call(lib, *a, training=False))
CASES.add(
    "LazyBatchNorm1d-dtype=float64",
    lambda lib: first_call(lib, "LazyBatchNorm1d", (4, 3), input_dtype="float64", dtype="float64"),
)
CASES.add(
    "LazyInstanceNorm2d-float16-input",
    lambda lib: first_call(lib, "LazyInstanceNorm2d", (2, 3, 2, 2), input_dtype="float16"),
)


def converted_first(lib, method):
    """``double()`` or ``half()`` before the first call: the uninitialized tensors change dtype
    and materialize in it."""
    module = getattr(make(lib, "LazyBatchNorm1d"), method)()
    out = state("converted:", module)
    dtype = {"double": "float64", "half": "float16"}[method]
    y = module(lib.tensor(deterministic((4, 3), 0, dtype)))
    return out | {"y": lib.numpy(y)} | state("after:", module)


for method in ("double", "half"):
    CASES.add(f"LazyBatchNorm1d-{method}-first", lambda lib, m=method: converted_first(lib, m))


def first_call_error(lib, kind, shape, **kwargs):
    module = make(lib, kind, **kwargs)
    return {"y": lib.numpy(module(lib.tensor(deterministic(shape, 0) + 1)))}


# Errors of the first call (what torch leaves behind differs: see the tests at the end).
FIRST_CALL_ERRORS = {
    # input.shape[1] does not exist.
    "LazyBatchNorm1d-1d": ("LazyBatchNorm1d", (4,)),
    "LazyBatchNorm2d-0d": ("LazyBatchNorm2d", ()),
    "LazyInstanceNorm1d-1d": ("LazyInstanceNorm1d", (4,)),
    # Inferred, then the forward's own checks.
    "LazyBatchNorm2d-3d": ("LazyBatchNorm2d", (2, 3, 4)),
    "LazyBatchNorm1d-one-value": ("LazyBatchNorm1d", (1, 3)),
    "LazyInstanceNorm2d-one-element": ("LazyInstanceNorm2d", (2, 3, 1, 1)),
    # An unbatched input's shape[1] is its first spatial size, not its channels.
    "LazyInstanceNorm1d-unbatched-affine": ("LazyInstanceNorm1d", (3, 5)),
    "LazyInstanceNorm1d-unbatched-track": ("LazyInstanceNorm1d", (3, 5), {"affine": False}),
}
for name, (kind, shape, *kwargs) in FIRST_CALL_ERRORS.items():
    CASES.add(
        f"first-call-error-{name}",
        lambda lib, a=(kind, shape), k=(kwargs or [{}])[0]: first_call_error(lib, *a, **k),
    )
# ...which works when nothing depends on the channels: num_features is then the length.
CASES.add(
    "LazyInstanceNorm1d-unbatched-nothing",
    lambda lib: first_call(
        lib, "LazyInstanceNorm1d", (3, 5), affine=False, track_running_stats=False
    ),
)


def load_into_lazy(lib, kind, values, strict=True, call_shape=None, **kwargs):
    """``load_state_dict`` into a lazy module: the result, the module after and, with
    ``call_shape``, a first call after the load."""
    module = make(lib, kind, **kwargs)
    state_dict = OrderedDict((k, lib.tensor(v)) for k, v in values.items())
    out = {"result": text(module.load_state_dict(state_dict, strict=strict))}
    out |= state("loaded:", module)
    if call_shape is not None:
        y = module(lib.tensor(deterministic(call_shape, 0) + 1))
        out |= {"y": lib.numpy(y)} | state("called:", module)
    return out


FULL = {
    "weight": np.arange(1, 4, dtype=np.float32),
    "bias": np.full(3, 0.5, np.float32),
    "running_mean": np.full(3, 0.25, np.float32),
    "running_var": np.full(3, 2.0, np.float32),
    "num_batches_tracked": np.array(5),
}
LOADS = {
    # Materialized in the values' shapes; num_features stays 0 (torch infers it only from a
    # call), which a batch norm never reads...
    "full": ("LazyBatchNorm1d", FULL, {"call_shape": (4, 3)}),
    "full-no-call": ("LazyBatchNorm2d", FULL, {}),
    # ...but an instance norm with affine parameters checks it.
    "instance-full": ("LazyInstanceNorm1d", FULL, {"call_shape": (2, 3, 4)}),
    "instance-no-affine": (
        "LazyInstanceNorm1d",
        {k: v for k, v in FULL.items() if "running" in k or "num" in k},
        {"call_shape": (2, 3, 4), "affine": False},
    ),
    # Any shape goes: nothing to compare it with yet.
    "other-shapes": ("LazyBatchNorm1d", FULL | {"bias": np.zeros(4, np.float32)}, {}),
    # Some left uninitialized: the first call then finds a weight that is no longer lazy.
    "partial": (
        "LazyBatchNorm1d",
        {k: v for k, v in FULL.items() if k != "bias"},
        {"strict": False},
    ),
    "partial-then-call": (
        "LazyBatchNorm1d",
        {k: v for k, v in FULL.items() if k != "bias"},
        {"strict": False, "call_shape": (4, 3)},
    ),
    "missing-strict": ("LazyBatchNorm1d", {"weight": FULL["weight"]}, {}),
    "unexpected": ("LazyBatchNorm1d", FULL | {"extra": np.zeros(1)}, {"strict": False}),
}
for name, (kind, values, kwargs) in LOADS.items():
    CASES.add(f"load-{name}", lambda lib, a=(kind, values), k=kwargs: load_into_lazy(lib, *a, **k))


def load_lazy_state(lib, into):
    """A lazy module's state_dict (uninitialized values) loaded into a lazy or a plain module."""
    source = lib.nn.LazyBatchNorm1d().state_dict()
    module = lib.nn.LazyBatchNorm1d() if into == "lazy" else lib.nn.BatchNorm1d(3)
    out = {"result": text(module.load_state_dict(source))}
    return out | state("after:", module)


for into in ("lazy", "plain"):
    CASES.add(f"load-lazy-state-into-{into}", lambda lib, i=into: load_lazy_state(lib, i))


def initialize_directly(lib):
    """``initialize_parameters`` by hand: materialized and reset, but still lazy until called."""
    module = lib.nn.LazyInstanceNorm2d()
    module.reset_parameters()  # a no-op while uninitialized
    module.initialize_parameters(lib.tensor(deterministic((2, 4, 2, 2), 0)))
    out = state("initialized:", module)
    y = module(lib.tensor(deterministic((2, 4, 2, 2), 1)))
    return out | {"y": lib.numpy(y)} | state("called:", module)


CASES.add("initialize-parameters-directly", initialize_directly)


# ---- uninitialized tensors -----------------------------------------------------------------------


def uninitialized(lib, cls, **kwargs):
    """An uninitialized tensor's attributes, and its materialization."""
    if "dtype" in kwargs:
        kwargs["dtype"] = lib.dtype(kwargs["dtype"])
    value = getattr(lib.nn, cls)(**kwargs)
    out = {
        "repr": text(repr(value)),
        "str": text(str(value)),
        "size": np.array(tuple(value.size())),
        "ndim": np.array(value.ndim),
        "dtype": dtype_name(value),
        "requires_grad": np.array(value.requires_grad),
        "grad is None": np.array(value.grad is None),
        "is_lazy": np.array(lib.nn.parameter.is_lazy(value)),
        "is Parameter": np.array(isinstance(value, lib.nn.Parameter)),
    }
    value.materialize((2, 3))
    out |= {
        "materialized.type": text(type(value).__name__),
        "materialized.shape": np.array(tuple(value.shape)),
        "materialized.dtype": dtype_name(value),
        "materialized.requires_grad": np.array(value.requires_grad),
        "materialized.is_lazy": np.array(lib.nn.parameter.is_lazy(value)),
    }
    return out


UNINITIALIZED = {
    "parameter": ("UninitializedParameter", {}),
    "parameter-no-grad-float64": (
        "UninitializedParameter",
        {"requires_grad": False, "dtype": "float64"},
    ),
    "buffer": ("UninitializedBuffer", {}),
    "buffer-float16": ("UninitializedBuffer", {"dtype": "float16"}),
}
for name, (cls, kwargs) in UNINITIALIZED.items():
    CASES.add(
        f"uninitialized-{name}", lambda lib, a=(cls, kwargs): uninitialized(lib, a[0], **a[1])
    )


def materialize_as(lib):
    value = lib.nn.UninitializedParameter()
    value.materialize((4,), dtype=lib.dtype("float64"))
    return {"dtype": dtype_name(value), "shape": np.array(tuple(value.shape))}


CASES.add("uninitialized-materialize-dtype", materialize_as)

# What an uninitialized tensor refuses, with torch's errors.
REFUSED = {
    "shape": lambda v: v.shape,
    "dim": lambda v: v.dim(),
    "numel": lambda v: v.numel(),
    "add": lambda v: v + 1,
    "radd": lambda v: 1 + v,
    "sub": lambda v: v - 1,
    "mul": lambda v: v * 2,
    "div": lambda v: v / 2,
    "neg": lambda v: -v,
    "matmul": lambda v: v @ v,
    "getitem": lambda v: v[0],
    "sum": lambda v: v.sum(),
    "mean": lambda v: v.mean(),
    "reshape": lambda v: v.reshape(-1),
    "view": lambda v: v.view(-1),
    "transpose": lambda v: v.transpose(0, 0),
    "t": lambda v: v.t(),
    "item": lambda v: v.item(),
    "detach": lambda v: v.detach(),
    "requires_grad_": lambda v: v.requires_grad_(False),
}
for cls in ("UninitializedParameter", "UninitializedBuffer"):
    for name, use in REFUSED.items():
        CASES.add(
            f"refused-{cls}-{name}",
            lambda lib, c=cls, u=use: {"result": np.asarray(u(getattr(lib.nn, c)()))},
        )
CASES.add(
    "refused-lazy-module-requires_grad_",
    lambda lib: {"repr": text(lib.nn.LazyBatchNorm1d().requires_grad_(False))},
)


@pytest.mark.filterwarnings("ignore:input's size at dim")  # num_features 0 or a length
@pytest.mark.parametrize("name", CASES.names())
def test_lazy_matches_torch(name):
    CASES.check(name)


# ---- numbanorm alone: a first call that raises leaves the module lazy ----------------------------


@pytest.mark.filterwarnings("ignore:input's size at dim")
@pytest.mark.parametrize("name", list(FIRST_CALL_ERRORS))
def test_failed_first_call_leaves_the_module_lazy(name):
    """torch infers, materializes and becomes the plain class before the forward raises (a
    lazy batch norm even counts the batch); numbanorm undoes all of it."""
    kind, shape, *kwargs = FIRST_CALL_ERRORS[name]
    module = getattr(numbanorm.nn, kind)(**(kwargs or [{}])[0])
    tensors = dict(module.named_parameters()) | dict(module.named_buffers())
    types = {name: type(t) for name, t in tensors.items()}
    with pytest.raises((ValueError, IndexError, RuntimeError)):
        module(numbanorm.tensor(deterministic(shape, 0) + 1))
    assert type(module).__name__ == kind
    assert module.num_features == 0
    assert module.has_uninitialized_params()
    after = dict(module.named_parameters()) | dict(module.named_buffers())
    assert after.keys() == tensors.keys()
    for key, tensor in tensors.items():
        assert after[key] is tensor
        assert type(tensor) is types[key]
        assert tensor.data.shape == (() if key == "num_batches_tracked" else (0,))
    if "num_batches_tracked" in tensors:
        assert int(module.num_batches_tracked.item()) == 0
    # The module is as new: a good first call infers and initializes it.
    module(numbanorm.tensor(deterministic(LAZY[kind][0], 1)))
    assert type(module).__name__ == kind.replace("Lazy", "")
    assert module.num_features == 3


def test_lazy_state_dict_values_are_the_uninitialized_tensors():
    module = numbanorm.nn.LazyBatchNorm2d()
    state = module.state_dict()
    assert state["weight"] is module.weight
    assert state["running_var"] is module.running_var
    assert isinstance(state["num_batches_tracked"], np.ndarray)


def test_failed_load_leaves_lazy_tensors_uninitialized():
    """torch materializes the lazy tensors before it finds the load's errors; numbanorm checks
    everything first."""
    module = numbanorm.nn.LazyBatchNorm1d()
    values = {k: v for k, v in FULL.items() if k != "running_var"}
    with pytest.raises(RuntimeError, match="Missing key"):
        module.load_state_dict(values)
    assert module.has_uninitialized_params()
    assert all(numbanorm.nn.parameter.is_lazy(p) for p in module.parameters())
