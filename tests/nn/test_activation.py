"""ReLU, GELU, Tanh, Flatten and Dropout against torch; gradchecks; dropout statistics."""

import numpy as np
import pytest

import numbanorm
from numbanorm.functions.activation import GELU, ReLU, Tanh
from numbanorm.functions.dropout import Dropout as DropoutFunction
from tests.gradcheck import gradcheck
from tests.oracle import Cases, deterministic

CASES = Cases("nn_activation")


def _act_case(make, functional, dtype="float32", shape=(3, 5)):
    def case(lib):
        x0 = deterministic(shape, 11, dtype, low=-4.0, high=4.0)
        x0.flat[0] = 0.0  # ReLU's gradient at 0 is 0 in torch
        out = {}
        for key, run in (("m", lambda x: make(lib)(x)), ("f", lambda x: functional(lib)(x))):
            x = lib.tensor(x0, requires_grad=True)
            y = run(x)
            y.backward(lib.tensor(deterministic(shape, 12, dtype)))
            out[f"{key}_y"] = lib.numpy(y)
            out[f"{key}_dx"] = lib.numpy(x.grad)
        out["repr"] = np.array(repr(make(lib)))
        return out

    return case


ACTIVATIONS = {
    "relu": (lambda lib: lib.nn.ReLU(), lambda lib: lib.F.relu),
    "gelu": (lambda lib: lib.nn.GELU(), lambda lib: lib.F.gelu),
    "gelu_tanh": (
        lambda lib: lib.nn.GELU(approximate="tanh"),
        lambda lib: lambda x: lib.F.gelu(x, approximate="tanh"),
    ),
    "tanh": (lambda lib: lib.nn.Tanh(), lambda lib: lib.F.tanh),
}
for name, (make, functional) in ACTIVATIONS.items():
    CASES.add(name, _act_case(make, functional))
    CASES.add(name + "_float64", _act_case(make, functional, "float64", (2, 2, 3)))


def _gelu_bad(lib):
    return {"y": lib.numpy(lib.F.gelu(lib.tensor(np.ones(2, np.float32)), approximate="fast"))}


CASES.add("gelu_bad_approximate", _gelu_bad)
CASES.add("relu_inplace_repr", lambda lib: {"r": np.array(repr(lib.nn.ReLU(inplace=True)))})


def _flatten_case(shape, *args):
    def case(lib):
        x = lib.tensor(deterministic(shape, 13), requires_grad=True)
        m = lib.nn.Flatten(*args)
        y = m(x)
        y.backward(lib.tensor(deterministic(y.shape, 14)))
        return {"y": lib.numpy(y), "dx": lib.numpy(x.grad), "repr": np.array(repr(m))}

    return case


CASES.add("flatten_default", _flatten_case((2, 3, 4)))
CASES.add("flatten_0_1", _flatten_case((2, 3, 4, 5), 0, 1))
CASES.add("flatten_neg", _flatten_case((2, 3, 4, 5), -3, -2))
CASES.add("flatten_out_of_range", _flatten_case((2, 3), 2))


def _dropout_case(p, training, module=True):
    def case(lib):
        x = lib.tensor(deterministic((4, 3), 15), requires_grad=True)
        if module:
            m = lib.nn.Dropout(p)
            m.train(training)
            y = m(x)
            out = {"repr": np.array(repr(m))}
        else:
            y = lib.F.dropout(x, p, training)
            out = {}
        y.backward(lib.tensor(deterministic((4, 3), 16)))
        out.update(y=lib.numpy(y), dx=lib.numpy(x.grad))
        return out

    return case


CASES.add("dropout_eval", _dropout_case(0.5, False))
CASES.add("dropout_p0", _dropout_case(0.0, True))
CASES.add("dropout_p1", _dropout_case(1.0, True))
CASES.add("dropout_functional_eval", _dropout_case(0.3, False, module=False))
CASES.add("dropout_module_error", _dropout_case(1.5, True))
CASES.add("dropout_functional_error", _dropout_case(-0.1, True, module=False))
CASES.add("dropout_repr", lambda lib: {"r": np.array(repr(lib.nn.Dropout(0.2, inplace=True)))})


@pytest.mark.parametrize("name", CASES.names())
def test_matches_torch(name):
    CASES.check(name)


@pytest.mark.parametrize(
    "function",
    [
        ReLU.apply,
        Tanh.apply,
        lambda x: GELU.apply(x, "none"),
        lambda x: GELU.apply(x, "tanh"),
    ],
)
def test_gradcheck_activations(function):
    x = deterministic((3, 4), 21, np.float64, low=-3.0, high=3.0)
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU away from its kink
    gradcheck(function, [x])


def test_gradcheck_dropout_with_a_fixed_mask():
    x = deterministic((3, 4), 22, np.float64)

    def function(t):
        numbanorm.manual_seed(3)  # the same mask in every evaluation
        return DropoutFunction.apply(t, 0.4)

    gradcheck(function, [x])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_mask_statistics_scaling_and_grads(p):
    numbanorm.manual_seed(0)
    n = 200_000
    x = numbanorm.Tensor(np.ones(n, np.float32), requires_grad=True)
    y = numbanorm.nn.functional.dropout(x, p)
    values = y.data
    scale = np.float32(1 / (1 - p))
    kept = values != 0
    assert y.dtype == np.float32
    np.testing.assert_array_equal(values[kept], scale)
    # The kept fraction is Binomial(n, 1 - p) / n: within 5 standard deviations.
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    g = deterministic((n,), 5)
    y.backward(numbanorm.Tensor(g))
    np.testing.assert_array_equal(x.grad.data, g * (kept * scale))


def test_dropout_same_seed_same_mask_and_eval_identity():
    x = numbanorm.Tensor(deterministic((50,), 1))
    numbanorm.manual_seed(4)
    a = numbanorm.nn.functional.dropout(x).data
    numbanorm.manual_seed(4)
    b = numbanorm.nn.functional.dropout(x).data
    np.testing.assert_array_equal(a, b)
    m = numbanorm.nn.Dropout(0.5).eval()
    assert m(x) is x
    assert numbanorm.nn.functional.dropout(x, 0.0) is x
