"""Losses against torch: F.cross_entropy (class indices and probabilities, weights, ignore_index,
label smoothing, reductions, K-dim targets), F.mse_loss, their modules, errors, and float64
finite-difference checks of each Function."""

import warnings

import numpy as np
import pytest

import numbanorm
from numbanorm.functions.loss import CrossEntropy, CrossEntropyProbabilities, MSELoss
from tests.gradcheck import gradcheck
from tests.oracle import Cases, deterministic

CASES = Cases("nn_loss")
ERRORS = Cases("nn_loss_errors")

C = 4
SHAPES = {1: ((6, C), (6,)), 2: ((2, C, 3), (2, 3)), 3: ((2, C, 2, 3), (2, 2, 3))}


def targets(shape, seed, ignore=False):
    t = (np.arange(int(np.prod(shape))) * 7 + seed) % C
    if ignore:
        t[::3] = -100 if ignore is True else ignore
    return t.reshape(shape).astype(np.int64)


def ce_case(kdim, dtype, weighted, ignore, reduction, smoothing, scale=1.0, ignore_index=-100):
    in_shape, t_shape = SHAPES[kdim]

    def case(lib):
        x = lib.tensor(deterministic(in_shape, 1, dtype) * scale, requires_grad=True)
        t = lib.tensor(
            targets(t_shape, kdim, ignore and (ignore_index if ignore_index != -100 else True))
        )
        kwargs = {
            "reduction": reduction,
            "label_smoothing": smoothing,
            "ignore_index": ignore_index,
        }
        if weighted:
            kwargs["weight"] = lib.tensor(deterministic((C,), 2, dtype, 0.1, 2.0))
        out = lib.F.cross_entropy(x, t, **kwargs)
        out.backward(lib.tensor(deterministic(tuple(out.shape), 3, dtype)))
        return {"out": lib.numpy(out), "grad": lib.numpy(x.grad)}

    return case


for kdim in (1, 2, 3):
    for dtype in ("float32", "float64"):
        for weighted in (False, True):
            for ignore in (False, True):
                for reduction in ("none", "mean", "sum"):
                    for smoothing in (0.0, 0.2):
                        name = (
                            f"ce_k{kdim}_{dtype}_w{weighted:d}_i{ignore:d}_{reduction}_s{smoothing}"
                        )
                        CASES.add(
                            name, ce_case(kdim, dtype, weighted, ignore, reduction, smoothing)
                        )
for dtype in ("float32", "float64"):
    for reduction in ("none", "mean", "sum"):
        CASES.add(
            f"ce_large_{dtype}_{reduction}", ce_case(1, dtype, True, True, reduction, 0.1, 1e4)
        )
CASES.add("ce_ignore_index_2", ce_case(2, "float64", True, True, "mean", 0.3, ignore_index=2))
CASES.add("ce_smoothing_1", ce_case(1, "float64", True, False, "mean", 1.0))


def ce_all_ignored(lib):
    x = lib.tensor(deterministic((3, C), 4, np.float64), requires_grad=True)
    t = lib.tensor(np.full(3, -100, np.int64))
    out = lib.F.cross_entropy(x, t)
    out.backward()
    return {"out": lib.numpy(out), "grad": lib.numpy(x.grad)}


CASES.add("ce_all_ignored", ce_all_ignored)


def ce_unbatched(lib):
    x = lib.tensor(deterministic((C,), 5, np.float64), requires_grad=True)
    out = lib.F.cross_entropy(x, lib.tensor(np.array(2, np.int64)), label_smoothing=0.1)
    out.backward()
    return {"out": lib.numpy(out), "grad": lib.numpy(x.grad)}


CASES.add("ce_unbatched", ce_unbatched)


def prob_case(kdim, dtype, weighted, reduction, smoothing, scale=1.0):
    in_shape, _ = SHAPES[kdim]

    def case(lib):
        x = lib.tensor(deterministic(in_shape, 6, dtype) * scale, requires_grad=True)
        p = np.exp(deterministic(in_shape, 7, np.float64))
        p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
        kwargs = {"reduction": reduction, "label_smoothing": smoothing}
        if weighted:
            kwargs["weight"] = lib.tensor(deterministic((C,), 8, dtype, 0.1, 2.0))
        out = lib.F.cross_entropy(x, lib.tensor(p), **kwargs)
        out.backward(lib.tensor(deterministic(tuple(out.shape), 9, dtype)))
        return {"out": lib.numpy(out), "grad": lib.numpy(x.grad)}

    return case


for kdim in (1, 3):
    for dtype in ("float32", "float64"):
        for weighted in (False, True):
            for reduction in ("none", "mean", "sum"):
                for smoothing in (0.0, 0.25):
                    name = f"prob_k{kdim}_{dtype}_w{int(weighted)}_{reduction}_s{smoothing}"
                    CASES.add(name, prob_case(kdim, dtype, weighted, reduction, smoothing))
CASES.add("prob_large", prob_case(2, "float32", True, "mean", 0.1, 1e4))


def module_case(lib):
    m = lib.nn.CrossEntropyLoss(
        weight=lib.tensor(np.array([1.0, 2.0, 0.5, 1.5], np.float32)),
        ignore_index=1,
        label_smoothing=0.1,
    )
    x = lib.tensor(deterministic((5, C), 10), requires_grad=True)
    out = m(x, lib.tensor(targets((5,), 3)))
    out.backward()
    state = {f"state_{k}": np.asarray(v) for k, v in m.state_dict().items()}
    return {"out": lib.numpy(out), "grad": lib.numpy(x.grad), "repr": np.array(repr(m)), **state}


CASES.add("module_cross_entropy", module_case)


def mse_case(in_shape, t_shape, dtype, reduction, grad_target):
    def case(lib):
        x = lib.tensor(deterministic(in_shape, 11, dtype), requires_grad=True)
        y = lib.tensor(deterministic(t_shape, 12, dtype), requires_grad=grad_target)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = lib.nn.MSELoss(reduction=reduction)(x, y)
        out.backward(lib.tensor(deterministic(tuple(out.shape), 13, dtype)))
        result = {
            "out": lib.numpy(out),
            "grad": lib.numpy(x.grad),
            "repr": np.array(repr(lib.nn.MSELoss())),
        }
        result["warnings"] = np.array(" | ".join(str(w.message) for w in caught))
        if grad_target:
            result["target_grad"] = lib.numpy(y.grad)
        return result

    return case


for dtype in ("float32", "float64"):
    for reduction in ("none", "mean", "sum"):
        CASES.add(f"mse_{dtype}_{reduction}", mse_case((3, 4), (3, 4), dtype, reduction, True))
        CASES.add(
            f"mse_broadcast_{dtype}_{reduction}", mse_case((3, 1), (4,), dtype, reduction, True)
        )
CASES.add("mse_0d", mse_case((), (), "float64", "mean", True))


def error_case(call):
    def case(lib):
        x = lib.tensor(deterministic((3, C), 14))
        return {"out": lib.numpy(call(lib, x))}

    return case


def _t(lib, values, dtype=np.int64):
    return lib.tensor(np.array(values, dtype))


ERROR_CALLS = {
    "out_of_bounds": lambda lib, x: lib.F.cross_entropy(x, _t(lib, [0, 5, 1])),
    "negative_target": lambda lib, x: lib.F.cross_entropy(x, _t(lib, [0, -3, 1])),
    "smoothing_too_large": lambda lib, x: lib.F.cross_entropy(
        x, _t(lib, [0, 1, 1]), label_smoothing=1.5
    ),
    "ce_bad_reduction": lambda lib, x: lib.F.cross_entropy(x, _t(lib, [0, 1, 1]), reduction="foo"),
    "mse_bad_reduction": lambda lib, x: lib.F.mse_loss(x, x, reduction="foo"),
    "batch_mismatch": lambda lib, x: lib.F.cross_entropy(x, _t(lib, [0, 1])),
    "kdim_target_size": lambda lib, x: lib.F.cross_entropy(
        lib.tensor(deterministic((2, 3, 4), 15)), _t(lib, [[0, 1, 1], [0, 0, 0]])
    ),
    "multi_target": lambda lib, x: lib.F.cross_entropy(x, _t(lib, np.zeros((3, 5)))),
    "weight_size": lambda lib, x: lib.F.cross_entropy(
        x, _t(lib, [0, 1, 1]), weight=lib.tensor(np.ones(3, np.float32))
    ),
    "int32_target": lambda lib, x: lib.F.cross_entropy(x, _t(lib, [0, 1, 1], np.int32)),
    "float_target": lambda lib, x: lib.F.cross_entropy(x, _t(lib, [0, 1, 1], np.float32)),
    "prob_ignore_index": lambda lib, x: lib.F.cross_entropy(x, x, ignore_index=0),
    "mse_broadcast_error": lambda lib, x: lib.F.mse_loss(x, lib.tensor(deterministic((3,), 16))),
}
for name, call in ERROR_CALLS.items():
    ERRORS.add(name, error_case(call))


@pytest.mark.parametrize("name", CASES.names())
def test_loss(name):
    CASES.check(name)


@pytest.mark.parametrize("name", ERRORS.names())
def test_loss_errors(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ERRORS.check(name)


def test_mse_warning_text():
    x = numbanorm.Tensor(np.zeros((3, 1)))
    with pytest.warns(UserWarning, match=r"Using a target size \(torch.Size\(\[3\]\)\) that is "):
        numbanorm.nn.functional.mse_loss(x, numbanorm.Tensor(np.zeros(3)))


def test_weight_is_buffer():
    m = numbanorm.nn.CrossEntropyLoss(weight=numbanorm.Tensor(np.ones(3)))
    assert [name for name, _ in m.named_buffers()] == ["weight"]
    assert list(m.parameters()) == []


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck_cross_entropy(reduction, smoothing, weighted):
    t = targets((2, 3), 1, True)
    w = deterministic((C,), 2, np.float64, 0.1, 2.0) if weighted else None
    gradcheck(
        lambda x: CrossEntropy.apply(x, numbanorm.Tensor(t), w, -100, reduction, smoothing),
        [deterministic((2, C, 3), 3, np.float64)],
    )


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_gradcheck_cross_entropy_probabilities(reduction, smoothing):
    p = deterministic((2, C, 3), 4, np.float64, 0.0, 1.0)
    w = deterministic((C,), 5, np.float64, 0.1, 2.0)
    gradcheck(
        lambda x: CrossEntropyProbabilities.apply(x, numbanorm.Tensor(p), w, reduction, smoothing),
        [deterministic((2, C, 3), 6, np.float64)],
    )


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 1), (4,))])
def test_gradcheck_mse(reduction, shapes):
    gradcheck(
        lambda x, y: MSELoss.apply(x, y, reduction),
        [deterministic(shapes[0], 7, np.float64), deterministic(shapes[1], 8, np.float64)],
    )
