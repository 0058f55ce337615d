"""``numbanorm.tensor``, ``Tensor`` and ``device`` against torch: dtype inference, copies and
views, ``numpy()``/``detach()``, ``backward()``'s argument checks, torch's device strings."""

import warnings

import numpy as np
import pytest

import numbanorm as nb
from tests.oracle import TORCH_AVAILABLE, Cases, deterministic

CASES = Cases("tensor")


def top(lib):
    """The library's top-level namespace: ``torch`` or ``numbanorm``."""
    return lib.torch if lib.name == "torch" else nb


def dtype_name(dtype) -> np.ndarray:
    return np.array(str(dtype).removeprefix("torch."))


def describe(lib, t) -> dict:
    """What a tensor is, as arrays both libraries produce alike."""
    return {
        "dtype": dtype_name(t.dtype),
        "shape": np.array(list(t.shape), np.int64),
        "device": np.array(str(t.device)),
        "requires_grad": np.array(t.requires_grad),
        "is_leaf": np.array(t.is_leaf),
        "values": lib.numpy(t),
    }


# -- torch.tensor's dtype inference -------------------------------------------------------------

DATA = {
    "float": lambda: 1.5,
    "int": lambda: 3,
    "bool": lambda: True,
    "complex": lambda: 1 + 2j,
    "big-int": lambda: 2**40,
    "list-int-float": lambda: [1, 2.5],
    "list-int": lambda: [1, 2],
    "list-bool-int": lambda: [True, 2],
    "nested": lambda: [[1.0, 2.0], [3.0, 4.0]],
    "tuple": lambda: (1.0, 2.0),
    "empty-list": lambda: [],
    "numpy-float64-scalar": lambda: np.float64(1.25),
    "numpy-int32-scalar": lambda: np.int32(7),
    "list-numpy-float64": lambda: [np.float64(1.0), np.float64(2.0)],
    "list-numpy-int32": lambda: [np.int32(1), np.int32(-2)],
    "list-numpy-float16": lambda: [np.float16(1.5)],
    "list-numpy-float64-and-float": lambda: [np.float64(1.0), 2.0],
    "list-float-and-numpy-int32": lambda: [1.5, np.int32(2)],
    "list-numpy-int32-and-int": lambda: [np.int32(1), 2],
    "list-of-float64-arrays": lambda: [np.array([1.0, 2.0]), np.array([3.0, 4.0])],
    "array-int32": lambda: np.array([[1, 2]], np.int32),
    "array-float16": lambda: np.array([0.5, 1.5], np.float16),
    "array-float64-0d": lambda: np.array(2.5),
    "array-uint8": lambda: np.array([1, 255], np.uint8),
}


def tensor_from(lib, data, **kwargs):
    with warnings.catch_warnings():  # torch: a list of arrays is "extremely slow"
        warnings.simplefilter("ignore", UserWarning)
        t = top(lib).tensor(data(), **kwargs)
    return describe(lib, t)


for _name, _data in DATA.items():
    CASES.add(f"infer-{_name}", lambda lib, d=_data: tensor_from(lib, d))

for _name, _dtype in [("list-int", "float64"), ("float", "float64"), ("array-int32", "float32")]:
    CASES.add(
        f"dtype={_dtype}-{_name}",
        lambda lib, d=DATA[_name], t=_dtype: tensor_from(lib, d, dtype=lib.dtype(t)),
    )

CASES.add("requires_grad", lambda lib: tensor_from(lib, DATA["nested"], requires_grad=True) | {})
CASES.add("requires_grad-int", lambda lib: tensor_from(lib, DATA["list-int"], requires_grad=True))
CASES.add(
    "requires_grad-bool", lambda lib: tensor_from(lib, DATA["list-bool-int"], requires_grad=True)
)
CASES.add("device=cpu", lambda lib: tensor_from(lib, DATA["float"], device="cpu"))
CASES.add(
    "device=torch.device",
    lambda lib: tensor_from(lib, DATA["float"], device=top(lib).device("cpu")),
)
CASES.add("device=tpu", lambda lib: tensor_from(lib, DATA["float"], device="tpu"))


def copies_its_data(lib):
    """tensor() copies: changing the source afterwards leaves the tensor as it was."""
    source = np.array([1.0, 2.0], np.float32)
    t = top(lib).tensor(source)
    source[0] = 10.0
    return {"values": lib.numpy(t)}


CASES.add("copies-its-data", copies_its_data)


# -- numpy(), detach(), requires_grad_() -------------------------------------------------------


def numpy_shares_memory(lib):
    t = top(lib).tensor([1.0, 2.0, 3.0])
    t.numpy()[1] = 20.0
    return {"values": t.numpy().copy(), "same": np.array(t.numpy() is not None)}


def numpy_of_requires_grad(lib):
    return {"x": top(lib).tensor([1.0], requires_grad=True).numpy()}


def detach(lib):
    x = top(lib).tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    d.numpy()[0] = 5.0  # the same memory
    out = describe(lib, d)
    out["grad_is_none"] = np.array(d.grad is None)
    out["x"] = lib.numpy(x)
    out["x_requires_grad"] = np.array(x.requires_grad)
    return out


def detach_of_result(lib):
    x = top(lib).tensor([1.0, 2.0], requires_grad=True)
    d = x.sum().detach()
    return describe(lib, d) | {"has_grad_fn": np.array(d.grad_fn is not None)}


def requires_grad_(lib):
    t = top(lib).tensor([1.0, 2.0])
    same = t.requires_grad_() is t
    first = t.requires_grad
    t.requires_grad_(False)
    return {"same": np.array(same), "first": np.array(first), "then": np.array(t.requires_grad)}


def requires_grad_int(lib):
    return {"x": top(lib).tensor([1, 2]).requires_grad_()}


def item(lib):
    return {
        "float": np.array(top(lib).tensor([2.5]).item()),
        "int": np.array(top(lib).tensor(3).item()),
    }


def item_of_many(lib):
    return {"x": np.array(top(lib).tensor([1.0, 2.0]).item())}


def set_requires_grad(lib, data, value, through_sum=False):
    t = top(lib).tensor(data, requires_grad=through_sum)
    if through_sum:
        t = t.sum()
    t.requires_grad = value
    return {"requires_grad": np.array(t.requires_grad)}


def requires_grad_of_result(lib, value):
    y = top(lib).tensor([1.0], requires_grad=True).sum()
    return {"same": np.array(y.requires_grad_(value) is y), "flag": np.array(y.requires_grad)}


SETTERS = {
    "set-requires_grad-float": lambda lib: set_requires_grad(lib, [1.0], True),
    "set-requires_grad-int": lambda lib: set_requires_grad(lib, [1], True),
    "set-requires_grad-int-False": lambda lib: set_requires_grad(lib, [1], False),
    "set-requires_grad-not-bool": lambda lib: set_requires_grad(lib, [1.0], 1),
    "set-requires_grad-result-False": lambda lib: set_requires_grad(lib, [1.0], False, True),
    "set-requires_grad-result-True": lambda lib: set_requires_grad(lib, [1.0], True, True),
    "requires_grad_-result-False": lambda lib: requires_grad_of_result(lib, False),
    "requires_grad_-result-True": lambda lib: requires_grad_of_result(lib, True),
}
for _name, _case in SETTERS.items():
    CASES.add(_name, _case)


def set_grad(lib, make_grad):
    x = top(lib).tensor([1.0, 2.0], requires_grad=True)
    x.grad = make_grad(lib)
    out = {"is_none": np.array(x.grad is None)}
    if x.grad is not None:
        out["grad"] = lib.numpy(x.grad)
    return out


GRADS = {
    "matching": lambda lib: top(lib).tensor([3.0, 4.0]),
    "none": lambda lib: None,
    "wrong-size": lambda lib: top(lib).tensor([3.0, 4.0, 5.0]),
    "float64": lambda lib: top(lib).tensor([3.0, 4.0], dtype=lib.dtype("float64")),
    "int64": lambda lib: top(lib).tensor([3, 4]),
    "float16": lambda lib: top(lib).tensor([3.0, 4.0], dtype=lib.dtype("float16")),
    "not-a-tensor": lambda lib: 1.0,
}
for _name, _grad in GRADS.items():
    CASES.add(f"set-grad-{_name}", lambda lib, g=_grad: set_grad(lib, g))


def to(lib, *args, **kwargs):
    """Tensor.to: a copy on the tape, or the tensor itself when nothing changes."""
    x = lib.tensor(deterministic((2, 3), 1), requires_grad=True)
    y = x.to(*args, **kwargs)
    out = describe(lib, y) | {"same": np.array(y is x)}
    if y.requires_grad:
        y.sum().backward()
        out["dx"] = lib.numpy(x.grad)
        out["dx_dtype"] = dtype_name(x.grad.dtype)
    return out


TO = {
    "float64-positional": lambda lib: to(lib, lib.dtype("float64")),
    "float64-keyword": lambda lib: to(lib, dtype=lib.dtype("float64")),
    "float16": lambda lib: to(lib, lib.dtype("float16")),
    "int64": lambda lib: to(lib, lib.dtype("int64")),
    "same-dtype": lambda lib: to(lib, lib.dtype("float32")),
    "cpu": lambda lib: to(lib, "cpu"),
    "cpu-and-float64": lambda lib: to(lib, "cpu", lib.dtype("float64")),
    "device-keyword": lambda lib: to(lib, device=top(lib).device("cpu")),
    "unknown-device": lambda lib: to(lib, "tpu"),
}
for _name, _case in TO.items():
    CASES.add(f"to-{_name}", _case)


def sum_of(lib, dtype):
    values = np.array([[1, 0, 1], [1, 1, 0]]).astype(dtype)
    s = top(lib).tensor(values).sum()
    return {"sum": lib.numpy(s), "dtype": dtype_name(s.dtype), "shape": np.array(list(s.shape))}


for _dtype in ["bool", "uint8", "int32", "int64", "float16", "float32", "float64", "complex64"]:
    CASES.add(f"sum-{_dtype}", lambda lib, d=_dtype: sum_of(lib, d))
CASES.add(
    "sum-float16-many",
    lambda lib: {"sum": lib.numpy(top(lib).tensor(np.full(3000, 0.1, np.float16)).sum())},
)


for _case in [
    numpy_shares_memory,
    numpy_of_requires_grad,
    detach,
    detach_of_result,
    requires_grad_,
    requires_grad_int,
    item,
    item_of_many,
]:
    CASES.add(_case.__name__.replace("_", "-"), _case)


# -- backward()'s argument checks --------------------------------------------------------------


def backward_of(
    lib, shape, gradient=None, requires_grad=True, through_sum=False, dtype="float32", **kwargs
):
    x = lib.tensor(deterministic(shape, 1, dtype), requires_grad=requires_grad)
    y = x.sum() if through_sum else x
    if gradient is not None:
        gradient = lib.tensor(gradient)
    y.backward(gradient, **kwargs)
    return {"grad": lib.numpy(x.grad), "grad_dtype": dtype_name(x.grad.dtype)}


BACKWARD = {
    "scalar-implicit": lambda lib: backward_of(lib, (2, 3), through_sum=True),
    "leaf-with-gradient": lambda lib: backward_of(lib, (2, 3), deterministic((2, 3), 2)),
    "one-element-implicit": lambda lib: backward_of(lib, (1,)),
    "0d-implicit": lambda lib: backward_of(lib, ()),
    "non-scalar-implicit": lambda lib: backward_of(lib, (2, 3)),
    "no-requires-grad": lambda lib: backward_of(lib, (2,), requires_grad=False),
    "no-requires-grad-result": lambda lib: backward_of(
        lib, (2,), requires_grad=False, through_sum=True
    ),
    "gradient-shape-mismatch": lambda lib: backward_of(lib, (2, 3), np.ones((3, 2), np.float32)),
    "gradient-0d-for-1-element": lambda lib: backward_of(lib, (1,), np.ones((), np.float32)),
    "gradient-float64-for-float32": lambda lib: backward_of(
        lib, (3,), deterministic((3,), 2, np.float64)
    ),
    "gradient-int64-for-float32": lambda lib: backward_of(lib, (3,), np.array([1, 2, 3])),
    "gradient-float32-for-float64-scalar": lambda lib: backward_of(
        lib, (), np.array(2.0, np.float32), dtype="float64"
    ),
    "retain_graph-keyword": lambda lib: backward_of(lib, (2,), through_sum=True, retain_graph=True),
}
for _name, _case in BACKWARD.items():
    CASES.add(f"backward-{_name}", _case)


# -- torch.device ------------------------------------------------------------------------------

DEVICES = ["cpu", "cpu:0", "cpu:3", "cuda", "cuda:1", "", "tpu", "CPU", "cuda:x", "cuda:01"]
DEVICES += ["cuda:-1", "cuda:0:1", " cpu"]


def device_from(lib, *args):
    d = top(lib).device(*args)
    return {"repr": np.array(repr(d)), "str": np.array(str(d)), "type": np.array(d.type)}


for _spec in DEVICES:
    CASES.add(f"device-{_spec!r}", lambda lib, s=_spec: device_from(lib, s))
for _args in [("cuda", 1), ("cpu", 0), ("cuda", -1), ("cpu:0", 1)]:
    CASES.add(f"device-{_args!r}", lambda lib, a=_args: device_from(lib, *a))
CASES.add("device-of-device", lambda lib: device_from(lib, top(lib).device("cuda:2")))
CASES.add("device-float", lambda lib: device_from(lib, 1.5))


@pytest.mark.parametrize("name", CASES.names())
def test_tensor_matches_torch(name):
    CASES.check(name)


# -- numbanorm only ----------------------------------------------------------------------------


def test_device_types_torch_knows_but_numbanorm_has_no_kernels_for_are_refused():
    with pytest.raises(RuntimeError, match="numbanorm has no kernels for device 'mps'"):
        nb.device("mps")


def test_device_compares_equal_to_its_name():
    assert nb.device("cuda:1") == "cuda:1" and nb.device("cpu") != "cuda"
    assert hash(nb.device("cpu")) == hash(nb.device("cpu"))


def test_tensor_wraps_its_array_and_numpy_gives_it_back():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = nb.Tensor(array)
    assert t.numpy() is array and np.asarray(t) is array
    assert t.ndim == 2 and t.dim() == 2 and t.numel() == 6 and len(t) == 2 and t.size(1) == 3


def test_tensor_of_a_tensor_copies_it():
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    y = nb.tensor(x)
    assert not y.requires_grad and y.dtype == np.float32
    assert not np.shares_memory(y.data, x.data)
    nested = nb.tensor([nb.tensor(1.0), nb.tensor(2.0)])
    np.testing.assert_array_equal(nested.numpy(), np.array([1.0, 2.0], np.float32))


@pytest.mark.skipif(not TORCH_AVAILABLE, reason="needs torch")
def test_torch_devices_and_dtypes_are_understood():
    import torch

    assert nb.device(torch.device("cuda", 1)) == "cuda:1"
    x = nb.tensor([1.0], dtype=torch.float64, device=torch.device("cpu"))
    assert x.dtype == np.float64 and x.device == "cpu"
    assert x.to(torch.device("cpu"), torch.float32).dtype == np.float32
    m = nb.nn.BatchNorm1d(2).to(torch.device("cpu"), torch.float64)
    assert m.weight.dtype == np.float64
