"""Bad and odd input to InstanceNorm1d/2d/3d and F.instance_norm: torch 2.13's exception types,
messages and order, and what torch does with the odd input it accepts (empty batches, running
statistics of other dtypes, negative eps).

torch runs instance norm as a batch norm of ``(1, N*C, *spatial)`` with the weight, bias and
running statistics repeated N times, the running statistics cast first to the weight's dtype (or
the input's): its errors count ``N*C`` channels, and running statistics of another dtype are
rounded through it. The last part runs on numbanorm alone: a failed call changes nothing.
"""

import itertools

import numpy as np
import pytest

from tests.oracle import NUMBANORM, Cases, deterministic

CASES = Cases("instancenorm_errors")

MODULE_SHAPES = {
    "InstanceNorm1d": (2, 3, 4),
    "InstanceNorm2d": (2, 3, 2, 2),
    "InstanceNorm3d": (2, 3, 1, 2, 2),
}


def _flag(value) -> str:
    return "Y" if value else "N"


def _input(lib, shape, dtype="float32", seed=0):
    array = deterministic(shape, seed, "float64", -2.0, 3.0)
    if np.dtype(dtype).kind in "iub":
        array = np.round(array * 3)
    return lib.tensor(array.astype(dtype))


def module_call(
    lib, kind, shape, training=True, dtype="float32", setup=None, state_dtype=None, **kwargs
):
    """One forward call of ``kind(3, **kwargs)`` on an input of ``shape``; output and state
    (floating values as ``state_dtype`` when given: the precision torch computed them in)."""
    module = getattr(lib.nn, kind)(3, **kwargs)
    module.train(training)
    if setup is not None:
        setup(lib, module)
    y = module(_input(lib, shape, dtype))
    out = {"y": lib.numpy(y)}
    for key, value in module.state_dict().items():
        value = np.asarray(value)
        out[key] = value.astype(state_dtype) if state_dtype and value.dtype.kind == "f" else value
    return out


def add_module(name, kind, shape, **kwargs):
    CASES.add(f"module-{name}", lambda lib: module_call(lib, kind, shape, **kwargs))


# Wrong number of dimensions, in either mode, before anything else (a long input too).
WRONG_DIMS = {
    "InstanceNorm1d": [(), (3,), (2, 3, 2, 2)],
    "InstanceNorm2d": [(2, 3), (2, 3, 1, 2, 2)],
    "InstanceNorm3d": [(2, 3, 4), (2, 3, 1, 1, 2, 2)],
}
for kind, shapes in WRONG_DIMS.items():
    for shape, training in itertools.product(shapes, [True, False]):
        label = "x".join(map(str, shape)) or "scalar"
        add_module(f"{kind}-dims-{label}-train={_flag(training)}", kind, shape, training=training)
add_module("InstanceNorm2d-dims-and-long", "InstanceNorm2d", (2, 3), dtype="int64")

# One spatial element: an error whenever the input's own statistics normalize (in eval too,
# unless running statistics are tracked), batched or not.
ONE_ELEMENT = {
    "InstanceNorm1d": [(2, 3, 1), (3, 1)],
    "InstanceNorm2d": [(2, 3, 1, 1), (3, 1, 1)],
    "InstanceNorm3d": [(1, 3, 1, 1, 1)],
}
for kind, shapes in ONE_ELEMENT.items():
    for shape in shapes:
        label = "x".join(map(str, shape))
        for training, track in [(True, False), (False, False), (True, True), (False, True)]:
            add_module(
                f"{kind}-one-element-{label}-train={_flag(training)}-track={_flag(track)}",
                kind,
                shape,
                training=training,
                track_running_stats=track,
            )

# Dtypes: the dtype check comes after the spatial check.
add_module("InstanceNorm1d-long", "InstanceNorm1d", (2, 3, 4), dtype="int64")
add_module("InstanceNorm1d-long-one-element", "InstanceNorm1d", (2, 3, 1), dtype="int64")
add_module("InstanceNorm1d-bool", "InstanceNorm1d", (2, 3, 4), dtype="bool")
for x_dtype, affine, track in itertools.product(
    ["float16", "float64"], [True, False], [True, False]
):
    add_module(
        f"InstanceNorm1d-{x_dtype}-input-float32-module-affine={_flag(affine)}-track={_flag(track)}",
        "InstanceNorm1d",
        (2, 3, 4),
        dtype=x_dtype,
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


for name, training in itertools.product(
    ["weight", "bias", "running_mean", "running_var"], [True, False]
):
    add_module(
        f"InstanceNorm1d-{name}=float64-train={_flag(training)}",
        "InstanceNorm1d",
        (2, 3, 4),
        training=training,
        affine=True,
        track_running_stats=True,
        setup=_set(**{name: "float64"}),
        state_dtype="float32",
    )
for names, training in itertools.product(
    [("running_mean",), ("running_var",), ("running_mean", "running_var")], [True, False]
):
    add_module(
        f"InstanceNorm1d-{'+'.join(names)}=None-train={_flag(training)}",
        "InstanceNorm1d",
        (2, 3, 4),
        training=training,
        track_running_stats=True,
        setup=_set(**dict.fromkeys(names)),
    )
# An empty batch: torch averages no copies of the running statistics, which become NaN; with
# affine parameters, it first fails to read weight[0] of no copies.
for shape, training, affine in itertools.product(
    [(0, 3, 4), (2, 3, 0)], [True, False], [True, False]
):
    label = "x".join(map(str, shape))
    add_module(
        f"InstanceNorm1d-empty-{label}-train={_flag(training)}-affine={_flag(affine)}",
        "InstanceNorm1d",
        shape,
        training=training,
        affine=affine,
        track_running_stats=True,
    )


# ---- F.instance_norm ---------------------------------------------------------------------------


def functional_call(
    lib,
    shape=(2, 3, 4),
    dtype="float32",
    rm=None,
    rv=None,
    weight=None,
    bias=None,
    use_input_stats=True,
    momentum=0.1,
    eps=1e-5,
    sizes=None,
    grad=False,
):
    """One F.instance_norm call. ``rm``/``rv``/``weight``/``bias``: a dtype name or None;
    ``sizes`` overrides their shapes (name -> shape). Returns the output, the gradients when
    ``grad``, and the running statistics after."""
    sizes = sizes or {}
    channels = shape[1] if len(shape) > 1 else 1
    args = {}
    for seed, (name, dt) in enumerate([("rm", rm), ("rv", rv), ("weight", weight), ("bias", bias)]):
        if dt is None:
            args[name] = None
            continue
        size = sizes.get(name, (channels,))
        array = deterministic(size, seed + 1, "float64", 0.5, 1.5)
        if np.dtype(dt).kind in "iu":
            array = np.round(array * 3)
        args[name] = lib.tensor(array.astype(dt), grad and name in ("weight", "bias"))
    x = _input(lib, shape, dtype)
    if grad:
        x.requires_grad_(True)
    y = lib.F.instance_norm(
        x,
        args["rm"],
        args["rv"],
        args["weight"],
        args["bias"],
        use_input_stats=use_input_stats,
        momentum=momentum,
        eps=eps,
    )
    out = {"y": lib.numpy(y)}
    if grad:
        y.backward(lib.tensor(deterministic(shape, 9, lib.numpy(y).dtype)))
        for name, tensor in (("x", x), ("weight", args["weight"]), ("bias", args["bias"])):
            if tensor is not None:
                out[f"d{name}"] = lib.numpy(tensor.grad)
    # Running statistics that torch casts (to the weight's dtype, or the input's) hold values of
    # that dtype: compared at its precision, their own dtype checked apart.
    computed = np.dtype(weight or dtype)
    cast = rm is not None and np.dtype(rm) != computed and computed.kind == "f"
    for name in ("rm", "rv"):
        if args[name] is not None:
            value = lib.numpy(args[name])
            out[f"{name}.dtype"] = np.array(str(value.dtype))
            out[name] = value.astype(computed) if cast else value
    return out


def add_functional(name, **kwargs):
    CASES.add(f"F-{name}", lambda lib: functional_call(lib, **kwargs))


STATS = {"rm": "float32", "rv": "float32"}
AFFINE = {"weight": "float32", "bias": "float32"}

# Ranks 0 to 2: the spatial check comes first (it sees no spatial element), then the running
# statistics' presence, then the size of dimensions 0 and 1.
for shape, use, stats in itertools.product([(), (3,), (2, 3)], [True, False], [True, False]):
    label = "x".join(map(str, shape)) or "scalar"
    add_functional(
        f"rank{len(shape)}-{label}-use_input_stats={_flag(use)}-stats={_flag(stats)}",
        shape=shape,
        use_input_stats=use,
        **(STATS if stats else {}),
    )
add_functional("one-element", shape=(2, 3, 1, 1))
add_functional("one-element-eval", shape=(2, 3, 1, 1), use_input_stats=False, **STATS)
add_functional("eval-without-stats", use_input_stats=False)
add_functional("eval-mean-only", use_input_stats=False, rm="float32")
add_functional("train-mean-only", rm="float32")
add_functional("train-var-only", rv="float32")

# Argument types, in the parser's order, after the spatial check (which tests truthiness).
add_functional("use_input_stats=1", use_input_stats=1)
add_functional("use_input_stats=1-one-element", use_input_stats=1, shape=(2, 3, 1))
add_functional("use_input_stats=0", use_input_stats=0, **STATS)
add_functional("use_input_stats=None", use_input_stats=None)
add_functional("momentum=None", momentum=None, **STATS)
add_functional("momentum=str", momentum="a")
add_functional("momentum-and-eps=None", momentum="a", eps=None)
add_functional("eps=None", eps=None)
add_functional("eps=int", eps=1)
add_functional("eps=bool", eps=True)
add_functional("momentum=numpy", momentum=np.float32(0.5), **STATS)
add_functional("bad-momentum-before-missing-stats", momentum="a", use_input_stats=False)

# Sizes: the repeated tensors' element counts against N*C, in torch's order.
add_functional("weight-size", weight="float32", sizes={"weight": (4,)})
add_functional("bias-size", bias="float32", sizes={"bias": (2,)})
add_functional("weight-and-bias-size", **AFFINE, sizes={"weight": (4,), "bias": (5,)})
add_functional("rm-size", **STATS, sizes={"rm": (4,)})
add_functional("rv-size-eval", **STATS, sizes={"rv": (4,)}, use_input_stats=False)
add_functional("rm-and-weight-size", **STATS, **AFFINE, sizes={"rm": (5,), "weight": (6,)})
add_functional("weight-2d", weight="float32", sizes={"weight": (1, 3)})
add_functional("rm-2d", **STATS, sizes={"rm": (1, 3)})
add_functional(
    "weight-2d-and-rm-size", **STATS, weight="float32", sizes={"weight": (1, 3), "rm": (5,)}
)
add_functional("weight-0d", weight="float32", sizes={"weight": ()})
add_functional(
    "weight-0d-one-channel", shape=(3, 1, 4), **AFFINE, sizes={"weight": (), "bias": ()}, grad=True
)
add_functional("stats-0d-one-channel-train", shape=(3, 1, 4), **STATS, sizes={"rm": (), "rv": ()})
add_functional(
    "stats-0d-one-channel-eval",
    shape=(3, 1, 4),
    **STATS,
    sizes={"rm": (), "rv": ()},
    use_input_stats=False,
)

# Dtypes.
for dtype in ["int64", "int32", "bool", "complex64"]:
    add_functional(f"input-{dtype}", dtype=dtype)
add_functional("input-long-eval", dtype="int64", use_input_stats=False, **STATS)
add_functional("weight-float64", weight="float64")
add_functional("weight-int64", weight="int64")
add_functional("input-float64-weight-float32", dtype="float64", weight="float32")
add_functional(
    "input-float64-weight-float32-eval",
    dtype="float64",
    weight="float32",
    **STATS,
    use_input_stats=False,
)
# Running statistics of another dtype than the weight's (or the input's) are cast to it: any
# dtype goes, and the update is rounded through it...
for stats_dtype, use in itertools.product(["float64", "float16", "int64"], [True, False]):
    add_functional(
        f"stats-{stats_dtype}-use_input_stats={_flag(use)}",
        rm=stats_dtype,
        rv=stats_dtype,
        use_input_stats=use,
        grad=True,
    )
add_functional("stats-float64-weight-float64", rm="float64", rv="float64", weight="float64")
# ...but only when the running mean's dtype differs: then the running variance is cast with it.
add_functional("rm-float32-rv-float64", rm="float32", rv="float64")
add_functional("rm-float32-rv-float64-eval", rm="float32", rv="float64", use_input_stats=False)
add_functional("rm-float64-rv-float32", rm="float64", rv="float32")
add_functional("rm-float64-rv-float16-eval", rm="float64", rv="float16", use_input_stats=False)
# float16 input: mixed precision with float32 parameters (the first one decides).
HALF = {"dtype": "float16", "grad": True}
add_functional("half", **HALF)
add_functional("half-stats-float32", **HALF, **STATS)
add_functional("half-stats-float32-eval", **HALF, **STATS, use_input_stats=False)
add_functional(
    "half-weight-float32-stats-float64", **HALF, weight="float32", rm="float64", rv="float64"
)
add_functional(
    "half-weight-float32-stats-float16", **HALF, weight="float32", rm="float16", rv="float16"
)
add_functional("half-all-float16", **HALF, **{k: "float16" for k in ("rm", "rv", "weight", "bias")})
add_functional("half-weight-float32-bias-float16", **HALF, weight="float32", bias="float16")
add_functional("half-bias-float32-stats-float32", **HALF, bias="float32", **STATS)
add_functional("half-weight-float64", **HALF, weight="float64")

# eps: no check at all (unlike batch_norm); a negative eps gives NaN where var + eps < 0, and the
# running variance does not depend on it.
for eps, use in itertools.product([0.0, -2.0], [True, False]):
    add_functional(f"eps={eps}-use_input_stats={_flag(use)}", eps=eps, use_input_stats=use, **STATS)
add_functional("momentum=-0.5", momentum=-0.5, **STATS)
add_functional("momentum=2", momentum=2, **STATS)

# Empty input: torch's empty batch norm (weight[0], bias[0] of the repeats), then the running
# statistics are stored back as the average of N copies (NaN for N = 0).
EMPTY = {"N=0": (0, 3, 4), "S=0": (2, 3, 0), "C=0": (2, 0, 4), "N=0-C=1": (0, 1, 4)}
for (label, shape), use in itertools.product(EMPTY.items(), [True, False]):
    add_functional(
        f"empty-{label}-use_input_stats={_flag(use)}", shape=shape, use_input_stats=use, **STATS
    )
add_functional("empty-N=0-stats-int64", shape=(0, 3, 4), rm="int64", rv="int64")
add_functional("empty-S=0-stats-float64", shape=(2, 3, 0), rm="float64", rv="float64")
add_functional("empty-S=0-rv-float64", shape=(2, 3, 0), rm="float32", rv="float64")
add_functional("empty-N=0-weight", shape=(0, 3, 4), **AFFINE)
add_functional("empty-S=0-weight", shape=(2, 3, 0), **AFFINE, grad=True)
add_functional("empty-C=0-weight", shape=(2, 0, 4), weight="float32")
add_functional("empty-S=0-weight-size", shape=(2, 3, 0), weight="float32", sizes={"weight": (2,)})
add_functional("empty-S=0-weight-2d", shape=(2, 3, 0), weight="float32", sizes={"weight": (1, 3)})
add_functional("empty-S=0-long", shape=(2, 3, 0), dtype="int64")
add_functional("empty-S=0-long-weight", shape=(2, 3, 0), dtype="int64", weight="float32")
add_functional("empty-S=0-long-stats", shape=(2, 3, 0), dtype="int64", **STATS)
add_functional(
    "empty-S=0-long-stats-eval", shape=(2, 3, 0), dtype="int64", **STATS, use_input_stats=False
)
add_functional("empty-S=0-weight-int64-stats", shape=(2, 3, 0), weight="int64", **STATS)
add_functional("empty-S=0-stats-int64", shape=(2, 3, 0), rm="int64", rv="int64")
add_functional("empty-S=0-rm-only", shape=(2, 3, 0), rm="float32")
add_functional("empty-S=0-rm-size", shape=(2, 3, 0), **STATS, sizes={"rm": (4,)})
add_functional("empty-S=0-rv-size", shape=(2, 3, 0), **STATS, sizes={"rv": (4,)})
add_functional("empty-S=0-rm-one", shape=(2, 3, 0), **STATS, sizes={"rm": (1,)})
add_functional("empty-N=0-rm-size", shape=(0, 3, 4), **STATS, sizes={"rm": (4,)})
add_functional("empty-N=0-C=1-rm-size", shape=(0, 1, 4), **STATS, sizes={"rm": (4,)})
add_functional("empty-S=0-stats-0d", shape=(2, 1, 0), **STATS, sizes={"rm": (), "rv": ()})
add_functional("empty-C=0-rm-size", shape=(2, 0, 4), **STATS, sizes={"rm": (2,)})
add_functional("empty-N=0-C=0-rm-size", shape=(0, 0, 4), **STATS, sizes={"rm": (2,)})


@pytest.mark.parametrize("name", CASES.names())
def test_error_matches_torch(name):
    CASES.check(name)


# ---- numbanorm alone: a failed call changes nothing ----------------------------------------------

# (name, F.instance_norm keyword arguments): calls that raise; no tensor passed may change.
BAD_FUNCTIONAL_CALLS = {
    "one-element": dict(shape=(2, 3, 1), **STATS),
    "train-mean-only": dict(rm="float32"),
    "weight-size": dict(**STATS, **AFFINE, sizes={"bias": (4,)}),
    "int64": dict(dtype="int64", **STATS),
    "mixed-weight": dict(**STATS, weight="float64"),
    "rm-float32-rv-float64": dict(rm="float32", rv="float64", **AFFINE),
    # torch stores the running mean back before it finds the running variance's size wrong.
    "empty-rv-size": dict(shape=(2, 3, 0), **STATS, sizes={"rv": (4,)}),
    "stats-0d": dict(shape=(3, 1, 4), **STATS, sizes={"rm": (), "rv": ()}),
    "use_input_stats=0": dict(use_input_stats=0, **STATS),
}


@pytest.mark.parametrize("name", list(BAD_FUNCTIONAL_CALLS))
def test_failed_functional_call_changes_nothing(name, monkeypatch):
    seen = []
    real_tensor = NUMBANORM.tensor

    def tracking_tensor(array, requires_grad=False):
        tensor = real_tensor(array, requires_grad)
        seen.append((tensor, np.array(tensor.data, copy=True)))
        return tensor

    monkeypatch.setattr(NUMBANORM, "tensor", tracking_tensor)
    kwargs = dict(BAD_FUNCTIONAL_CALLS[name])
    kwargs.setdefault("grad", True)
    with pytest.raises((ValueError, RuntimeError, NotImplementedError, IndexError, TypeError)):
        functional_call(NUMBANORM, **kwargs)
    assert seen
    for tensor, before in seen:
        np.testing.assert_array_equal(tensor.data, before)
        assert tensor.grad is None
