"""Bad input to BatchNorm1d/2d/3d and F.batch_norm: torch 2.13's exception types and messages.

The oracle cases compare ``"Type: message"`` with torch (and the golden file). Where torch accepts
an odd input (an empty batch of any dtype, an eval batch of one) the case returns the output so the
acceptance is checked too. The last part runs on numbanorm alone: a failed call changes nothing
(torch bumps ``num_batches_tracked`` before it raises; numbanorm does not).

float16 is left out of the golden files; its dtype rules (torch's mixed precision: float16 input
with float32 parameters) are compared with torch live, when torch is installed.
"""

import itertools

import numpy as np
import pytest

import numbanorm
from tests.oracle import NUMBANORM as CASES_LIB
from tests.oracle import Cases, deterministic

CASES = Cases("batchnorm_errors")

MODULE_SHAPES = {"BatchNorm1d": (4, 3), "BatchNorm2d": (2, 3, 2, 2), "BatchNorm3d": (2, 3, 1, 2, 2)}


def _flag(value) -> str:
    return "Y" if value else "N"


def _input(lib, shape, dtype="float32", seed=0):
    array = deterministic(shape, seed, "float64")
    if np.dtype(dtype).kind in "iub":
        array = np.round(array * 3)
    return lib.tensor(array.astype(dtype))


def module_call(
    lib, kind, shape, training=True, dtype="float32", module_dtype="float32", setup=None, **kw
):
    """One forward call of ``kind(3, **kw)`` on an input of ``shape``; output and state after."""
    module = getattr(lib.nn, kind)(3, dtype=lib.dtype(module_dtype), **kw)
    module.train(training)
    if setup is not None:
        setup(lib, module)
    y = module(_input(lib, shape, dtype))
    out = {"y": lib.numpy(y)}
    for key, value in module.state_dict().items():
        out[key] = np.asarray(value)
    return out


def add_module(name, kind, shape, **kwargs):
    CASES.add(f"module-{name}", lambda lib: module_call(lib, kind, shape, **kwargs))


# Wrong number of dimensions (checked first, in either mode, before anything else).
WRONG_DIMS = {
    "BatchNorm1d": [(), (3,), (2, 3, 2, 2)],
    "BatchNorm2d": [(2, 3), (2, 3, 4), (2, 3, 1, 2, 2)],
    "BatchNorm3d": [(2, 3, 4), (2, 3, 2, 2), (2, 3, 1, 1, 2, 2)],
}
for kind, shapes in WRONG_DIMS.items():
    for shape, training in itertools.product(shapes, [True, False]):
        label = "x".join(map(str, shape)) or "scalar"
        add_module(f"{kind}-dims-{label}-train={_flag(training)}", kind, shape, training=training)
# Wrong dims and a wrong dtype: the dimension check wins.
add_module("BatchNorm2d-dims-and-long", "BatchNorm2d", (2, 3), dtype="int64")

# One value per channel: an error in training (tracked or not), fine in eval.
ONE_VALUE = {
    "BatchNorm1d": [(1, 3), (1, 3, 1)],
    "BatchNorm2d": [(1, 3, 1, 1)],
    "BatchNorm3d": [(1, 3, 1, 1, 1)],
}
for kind, shapes in ONE_VALUE.items():
    for shape in shapes:
        label = "x".join(map(str, shape))
        for training, track in [(True, True), (True, False), (False, True)]:
            add_module(
                f"{kind}-one-value-{label}-train={_flag(training)}-track={_flag(track)}",
                kind,
                shape,
                training=training,
                track_running_stats=track,
            )
add_module("BatchNorm1d-one-value-and-long", "BatchNorm1d", (1, 3), dtype="int64")

# Channel count that does not match num_features=3: running_mean first, then weight, then bias.
MISMATCH = {"BatchNorm1d": (2, 4), "BatchNorm2d": (2, 4, 2, 2), "BatchNorm3d": (2, 2, 1, 2, 2)}
for kind, shape in MISMATCH.items():
    for training, track, affine in itertools.product([True, False], [True, False], [True, False]):
        add_module(
            f"{kind}-channels-train={_flag(training)}-track={_flag(track)}-affine={_flag(affine)}",
            kind,
            shape,
            training=training,
            track_running_stats=track,
            affine=affine,
        )
add_module(
    "BatchNorm1d-channels-nobias", "BatchNorm1d", (2, 4), track_running_stats=False, bias=False
)

# eps: positive in training, non-negative in eval.
for kind, eps, training in itertools.product(
    ["BatchNorm1d", "BatchNorm2d"], [0.0, -1e-5, -1.0], [True, False]
):
    add_module(
        f"{kind}-eps={eps}-train={_flag(training)}",
        kind,
        MODULE_SHAPES[kind],
        training=training,
        eps=eps,
    )
add_module(
    "BatchNorm3d-eps=0-notrack", "BatchNorm3d", MODULE_SHAPES["BatchNorm3d"], eps=0.0,
    track_running_stats=False, training=False,
)  # fmt: skip
add_module("BatchNorm1d-eps=0-one-value", "BatchNorm1d", (1, 3), eps=0.0)

# Non-float input.
for kind, dtype, training in itertools.product(
    MODULE_SHAPES, ["int64", "int32", "int16", "int8", "uint8", "bool", "complex64"], [True, False]
):
    if kind != "BatchNorm1d" and dtype not in ("int64", "bool"):
        continue
    add_module(
        f"{kind}-{dtype}-train={_flag(training)}",
        kind,
        MODULE_SHAPES[kind],
        training=training,
        dtype=dtype,
    )
add_module("BatchNorm1d-int64-notrack-noaffine", "BatchNorm1d", (4, 3), dtype="int64",
           track_running_stats=False, affine=False)  # fmt: skip

# Module and input dtypes that differ (torch's CPU mixed-dtype rules).
for kind, (x_dtype, m_dtype), training, (affine, track) in itertools.product(
    ["BatchNorm1d", "BatchNorm2d"],
    [("float32", "float64"), ("float64", "float32")],
    [True, False],
    [(True, True), (False, True), (True, False)],
):
    add_module(
        f"{kind}-x={x_dtype}-module={m_dtype}-train={_flag(training)}-affine={_flag(affine)}"
        f"-track={_flag(track)}",
        kind,
        MODULE_SHAPES[kind],
        training=training,
        dtype=x_dtype,
        module_dtype=m_dtype,
        affine=affine,
        track_running_stats=track,
    )


def _set(**values):
    """A setup that replaces parameters/buffers: name -> dtype (a new tensor) or None."""

    def setup(lib, module):
        for name, dtype in values.items():
            if dtype is None:
                setattr(module, name, None)
                continue
            tensor = lib.tensor(deterministic((3,), 1, dtype, 0.5, 1.5))
            if name in ("weight", "bias"):
                tensor = lib.nn.Parameter(tensor)
            setattr(module, name, tensor)

    return setup


# One parameter or buffer of another dtype than the rest.
for name, training in itertools.product(
    ["weight", "bias", "running_mean", "running_var"], [True, False]
):
    add_module(
        f"BatchNorm1d-{name}=float64-train={_flag(training)}",
        "BatchNorm1d",
        (4, 3),
        training=training,
        setup=_set(**{name: "float64"}),
    )
# Running statistics removed from a tracking module.
for names, training in itertools.product(
    [("running_mean",), ("running_var",), ("running_mean", "running_var")], [True, False]
):
    add_module(
        f"BatchNorm1d-{'+'.join(names)}=None-train={_flag(training)}",
        "BatchNorm1d",
        (4, 3),
        training=training,
        setup=_set(**dict.fromkeys(names)),
    )


def _delete(name):
    def setup(lib, module):
        delattr(module, name)

    return setup


# A parameter or buffer deleted from the module: torch's AttributeError, from the forward.
for name in ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]:
    add_module(f"BatchNorm1d-del-{name}", "BatchNorm1d", (4, 3), setup=_delete(name))

# ---- F.batch_norm ------------------------------------------------------------------------------


def functional_call(
    lib,
    shape=(4, 3),
    dtype="float32",
    rm="float32",
    rv="float32",
    weight="float32",
    bias="float32",
    training=True,
    momentum=0.1,
    eps=1e-5,
    sizes=None,
    grad=False,
):
    """One F.batch_norm call. ``rm``/``rv``/``weight``/``bias``: a dtype name or None; ``sizes``
    overrides their shapes (a dict name -> shape). Returns the output and the running stats."""
    sizes = sizes or {}
    channels = shape[1] if len(shape) > 1 else 1
    args = {}
    for seed, (name, dt) in enumerate([("rm", rm), ("rv", rv), ("weight", weight), ("bias", bias)]):
        if dt is None:
            args[name] = None
            continue
        size = sizes.get(name, (channels,))
        array = deterministic(size, seed + 1, "float64", 0.5, 1.5).astype(dt)
        args[name] = lib.tensor(array, grad and name in ("weight", "bias"))
    x = _input(lib, shape, dtype)
    y = lib.F.batch_norm(
        x,
        args["rm"],
        args["rv"],
        args["weight"],
        args["bias"],
        training=training,
        momentum=momentum,
        eps=eps,
    )
    out = {"y": lib.numpy(y)}
    if grad:
        y.backward(lib.tensor(deterministic(shape, 9, lib.numpy(y).dtype)))
        for name in ("weight", "bias"):
            if args[name] is not None:
                out[f"d{name}"] = lib.numpy(args[name].grad)
    for name in ("rm", "rv"):
        if args[name] is not None:
            out[name] = lib.numpy(args[name])
    return out


def add_functional(name, **kwargs):
    CASES.add(f"F-{name}", lambda lib: functional_call(lib, **kwargs))


# Ranks 0 and 1: torch checks the sizes (as 0 channels) before it finds no dimension 1.
for shape, training, stats in itertools.product([(), (3,), (1,)], [True, False], [True, False]):
    label = "x".join(map(str, shape)) or "scalar"
    s = None if not stats else "float32"
    add_functional(
        f"rank{len(shape)}-{label}-train={_flag(training)}-stats={_flag(stats)}",
        shape=shape,
        training=training,
        rm=s,
        rv=s,
        weight=None,
        bias=None,
    )
for training in [True, False]:
    t = _flag(training)
    zero = {"rm": (0,), "rv": (0,), "weight": (0,), "bias": (0,)}
    add_functional(f"rank1-zero-sized-params-train={t}", shape=(3,), training=training, sizes=zero)
    add_functional(
        f"rank1-zero-sized-stats-int64-train={t}", shape=(3,), training=training, dtype="int64",
        weight=None, bias=None, sizes=zero,
    )  # fmt: skip
    add_functional(f"rank1-weight-train={t}", shape=(3,), training=training, rm=None, rv=None)
    add_functional(
        f"rank1-rm-only-train={t}", shape=(3,), training=training, rv=None, weight=None,
        bias=None, sizes=zero,
    )  # fmt: skip

# One value per channel in training; in eval it is fine.
for shape in [(1, 3), (1, 1), (1, 3, 1, 1), (1, 3, 1, 1, 1), (1, 0)]:
    label = "x".join(map(str, shape))
    for training in [True, False]:
        add_functional(f"one-value-{label}-train={_flag(training)}", shape=shape, training=training)
add_functional("one-value-and-eps=0", shape=(1, 3), eps=0.0)
add_functional("one-value-and-momentum=None", shape=(1, 3), momentum=None)
add_functional("one-value-and-int64", shape=(1, 3), dtype="int64")

# Sizes that do not match the channel count: the first wrong one in torch's order is reported.
for wrong, training in itertools.product(
    [("rm",), ("rv",), ("weight",), ("bias",), ("rv", "weight"), ("weight", "bias"),
     ("rm", "rv", "weight", "bias")],
    [True, False],
):  # fmt: skip
    add_functional(
        f"size-{'+'.join(wrong)}-train={_flag(training)}",
        training=training,
        sizes=dict.fromkeys(wrong, (4,)),
    )
add_functional("size-weight-5-3D", shape=(2, 3, 2), sizes={"weight": (5,)})
# Parameters of another shape with the right number of elements: torch takes them in the forward.
add_functional("shape-weight-1x3-eval", training=False, sizes={"weight": (1, 3)})
add_functional("shape-bias-3x1-train", training=True, sizes={"bias": (3, 1)})
# ...but not running statistics of another rank (torch's TensorAccessor check).
for name, training in itertools.product(["rm", "rv"], [True, False]):
    add_functional(
        f"shape-{name}-3x1-train={_flag(training)}", training=training, sizes={name: (3, 1)}
    )
# Size mismatch and a bad dtype: the size is checked first.
add_functional("size-weight-and-int64", dtype="int64", sizes={"weight": (4,)})
add_functional("size-weight-and-mixed", weight="float64", sizes={"bias": (4,)})

# eps.
for eps, training in itertools.product([0.0, -0.0, -1e-5, -1.0, 0], [True, False]):
    add_functional(f"eps={eps!r}-train={_flag(training)}", eps=eps, training=training)
add_functional("eps=None-train", eps=None)
add_functional("eps=None-eval", eps=None, training=False)
add_functional("eps=str-train", eps="1e-5")
add_functional("eps=0-and-size", eps=0.0, sizes={"weight": (4,)})
add_functional("eps=0-and-momentum=None", eps=0.0, momentum=None)

# Running statistics: both or neither; both in eval.
for rm, rv, training in itertools.product(["float32", None], ["float32", None], [True, False]):
    add_functional(
        f"stats-rm={_flag(rm)}-rv={_flag(rv)}-train={_flag(training)}",
        rm=rm,
        rv=rv,
        training=training,
    )
add_functional("stats-rv-only-and-int64", rm=None, dtype="int64")
add_functional("stats-rm-only-and-mixed", rv=None, weight="float64")
add_functional("stats-rm-only-eval-and-int64", rv=None, dtype="int64", training=False)

# momentum is a float argument of torch.batch_norm: None and other non-numbers are TypeErrors.
for momentum, training in itertools.product([None, "0.1", [0.1]], [True, False]):
    add_functional(f"momentum={momentum!r}-train={_flag(training)}", momentum=momentum,
                   training=training)  # fmt: skip
add_functional("momentum=None-nostats", momentum=None, rm=None, rv=None)
add_functional("momentum=1j", momentum=1j)
add_functional("momentum-ndarray", momentum=np.array(0.1))
for label, momentum in [("np.float32", np.float32(0.5)), ("np.int64", np.int64(1)),
                        ("True", True), ("int", 0)]:  # fmt: skip
    add_functional(f"momentum-accepted-{label}", momentum=momentum)

# training is a bool argument of torch.batch_norm.
for label, training in [("1", 1), ("0", 0), ("None", None), ("str", "yes"),
                        ("np.bool", np.bool_(True))]:  # fmt: skip
    add_functional(f"training={label}", training=training)
add_functional("training=1-and-momentum=None", training=1, momentum=None)
add_functional("training=None-and-eps=-1", training=None, eps=-1.0)

# Non-float input.
for dtype, training in itertools.product(
    ["int64", "int32", "int16", "int8", "uint8", "bool", "complex64", "complex128"], [True, False]
):
    add_functional(f"{dtype}-train={_flag(training)}", dtype=dtype, training=training)
add_functional("int64-nostats-noaffine", dtype="int64", rm=None, rv=None, weight=None, bias=None)

# Empty input: torch returns a copy (times weight[0], plus bias[0]) before checking sizes, running
# statistics or dtypes; weight or bias of size 0 then fail to index.
EMPTY_CASES = {
    "int64": dict(dtype="int64"),
    "int64-noaffine": dict(dtype="int64", weight=None, bias=None),
    "bool-noaffine": dict(dtype="bool", weight=None, bias=None),
    "bool": dict(dtype="bool"),
    "mixed-weight": dict(weight="float64"),
    "mixed-all": dict(rm="float64", weight="float64", bias="float32"),
    "float64-x": dict(dtype="float64"),
    "wrong-sizes": dict(sizes={"rm": (5,), "weight": (2,), "bias": (7,)}),
    "rm-only": dict(rv=None),
    "eval-nostats": dict(rm=None, rv=None, training=False),
    "eval-rv-only": dict(rm=None, training=False),
    "momentum=None": dict(momentum=None),
    "weight-size-0": dict(sizes={"weight": (0,)}),
    "bias-size-0": dict(sizes={"bias": (0,)}),
    "bias-size-0-noweight": dict(weight=None, sizes={"bias": (0,)}),
    "eps=0-eval": dict(eps=0.0, training=False),
    "eps=0-train": dict(eps=0.0),
}
for label, kwargs in EMPTY_CASES.items():
    add_functional(f"empty-{label}", shape=(0, 3), **kwargs)
add_functional("empty-rank1", shape=(0,), training=True)
add_functional("empty-rank1-eval", shape=(0,), training=False)
add_functional("empty-spatial-int64", shape=(2, 3, 0), dtype="int64")
add_functional("empty-channels-noaffine", shape=(2, 0), weight=None, bias=None)
add_functional("empty-channels-weight", shape=(2, 0), sizes={"weight": (0,)}, bias=None)
add_functional("empty-grad", shape=(0, 3, 2), grad=True)
add_functional("empty-grad-float64-weight", shape=(0, 3), weight="float64", bias=None, grad=True)

# Every dtype of input, weight, bias, running_mean, running_var, in both modes (torch's CPU
# rules: parameters must match each other, and the input unless the input is float16).
DTYPE_CHOICES = [None, "float32", "float64"]
for dtype, weight, bias, rm, rv, training in itertools.product(
    ["float32", "float64"], DTYPE_CHOICES, DTYPE_CHOICES, DTYPE_CHOICES, DTYPE_CHOICES,
    [True, False],
):  # fmt: skip
    short = {None: "-", "float32": "f", "float64": "d"}
    add_functional(
        f"dtype-x={short[dtype]}-w={short[weight]}-b={short[bias]}-rm={short[rm]}"
        f"-rv={short[rv]}-train={_flag(training)}",
        shape=(2, 2),
        dtype=dtype,
        weight=weight,
        bias=bias,
        rm=rm,
        rv=rv,
        training=training,
    )


def scalar_tensor_momentum(lib):
    """momentum as a 0-d tensor: torch's argument parser takes it as a float.

    (eps as a 0-d tensor is left out: torch compares it with 0.0 in Python first, and numbanorm's
    Tensor has no comparison operators.)
    """
    x = _input(lib, (4, 3))
    rm = lib.tensor(np.zeros(3, np.float32))
    rv = lib.tensor(np.ones(3, np.float32))
    momentum = lib.tensor(np.array(0.5))
    y = lib.F.batch_norm(x, rm, rv, training=True, momentum=momentum, eps=0.25)
    return {"y": lib.numpy(y), "rm": lib.numpy(rm), "rv": lib.numpy(rv)}


CASES.add("F-momentum-0d-tensor", scalar_tensor_momentum)
CASES.add("F-momentum-1d-tensor", lambda lib: functional_call(lib, momentum=lib.tensor(np.ones(1))))


# Known differences, in code this file's owner does not own (numbanorm/functions/batch_norm.py):
# the BatchNorm Function indexes weight and bias as 1-D arrays, where torch takes any shape with
# num_features elements in the forward.
@pytest.mark.parametrize(
    "name",
    CASES.names(),
)
def test_error_matches_torch(name):
    CASES.check(name)


@pytest.mark.parametrize("training", [True, False])
def test_float16_dtype_rules_match_torch_live(training):
    """float16 input, or float16 parameters, with every dtype of each parameter (live only)."""
    pytest.importorskip("torch")
    from tests.oracle import Lib, compare, run

    torch_lib = Lib("torch")
    choices = [None, "float16", "float32", "float64"]
    for dtype, weight, bias, rm, rv in itertools.product(
        ["float16", "float32"], choices, choices, choices, choices
    ):
        if "float16" not in (dtype, weight, bias, rm, rv):
            continue
        kwargs = dict(
            shape=(2, 2), dtype=dtype, weight=weight, bias=bias, rm=rm, rv=rv, training=training
        )

        def case(lib, kwargs=kwargs):
            return functional_call(lib, **kwargs)

        compare(run(case, CASES_LIB), run(case, torch_lib), f"float16 {kwargs}")


# ---- a failed call changes nothing (numbanorm only) ---------------------------------------------

# (name, module kwargs, input shape, input dtype, setup, training): calls that raise.
BAD_MODULE_CALLS = [
    ("dims", "BatchNorm2d", {}, (4, 3), "float32", None, True),
    ("one-value", "BatchNorm1d", {}, (1, 3), "float32", None, True),
    ("one-value-momentum=None", "BatchNorm1d", {"momentum": None}, (1, 3), "float32", None, True),
    ("channels", "BatchNorm2d", {}, (2, 4, 2, 2), "float32", None, True),
    ("channels-eval", "BatchNorm2d", {}, (2, 4, 2, 2), "float32", None, False),
    ("eps=0", "BatchNorm1d", {"eps": 0.0}, (4, 3), "float32", None, True),
    ("eps<0-eval", "BatchNorm1d", {"eps": -1.0}, (4, 3), "float32", None, False),
    ("int64", "BatchNorm3d", {}, (2, 3, 1, 2, 2), "int64", None, True),
    ("bool", "BatchNorm1d", {"momentum": None}, (4, 3), "bool", None, True),
    ("mixed-input", "BatchNorm1d", {}, (4, 3), "float64", None, True),
    ("mixed-input-eval", "BatchNorm1d", {}, (4, 3), "float64", None, False),
    ("mixed-weight", "BatchNorm1d", {}, (4, 3), "float32", "weight", True),
    ("mixed-running_var", "BatchNorm1d", {}, (4, 3), "float32", "running_var", True),
    ("mixed-running_var-momentum=None", "BatchNorm1d", {"momentum": None}, (4, 3), "float32",
     "running_var", True),
]  # fmt: skip
# What torch does to num_batches_tracked on these calls: the dimension check comes before the
# counter is bumped, everything else after.
TORCH_BUMPS = {name: name != "dims" for name, *_ in BAD_MODULE_CALLS}


def _bad_module(lib, kind, kwargs, setup):
    """A module after one good training step (so grads, stats and the counter are set); ``eps``
    from ``kwargs`` is set after that step."""
    kwargs = dict(kwargs)
    eps = kwargs.pop("eps", None)
    module = getattr(lib.nn, kind)(3, **kwargs)
    shape = MODULE_SHAPES[kind]
    x = lib.tensor(deterministic(shape, 0) * 2 + 1, True)
    module(x).backward(lib.tensor(deterministic(shape, 1)))
    if eps is not None:
        module.eps = eps
    if setup is not None:
        tensor = lib.tensor(np.full(3, 0.5))  # float64
        if setup in ("weight", "bias"):
            tensor = lib.nn.Parameter(tensor)
        setattr(module, setup, tensor)
    return module


def _snapshot(module) -> dict:
    state = {}
    for name, value in [*module.named_parameters(), *module.named_buffers()]:
        state[name] = np.array(np.asarray(value.detach()), copy=True)
        state[f"{name}.id"] = id(value)
        state[f"{name}.dtype"] = value.dtype
        if value.grad is not None:
            state[f"{name}.grad"] = np.array(np.asarray(value.grad.detach()), copy=True)
            state[f"{name}.grad.id"] = id(value.grad)
    state["training"] = module.training
    return state


def _assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value, err_msg=key)
            assert after[key].dtype == value.dtype, key
        else:
            assert after[key] == value, key


@pytest.mark.parametrize("name", [call[0] for call in BAD_MODULE_CALLS])
def test_failed_module_call_changes_nothing(name):
    _, kind, kwargs, shape, dtype, setup, training = next(
        call for call in BAD_MODULE_CALLS if call[0] == name
    )
    lib = CASES_LIB
    module = _bad_module(lib, kind, kwargs, setup)
    module.train(training)
    before = _snapshot(module)
    counter = int(module.num_batches_tracked.item())
    assert counter == 1
    x = _input(lib, shape, dtype)
    if dtype.startswith("float"):
        x.requires_grad_(True)
    with pytest.raises((ValueError, RuntimeError, NotImplementedError, IndexError, TypeError)):
        module(x)
    _assert_same(before, _snapshot(module))
    assert int(module.num_batches_tracked.item()) == counter
    assert x.grad is None
    # The module still works afterwards (with a valid eps), and counts from where it was.
    module.train(True)
    module.eps = 1e-5
    good = lib.tensor(deterministic(MODULE_SHAPES[kind], 3, module.running_var.dtype))
    if setup is None:
        module(good)
        assert int(module.num_batches_tracked.item()) == counter + 1


@pytest.mark.parametrize("name", [call[0] for call in BAD_MODULE_CALLS])
def test_torch_bumps_counter_before_raising(name):
    """Documents the difference: torch 2.13 counts the failed batch (except wrong dims)."""
    pytest.importorskip("torch")
    from tests.oracle import Lib

    _, kind, kwargs, shape, dtype, setup, training = next(
        call for call in BAD_MODULE_CALLS if call[0] == name
    )
    lib = Lib("torch")
    module = _bad_module(lib, kind, kwargs, setup)
    module.train(training)
    with pytest.raises(Exception):  # noqa: B017 - the message is checked by the oracle cases
        module(_input(lib, shape, dtype))
    bumped = training and TORCH_BUMPS[name]
    assert int(module.num_batches_tracked.item()) == 1 + bumped


# (name, F.batch_norm keyword arguments): calls that raise; the tensors passed must not change.
BAD_FUNCTIONAL_CALLS = {
    "momentum=None": dict(momentum=None),
    "eps=0": dict(eps=0.0),
    "one-value": dict(shape=(1, 3)),
    "rm-only": dict(rv=None),
    "size": dict(sizes={"bias": (4,)}),
    "int64": dict(dtype="int64"),
    "mixed-weight": dict(weight="float64"),
    "mixed-running-stats": dict(rv="float64"),
    "mixed-input": dict(dtype="float64"),
    "mixed-input-eval": dict(dtype="float64", training=False),
    "training=1": dict(training=1),
}


@pytest.mark.parametrize("name", list(BAD_FUNCTIONAL_CALLS))
def test_failed_functional_call_changes_nothing(name, monkeypatch):
    seen = []
    real_tensor = CASES_LIB.tensor

    def tracking_tensor(array, requires_grad=False):
        tensor = real_tensor(array, requires_grad)
        seen.append((tensor, np.array(tensor.data, copy=True)))
        return tensor

    monkeypatch.setattr(CASES_LIB, "tensor", tracking_tensor)
    kwargs = dict(BAD_FUNCTIONAL_CALLS[name])
    kwargs.setdefault("grad", True)
    with pytest.raises((ValueError, RuntimeError, NotImplementedError, IndexError, TypeError)):
        functional_call(CASES_LIB, **kwargs)
    assert seen
    for tensor, before in seen:
        np.testing.assert_array_equal(tensor.data, before)
        assert tensor.grad is None


def test_module_dtype_names():
    """``dtype`` takes numpy dtypes and their names; the parameters and buffers get it."""
    for dtype in ["float64", np.float64, np.dtype("float64")]:
        module = numbanorm.nn.BatchNorm1d(3, dtype=dtype)
        assert module.weight.dtype == np.float64
        assert module.running_var.dtype == np.float64
        assert module.num_batches_tracked.dtype == np.int64
