"""``Module`` and ``Parameter`` against torch: registration and its errors, traversals, modes,
``zero_grad``, ``to``, reprs, ``state_dict`` and ``load_state_dict`` (keys, metadata, errors,
``strict=False``, the ``num_batches_tracked`` version rule); then numbanorm's own promises: host
numpy values, torch checkpoints load as they are, and a failed load changes nothing."""

import numpy as np
import pytest

import numbanorm as nb
from tests.oracle import NUMBANORM, TORCH_AVAILABLE, Cases, deterministic

CASES = Cases("module")


def top(lib):
    """The library's top-level namespace: ``torch`` or ``numbanorm``."""
    return lib.torch if lib.name == "torch" else nb


def text(value) -> np.ndarray:
    return np.array(str(value))


def net(lib):
    """A user-defined container built alike in both libraries: nested, shared and None children,
    a non-persistent buffer, a parameter of its own."""

    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn1 = lib.nn.BatchNorm1d(3)
            self.inner = lib.nn.Module()
            self.inner.bn = lib.nn.BatchNorm2d(4, affine=False)
            self.inner.deep = lib.nn.Module()
            self.inner.deep.bn = lib.nn.BatchNorm3d(2, eps=1e-3, momentum=None, bias=False)
            self.bn3 = lib.nn.BatchNorm3d(2, momentum=None, track_running_stats=False)
            self.shared = self.bn1
            self.add_module("empty", None)
            self.scale = lib.nn.Parameter(lib.tensor(np.array([2.0], np.float32)))
            self.register_buffer("steps", lib.tensor(np.array([0, 1])), persistent=False)

    return Net()


def snapshot(state) -> dict:
    """A state_dict as arrays, with its keys, dtypes and shapes in order."""
    out = {
        "keys": text(list(state)),
        "dtypes": text([str(np.asarray(v).dtype) for v in state.values()]),
        "shapes": text([np.asarray(v).shape for v in state.values()]),
    }
    for key, value in state.items():
        out[f"value:{key}"] = np.array(np.asarray(value), copy=True)
    return out


# -- reprs ------------------------------------------------------------------------------------

BATCH_NORMS = {
    "BatchNorm1d-default": lambda lib: lib.nn.BatchNorm1d(3),
    "BatchNorm2d-options": lambda lib: lib.nn.BatchNorm2d(
        8, eps=1e-3, momentum=None, affine=False, track_running_stats=False
    ),
    "BatchNorm3d-no-bias": lambda lib: lib.nn.BatchNorm3d(5, momentum=0.25, bias=False),
    "BatchNorm2d-float64": lambda lib: lib.nn.BatchNorm2d(2, dtype=lib.dtype("float64")),
    "Module": lambda lib: lib.nn.Module(),
    "Net": net,
}
for _name, _make in BATCH_NORMS.items():
    CASES.add(f"repr-{_name}", lambda lib, m=_make: {"repr": text(repr(m(lib)))})
CASES.add("extra_repr", lambda lib: {"extra": text(lib.nn.BatchNorm1d(3).extra_repr())})


def parameter_basics(lib):
    p = lib.nn.Parameter(lib.tensor(np.array([1.0, 2.0], np.float32)))
    frozen = lib.nn.Parameter(lib.tensor(np.array([1.0], np.float32)), requires_grad=False)
    empty = lib.nn.Parameter()
    return {
        "requires_grad": np.array([p.requires_grad, frozen.requires_grad, empty.requires_grad]),
        "is_leaf": np.array(p.is_leaf),
        "empty_shape": np.array(list(empty.shape)),
        "empty_dtype": text(str(empty.dtype).replace("torch.", "")),
        "repr": text(repr(p)),
    }


def parameter_shares_its_data(lib):
    data = lib.tensor(np.array([1.0, 2.0], np.float32))
    p = lib.nn.Parameter(data)
    p.detach().numpy()[0] = 7.0
    return {"data": lib.numpy(data)}


CASES.add("parameter", parameter_basics)
CASES.add("parameter-shares-its-data", parameter_shares_its_data)
CASES.add(
    "parameter-int", lambda lib: {"p": lib.numpy(lib.nn.Parameter(lib.tensor(np.array([1, 2]))))}
)


# -- traversals -------------------------------------------------------------------------------


def names(pairs) -> np.ndarray:
    return text([name for name, _ in pairs])


TRAVERSALS = {
    "named_parameters": lambda m: names(m.named_parameters()),
    "named_parameters-prefix": lambda m: names(m.named_parameters(prefix="model")),
    "named_parameters-no-recurse": lambda m: names(m.named_parameters(recurse=False)),
    "named_parameters-duplicates": lambda m: names(m.named_parameters(remove_duplicate=False)),
    "parameters-shapes": lambda m: text([tuple(p.shape) for p in m.parameters()]),
    "named_buffers": lambda m: names(m.named_buffers()),
    "named_buffers-no-recurse": lambda m: names(m.named_buffers(recurse=False)),
    "buffers-shapes": lambda m: text([tuple(b.shape) for b in m.buffers()]),
    "named_modules": lambda m: names(m.named_modules()),
    "named_modules-prefix": lambda m: names(m.named_modules(prefix="root")),
    "named_modules-duplicates": lambda m: names(m.named_modules(remove_duplicate=False)),
    "modules-types": lambda m: text([type(c).__name__ for c in m.modules()]),
    "named_children": lambda m: names(m.named_children()),
    "children-types": lambda m: text([type(c).__name__ for c in m.children()]),
    "inner-named_parameters": lambda m: names(m.inner.named_parameters()),
    "inner-named_buffers": lambda m: names(m.inner.named_buffers(prefix="x")),
    "dir-has-members": lambda m: text([n for n in dir(m) if n in ("bn1", "scale", "steps")]),
    "apply-order": lambda m: text(_applied(m)),
}


def _applied(m):
    seen = []
    m.apply(lambda module: seen.append(type(module).__name__))
    return seen


for _name, _traverse in TRAVERSALS.items():
    CASES.add(f"traverse-{_name}", lambda lib, t=_traverse: {"result": t(net(lib))})


# -- registration and attribute errors --------------------------------------------------------


def registering(lib, action):
    m = lib.nn.BatchNorm1d(3)
    action(lib, m)
    return {
        "parameters": names(m.named_parameters()),
        "buffers": names(m.named_buffers()),
        "children": names(m.named_children()),
        "state": text(list(m.state_dict())),
    }


def _param(lib, values=(1.0, 2.0, 3.0)):
    return lib.nn.Parameter(lib.tensor(np.array(values, np.float32)))


REGISTER = {
    "set-parameter-to-array": lambda lib, m: setattr(m, "weight", np.zeros(3, np.float32)),
    "set-parameter-to-tensor": lambda lib, m: setattr(m, "weight", lib.tensor(np.zeros(3))),
    "set-parameter-to-module": lambda lib, m: setattr(m, "weight", lib.nn.Module()),
    "set-parameter-to-none": lambda lib, m: setattr(m, "weight", None),
    "set-new-parameter": lambda lib, m: setattr(m, "extra", _param(lib)),
    "set-buffer-to-parameter": lambda lib, m: setattr(m, "running_mean", _param(lib)),
    "set-buffer-to-array": lambda lib, m: setattr(m, "running_mean", np.zeros(3)),
    "set-buffer-to-int": lambda lib, m: setattr(m, "num_batches_tracked", 3),
    "set-buffer-to-none": lambda lib, m: setattr(m, "running_var", None),
    "set-buffer-to-tensor": lambda lib, m: setattr(m, "running_var", lib.tensor(np.ones(3))),
    "set-child-then-replace": lambda lib, m: (
        setattr(m, "child", lib.nn.Module()),
        setattr(m, "child", 5),
    ),
    "set-child-to-none": lambda lib, m: (
        setattr(m, "child", lib.nn.Module()),
        setattr(m, "child", None),
    ),
    "module-replaces-parameter": lambda lib, m: setattr(m, "bias", lib.nn.Module()),
    "parameter-replaces-buffer-of-same-name": lambda lib, m: setattr(m, "running_var", _param(lib)),
    "plain-attribute-replaced-by-parameter": lambda lib, m: (
        setattr(m, "plain", 1),
        setattr(m, "plain", _param(lib)),
    ),
    "register_parameter-non-parameter": lambda lib, m: m.register_parameter("p", np.zeros(1)),
    "register_parameter-dot": lambda lib, m: m.register_parameter("a.b", None),
    "register_parameter-empty": lambda lib, m: m.register_parameter("", None),
    "register_parameter-existing-attribute": lambda lib, m: m.register_parameter("eps", None),
    "register_parameter-not-a-string": lambda lib, m: m.register_parameter(1, None),
    "register_parameter-none": lambda lib, m: m.register_parameter("p", None),
    "register_buffer-non-tensor": lambda lib, m: m.register_buffer("b", [1.0]),
    "register_buffer-dot": lambda lib, m: m.register_buffer("a.b", None),
    "register_buffer-empty": lambda lib, m: m.register_buffer("", None),
    "register_buffer-existing-attribute": lambda lib, m: m.register_buffer("weight", None),
    "register_buffer-non-persistent": lambda lib, m: m.register_buffer(
        "extra", lib.tensor(np.zeros(2)), persistent=False
    ),
    "register_buffer-persistent-again": lambda lib, m: (
        m.register_buffer("extra", lib.tensor(np.zeros(2)), persistent=False),
        m.register_buffer("extra", lib.tensor(np.zeros(2))),
    ),
    "add_module-non-module": lambda lib, m: m.add_module("child", 3),
    "add_module-dot": lambda lib, m: m.add_module("a.b", lib.nn.Module()),
    "add_module-empty": lambda lib, m: m.add_module("", lib.nn.Module()),
    "add_module-existing-attribute": lambda lib, m: m.add_module("weight", lib.nn.Module()),
    "register_module": lambda lib, m: m.register_module("child", lib.nn.BatchNorm1d(2)),
    "delattr-parameter": lambda lib, m: delattr(m, "weight"),
    "delattr-buffer": lambda lib, m: delattr(m, "running_mean"),
    "delattr-child": lambda lib, m: (setattr(m, "child", lib.nn.Module()), delattr(m, "child")),
    "delattr-missing": lambda lib, m: delattr(m, "missing"),
    "getattr-missing": lambda lib, m: m.missing,
}
for _name, _action in REGISTER.items():
    CASES.add(f"register-{_name}", lambda lib, a=_action: registering(lib, a))


def before_init(lib, value):
    class Early(lib.nn.Module):
        def __init__(self):
            self.x = value(lib)
            super().__init__()

    Early()
    return {}


CASES.add("before-init-parameter", lambda lib: before_init(lib, _param))
CASES.add("before-init-module", lambda lib: before_init(lib, lambda lib: lib.nn.Module()))
CASES.add("forward-missing", lambda lib: lib.nn.Module()(lib.tensor(np.zeros(1))))


# -- modes, gradients, devices and dtypes -----------------------------------------------------


def modes(lib):
    class Frozen(lib.nn.BatchNorm1d):
        def train(self, mode=True):  # a child that refuses training mode
            return super().train(False)

    m = net(lib)
    m.frozen = Frozen(3)
    flags = {"initial": [mod.training for mod in m.modules()]}
    flags["returns_self"] = [m.eval() is m, m.train() is m]
    flags["train"] = [mod.training for mod in m.modules()]
    m.eval()
    flags["eval"] = [mod.training for mod in m.modules()]
    m.inner.train()
    flags["inner_train"] = [mod.training for mod in m.modules()]
    m.train(False)
    flags["train_false"] = [mod.training for mod in m.modules()]
    return {key: np.array(value) for key, value in flags.items()}


CASES.add("modes", modes)
CASES.add("train-not-bool", lambda lib: lib.nn.BatchNorm1d(3).train(1))


def zero_grad(lib, set_to_none):
    m = lib.nn.BatchNorm1d(3)
    x = lib.tensor(deterministic((4, 3), 1), requires_grad=True)
    m(x).backward(lib.tensor(deterministic((4, 3), 2)))
    weight_grad = m.weight.grad
    m.zero_grad(set_to_none=set_to_none)
    out = {
        "weight_grad_is_none": np.array(m.weight.grad is None),
        "same_object": np.array(m.weight.grad is weight_grad),
        "x_grad": lib.numpy(x.grad),  # zero_grad touches parameters only
    }
    if m.weight.grad is not None:
        out["weight_grad"] = lib.numpy(m.weight.grad)
        out["weight_grad_requires_grad"] = np.array(m.weight.grad.requires_grad)
    m(x).backward(lib.tensor(deterministic((4, 3), 2)))
    out["after"] = lib.numpy(m.weight.grad)
    return out


CASES.add("zero_grad", lambda lib: zero_grad(lib, True))
CASES.add("zero_grad-set_to_none=False", lambda lib: zero_grad(lib, False))
CASES.add(
    "requires_grad_",
    lambda lib: {
        "flags": np.array([p.requires_grad for p in net(lib).requires_grad_(False).parameters()])
    },
)


def to(lib, *args, **kwargs):
    m = net(lib)
    m.load_state_dict(_source_state(lib))  # float32 values that float64 holds exactly
    m.bn1.weight.grad = lib.tensor(np.array([0.5, -1.0, 2.0], np.float32))
    weight = m.bn1.weight
    returned = m.to(*args, **kwargs)
    out = snapshot(m.state_dict())
    out["returns_self"] = np.array(returned is m)
    out["same_parameter"] = np.array(m.bn1.weight is weight)
    out["grad_dtype"] = text(str(m.bn1.weight.grad.dtype).replace("torch.", ""))
    out["grad"] = lib.numpy(m.bn1.weight.grad)
    out["buffer_dtype"] = text([str(b.dtype).replace("torch.", "") for b in m.buffers()])
    x64 = lib.tensor(deterministic((4, 3), 3, np.asarray(out["value:bn1.weight"]).dtype))
    out["y"] = lib.numpy(m.bn1(x64))
    return out


TO = {
    "dtype-keyword": lambda lib: to(lib, dtype=lib.dtype("float64")),
    "dtype-positional": lambda lib: to(lib, lib.dtype("float64")),
    "device-and-dtype": lambda lib: to(lib, "cpu", lib.dtype("float64")),
    "device-keyword": lambda lib: to(lib, device="cpu"),
    "device-object": lambda lib: to(lib, top(lib).device("cpu")),
    "int-dtype": lambda lib: to(lib, dtype=lib.dtype("int64")),
    "bool-dtype": lambda lib: to(lib, lib.dtype("bool")),
    "unknown-device": lambda lib: to(lib, "tpu"),
    "invalid-device": lambda lib: to(lib, device="cuda:x"),
    "double": lambda lib: snapshot(net(lib).double().state_dict()),
    "float-after-double": lambda lib: snapshot(net(lib).double().float().state_dict()),
    "cpu": lambda lib: snapshot(net(lib).cpu().state_dict()),
}
for _name, _args in TO.items():
    CASES.add(f"to-{_name}", _args)


# -- state_dict -------------------------------------------------------------------------------


def state_dict_metadata(state):
    meta = state._metadata
    return {"meta_keys": text(list(meta)), "meta_values": text(list(meta.values()))}


def trained_net(lib):
    """A Net after one training step, so running statistics and counters are not defaults."""
    m = net(lib)
    m.bn1(lib.tensor(deterministic((4, 3), 1)))
    m.inner.bn(lib.tensor(deterministic((2, 4, 2, 2), 2)))
    return m


STATE = {
    "Net": lambda lib: snapshot(trained_net(lib).state_dict()),
    "Net-metadata": lambda lib: state_dict_metadata(net(lib).state_dict()),
    "Net-prefix": lambda lib: snapshot(net(lib).state_dict(prefix="model.")),
    "Net-prefix-metadata": lambda lib: state_dict_metadata(net(lib).state_dict(prefix="model.")),
    "BatchNorm2d": lambda lib: snapshot(lib.nn.BatchNorm2d(3).state_dict()),
    "BatchNorm2d-metadata": lambda lib: state_dict_metadata(lib.nn.BatchNorm2d(3).state_dict()),
    "BatchNorm1d-no-affine-no-tracking": lambda lib: snapshot(
        lib.nn.BatchNorm1d(3, affine=False, track_running_stats=False).state_dict()
    ),
    "BatchNorm1d-float64": lambda lib: snapshot(
        lib.nn.BatchNorm1d(3, dtype=lib.dtype("float64")).state_dict()
    ),
    "keep_vars": lambda lib: {
        "types": text([type(v).__name__ for v in net(lib).state_dict(keep_vars=True).values()]),
        "requires_grad": np.array(
            [v.requires_grad for v in net(lib).state_dict(keep_vars=True).values()]
        ),
    },
    "shares-memory-with-the-module": lambda lib: _state_shares_memory(lib),
}


def _state_shares_memory(lib):
    m = lib.nn.BatchNorm1d(3)
    state = m.state_dict()
    m(lib.tensor(deterministic((4, 3), 1)))  # updates the running statistics in place
    return {"running_mean": np.array(np.asarray(state["running_mean"]), copy=True)}


for _name, _case in STATE.items():
    CASES.add(f"state_dict-{_name}", _case)


# -- load_state_dict --------------------------------------------------------------------------


def _source_state(lib):
    """Net's keys with distinctive values, as the library's tensors (a plain dict)."""
    state = {}
    for i, (key, value) in enumerate(net(lib).state_dict().items()):
        array = np.asarray(value)
        if array.dtype.kind == "f":
            array = deterministic(array.shape, 50 + i, array.dtype, 0.5, 1.5)
        else:
            array = np.full(array.shape, 10 + i, array.dtype)
        state[key] = lib.tensor(array)
    return state


def load(lib, edit, strict=True, target=net, keep_metadata=False):
    """Load an edited state into ``target``: the result, or the error, and then the state."""
    module = target(lib)
    if keep_metadata:
        state = module.state_dict()
        for key, value in _source_state(lib).items():
            if key in state:
                state[key] = value
    else:
        state = _source_state(lib) if target is net else dict(module.state_dict())
    edit(lib, state)
    out = {}
    try:
        result = module.load_state_dict(state, strict=strict)
        out["result"] = text(result)
        out["missing"] = text(result.missing_keys)
        out["unexpected"] = text(result.unexpected_keys)
    except Exception as e:
        out["error"] = np.array(f"{type(e).__name__}: {e}")
    if "error" not in out:  # torch partially loads before it raises: compare only success
        out.update(snapshot(module.state_dict()))
    return out


def _delete(*keys):
    def edit(lib, state):
        for key in keys:
            del state[key]

    return edit


def _set(key, array):
    def edit(lib, state):
        state[key] = lib.tensor(np.asarray(array))

    return edit


def _both(*edits):
    def edit(lib, state):
        for e in edits:
            e(lib, state)

    return edit


LOADS = {
    "all": lambda lib, state: None,
    "missing": _delete("bn1.weight", "inner.deep.bn.running_var"),
    "unexpected": _both(
        _set("inner.zzz", [1.0]),
        _set("bn1.extra", [1.0]),
        _set("aaa", [1.0]),
        _set("inner.deep.bn.extra", [1.0]),
        _set("nothing.here", [1.0]),
        _set("bn1.sub.weight", [1.0]),
        _set("empty.weight", [1.0]),
        _set("steps", [1]),
    ),
    "size-mismatch": _both(
        _set("bn1.weight", [1.0, 2.0]),
        _set("inner.bn.running_mean", np.zeros((4, 1), np.float32)),
        _set("bn1.num_batches_tracked", np.array([3, 4])),
    ),
    "everything-wrong": _both(
        _delete("scale"),
        _set("extra", [1.0]),
        _set("shared.bias", np.zeros((2, 2), np.float32)),
    ),
    "only-shared-name": _delete(*[f"bn1.{k}" for k in ("weight", "bias", "running_mean")]),
    "0d-from-1-element": _set("bn1.num_batches_tracked", np.array([7])),
    "casts-dtypes": _both(
        _set("bn1.weight", np.array([1, 2, 3])),
        _set("bn1.running_mean", np.array([0.5, 1.5, 2.5], np.float64)),
        _set("inner.bn.num_batches_tracked", np.array(5.0)),
    ),
    "value-none": lambda lib, state: state.__setitem__("bn1.weight", None),
    "value-string": lambda lib, state: state.__setitem__("bn1.weight", "abc"),
}
for _name, _edit in LOADS.items():
    CASES.add(f"load-{_name}", lambda lib, e=_edit: load(lib, e))
    if _name != "all":
        CASES.add(f"load-{_name}-strict=False", lambda lib, e=_edit: load(lib, e, strict=False))
CASES.add("load-not-a-mapping", lambda lib: net(lib).load_state_dict([("bn1.weight", 1)]))


# num_batches_tracked: torch's _NormBase fills a missing one from the module (keeping its
# count) when the module's metadata version is missing or below 2, and reports it otherwise.


def _counted_batch_norm(lib):
    m = lib.nn.BatchNorm1d(3)
    for step in range(3):
        m(lib.tensor(deterministic((4, 3), step)))
    return m


def _version(version):
    def edit(lib, state):
        del state["num_batches_tracked"]
        if version == "drop-entry":
            del state._metadata[""]
        elif version is not None:
            state._metadata[""]["version"] = version

    return edit


NBT = {
    "plain-dict": lambda lib: load(lib, _delete("num_batches_tracked"), target=_counted_batch_norm),
    "metadata-v2": lambda lib: load(
        lib, _version(None), target=_counted_batch_norm, keep_metadata=True
    ),
    "metadata-v1": lambda lib: load(
        lib, _version(1), target=_counted_batch_norm, keep_metadata=True
    ),
    "metadata-without-module": lambda lib: load(
        lib, _version("drop-entry"), target=_counted_batch_norm, keep_metadata=True
    ),
    "metadata-v2-strict=False": lambda lib: load(
        lib, _version(None), strict=False, target=_counted_batch_norm, keep_metadata=True
    ),
    "nested-metadata": lambda lib: load(
        lib, _delete("bn1.num_batches_tracked", "inner.bn.num_batches_tracked"), keep_metadata=True
    ),
    "nested-metadata-one-dropped": lambda lib: load(
        lib,
        _both(
            _delete("bn1.num_batches_tracked", "inner.bn.num_batches_tracked"),
            lambda lib, state: state._metadata.pop("inner.bn"),
        ),
        keep_metadata=True,
    ),
    "nested-plain": lambda lib: load(
        lib, _delete("bn1.num_batches_tracked", "inner.deep.bn.num_batches_tracked")
    ),
    "no-tracking": lambda lib: load(
        lib,
        lambda lib, state: None,
        target=lambda lib: lib.nn.BatchNorm1d(3, track_running_stats=False),
    ),
}
for _name, _case in NBT.items():
    CASES.add(f"load-num_batches_tracked-{_name}", _case)


def load_assign(lib):
    """assign=True: the module takes the values themselves, dtypes included."""
    m = lib.nn.BatchNorm1d(3)
    x = lib.tensor(deterministic((4, 3), 1), requires_grad=True)
    m(x).backward(lib.tensor(deterministic((4, 3), 2)))
    weight = lib.tensor(np.array([1.0, 2.0, 3.0]))  # float64 into a float32 module
    state = dict(m.state_dict(), weight=weight, running_mean=lib.tensor(np.array([7.0, 8, 9])))
    m.load_state_dict(state, assign=True)
    weight.numpy()[0] = -1.0  # shared with the module now
    out = snapshot(m.state_dict())
    out["weight_requires_grad"] = np.array(m.weight.requires_grad)
    out["weight_grad_is_none"] = np.array(m.weight.grad is None)
    out["bias_grad_is_none"] = np.array(m.bias.grad is None)
    return out


CASES.add("load-assign", load_assign)
CASES.add(
    "load-assign-size-mismatch",
    lambda lib: lib.nn.BatchNorm1d(3).load_state_dict(
        {"weight": lib.tensor(np.ones(2))}, strict=False, assign=True
    ),
)


def load_into_itself(lib):
    m = trained_net(lib)
    result = m.load_state_dict(m.state_dict())
    return {"result": text(result)} | snapshot(m.state_dict())


CASES.add("load-own-state_dict", load_into_itself)


@pytest.mark.parametrize("name", CASES.names())
def test_module_matches_torch(name):
    CASES.check(name)


# -- numbanorm only ---------------------------------------------------------------------------


def test_state_dict_values_are_host_numpy_arrays():
    state = nb.nn.BatchNorm2d(3).state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    count = state["num_batches_tracked"]
    assert count.dtype == np.int64 and count.shape == ()


def _fingerprint(module) -> dict:
    return {k: np.array(v, copy=True) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize(
    "bad",
    [
        {"bn1.bias": np.zeros(5, np.float32)},  # a size mismatch after good keys
        {"inner.bn.running_var": None},  # not an array
    ],
)
def test_a_failed_load_changes_nothing(bad, strict):
    """torch copies every good key before it raises; numbanorm checks everything first."""
    m = net(NUMBANORM)
    m.bn1(nb.tensor(deterministic((4, 3), 1)))
    before = _fingerprint(m)
    state = {k: np.full_like(v, 9) for k, v in before.items()}
    state.update(bad)
    with pytest.raises(RuntimeError, match="Error\\(s\\) in loading state_dict for Net"):
        m.load_state_dict(state, strict=strict)
    after = _fingerprint(m)
    assert list(after) == list(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


def test_a_load_missing_keys_changes_nothing():
    m = nb.nn.BatchNorm1d(3)
    state = {"weight": np.full(3, 5.0), "bias": np.full(3, 5.0)}  # running stats missing
    with pytest.raises(RuntimeError, match="Missing key"):
        m.load_state_dict(state)
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones(3, np.float32))


def test_load_accepts_what_np_asarray_takes_and_copies_it():
    m = nb.nn.BatchNorm1d(3)
    source = np.array([4.0, 5.0, 6.0])
    state = {
        "weight": [1.0, 2.0, 3.0],
        "bias": (0.5, 0.5, 0.5),
        "running_mean": source,
        "running_var": nb.tensor([2.0, 2.0, 2.0]),
        "num_batches_tracked": 4,
    }
    m.load_state_dict(state)
    source[0] = -1.0
    loaded = m.state_dict()
    np.testing.assert_array_equal(loaded["weight"], np.float32([1, 2, 3]))
    np.testing.assert_array_equal(loaded["running_mean"], np.float32([4, 5, 6]))
    assert loaded["num_batches_tracked"] == 4 and loaded["running_mean"].dtype == np.float32


def test_load_of_values_aliasing_the_module_swaps_correctly():
    """Values that are views of the module's own arrays are read before anything is written."""
    m = nb.nn.BatchNorm1d(3)
    m.running_mean.data[...] = 1.0
    m.running_var.data[...] = 2.0
    state = m.state_dict()
    swapped = dict(state, running_mean=state["running_var"], running_var=state["running_mean"])
    m.load_state_dict(swapped)
    np.testing.assert_array_equal(m.running_mean.numpy(), np.full(3, 2.0, np.float32))
    np.testing.assert_array_equal(m.running_var.numpy(), np.full(3, 1.0, np.float32))


@pytest.mark.skipif(not TORCH_AVAILABLE, reason="needs torch")
def test_a_torch_state_dict_loads_as_it_is_and_back():
    import torch

    reference = torch.nn.BatchNorm2d(3, momentum=None)
    reference.load_state_dict(
        {"weight": torch.tensor([0.5, 1.0, 2.0]), "bias": torch.tensor([0.0, 1.0, -1.0])},
        strict=False,
    )
    for step in range(2):
        reference(torch.from_numpy(deterministic((2, 3, 2, 2), step)))
    m = nb.nn.BatchNorm2d(3, momentum=None)
    assert str(m.load_state_dict(reference.state_dict())) == "<All keys matched successfully>"
    for key, value in reference.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[key], value.numpy(), err_msg=key)
    # keep_vars gives Parameters that require grad: they load too
    m.load_state_dict(reference.state_dict(keep_vars=True))
    back = torch.nn.BatchNorm2d(3, momentum=None)
    back.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    for key, value in back.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), m.state_dict()[key], err_msg=key)


def test_to_converts_every_array_before_replacing_any(monkeypatch):
    """A conversion that fails half way leaves every parameter and buffer as it was."""
    import numbanorm.backends.cpu as cpu

    m = net(NUMBANORM)
    before = _fingerprint(m)
    calls = []
    real = cpu.asarray

    def failing(data, dtype=None):
        calls.append(1)
        if len(calls) == 5:
            raise MemoryError("out of memory")
        return real(data, dtype)

    monkeypatch.setattr(cpu, "asarray", failing)
    with pytest.raises(MemoryError):
        m.to(dtype="float64")
    monkeypatch.undo()
    after = _fingerprint(m)
    assert all(after[k].dtype == before[k].dtype for k in before)


def test_deepcopy_and_pickle_keep_the_state():
    import copy
    import pickle

    m = net(NUMBANORM)
    m.bn1(nb.tensor(deterministic((4, 3), 1)))
    copied = copy.deepcopy(m)
    assert copied.shared is copied.bn1
    assert repr(copied) == repr(m)
    bn = nb.nn.BatchNorm2d(2, momentum=None)
    bn(nb.tensor(deterministic((2, 2, 2, 2), 1)))
    for original, clone in [(m, copied), (bn, pickle.loads(pickle.dumps(bn)))]:
        mine, theirs = original.state_dict(), clone.state_dict()
        assert list(mine) == list(theirs)
        for key in mine:
            np.testing.assert_array_equal(theirs[key], mine[key], err_msg=key)
            assert not np.shares_memory(theirs[key], mine[key]), key
