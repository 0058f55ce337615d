"""nn.Linear and F.linear against torch: values, gradients, init bounds, repr, errors."""

import math

import numpy as np
import pytest

import numbanorm
from numbanorm.functions.linear import Linear as LinearFunction
from tests.gradcheck import gradcheck
from tests.oracle import Cases, deterministic

CASES = Cases("nn_linear")


def _module_case(lead, fin, fout, bias, dtype="float32"):
    def case(lib):
        m = lib.nn.Linear(fin, fout, bias=bias, dtype=lib.dtype(dtype))
        state = {"weight": lib.tensor(deterministic((fout, fin), 1, dtype))}
        if bias:
            state["bias"] = lib.tensor(deterministic((fout,), 2, dtype))
        m.load_state_dict(state)
        x = lib.tensor(deterministic((*lead, fin), 3, dtype), requires_grad=True)
        y = m(x)
        y.backward(lib.tensor(deterministic(y.shape, 4, dtype)))
        out = {"y": lib.numpy(y), "dx": lib.numpy(x.grad), "dw": lib.numpy(m.weight.grad)}
        if bias:
            out["db"] = lib.numpy(m.bias.grad)
        out["repr"] = np.array(repr(m))
        return out

    return case


for lead in [(5,), (2, 3), (2, 1, 3), ()]:
    for bias in (True, False):
        name = f"module_{'x'.join(map(str, lead)) or 'vec'}_{'bias' if bias else 'nobias'}"
        CASES.add(name, _module_case(lead, 4, 3, bias))
CASES.add("module_float64", _module_case((3,), 5, 2, True, "float64"))


def _functional_case(x_shape, w_shape, b_shape, need=(True, True, True)):
    def case(lib):
        x = lib.tensor(deterministic(x_shape, 5), requires_grad=need[0])
        w = lib.tensor(deterministic(w_shape, 6), requires_grad=need[1])
        b = None if b_shape is None else lib.tensor(deterministic(b_shape, 7), need[2])
        y = lib.F.linear(x, w, b)
        out = {"y": lib.numpy(y)}
        if any(need):
            y.backward(lib.tensor(deterministic(y.shape, 8)))
            for key, t, n in (("dx", x, need[0]), ("dw", w, need[1]), ("db", b, need[2])):
                if n and t is not None:
                    out[key] = lib.numpy(t.grad)
                elif t is not None:
                    out[key + "_none"] = np.array(t.grad is None)
        return out

    return case


CASES.add("functional_2d", _functional_case((4, 3), (2, 3), (2,)))
CASES.add("functional_only_w", _functional_case((4, 3), (2, 3), (2,), (False, True, False)))
CASES.add("functional_only_x", _functional_case((2, 4, 3), (2, 3), None, (True, False, False)))
CASES.add("functional_nograd", _functional_case((4, 3), (2, 3), (2,), (False, False, False)))
CASES.add("error_2d", _functional_case((4, 3), (2, 5), (2,)))
CASES.add("error_3d", _functional_case((2, 4, 3), (2, 5), None))
CASES.add("error_1d", _functional_case((3,), (2, 5), None))


@pytest.mark.parametrize("name", CASES.names())
def test_matches_torch(name):
    CASES.check(name)


@pytest.mark.parametrize("lead", [(4,), (2, 3), ()])
def test_gradcheck_linear(lead):
    x = deterministic((*lead, 3), 1, np.float64)
    w = deterministic((2, 3), 2, np.float64)
    b = deterministic((2,), 3, np.float64)
    gradcheck(LinearFunction.apply, [x, w, b])
    gradcheck(lambda x, w: LinearFunction.apply(x, w, None), [x, w])


def test_init_bounds_follow_torch_formulas():
    numbanorm.manual_seed(0)
    fin, fout = 50, 400
    m = numbanorm.nn.Linear(fin, fout)
    bound = 1 / math.sqrt(
        fin
    )  # kaiming_uniform_ with a=sqrt(5): gain*sqrt(3/fan_in) = 1/sqrt(fan_in)
    w, b = m.weight.data, m.bias.data
    assert w.shape == (fout, fin) and b.shape == (fout,) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.98 * bound
    # U(-bound, bound): mean 0, variance bound**2 / 3
    assert abs(w.mean()) < 0.01 * bound * 5
    assert abs(w.var() / (bound**2 / 3) - 1) < 0.03
    assert abs(b.mean()) < 0.2 * bound
    assert m.weight.requires_grad and m.bias.requires_grad


def test_init_uses_module_generator_and_options():
    numbanorm.manual_seed(7)
    a = numbanorm.nn.Linear(3, 4)
    numbanorm.manual_seed(7)
    b = numbanorm.nn.Linear(3, 4)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    m = numbanorm.nn.Linear(3, 4, bias=False, dtype="float64")
    assert m.bias is None and m.weight.dtype == np.float64
    assert [k for k, _ in m.named_parameters()] == ["weight"]
