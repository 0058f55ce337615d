"""Tensor arithmetic against torch: elementwise operators (broadcasting, type promotion),
matmul, reshape/view/transpose/indexing, sum/mean with ``dim``; values, gradients of every
input, result dtypes and error messages; then float64 finite-difference checks of each Function."""

import operator
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numbanorm as nb
from tests.gradcheck import gradcheck
from tests.oracle import Cases, deterministic

CASES = Cases("tensor_ops")


def dtype_name(dtype) -> np.ndarray:
    return np.array(str(dtype).replace("torch.", ""))


def results(lib, out, leaves, seed=7) -> dict:
    """``out``'s value and dtype, and each floating leaf's gradient under a fixed upstream."""
    value = lib.numpy(out)
    result = {"out": value, "dtype": dtype_name(out.dtype)}
    if out.requires_grad:
        out.backward(lib.tensor(deterministic(value.shape, seed, value.dtype)))
        for k, leaf in enumerate(leaves):
            if getattr(leaf, "requires_grad", False):
                result[f"grad{k}"] = lib.numpy(leaf.grad)
    return result


def operand(lib, spec, seed):
    """A tensor from ``(shape, dtype)``, requiring a gradient when floating, or a Python number."""
    if not isinstance(spec, tuple):
        return spec
    shape, dtype = spec
    array = deterministic(shape, seed, np.float64, 0.5, 2.5)
    if np.dtype(dtype).kind in "iub":
        array = np.round(array * 2)
    array = array.astype(dtype)
    return lib.tensor(array, requires_grad=np.dtype(dtype).kind == "f")


OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}
F32, F64 = "float32", "float64"
BINARY = {
    "same": (((2, 3), F32), ((2, 3), F32)),
    "row": (((2, 3), F32), ((3,), F32)),
    "column": (((2, 1), F64), ((1, 3), F64)),
    "lead": (((4, 1, 3), F32), ((2, 1), F32)),
    "zero_dim": (((2, 3), F32), ((), F32)),
    "f32_f64": (((2, 3), F32), ((3,), F64)),
    "f32_0d_f64": (((2, 3), F32), ((), F64)),
    "int_0d_f64": (((2, 3), "int32"), ((), F64)),
    "f16_f32": (((3,), "float16"), ((3,), F32)),
    "int_int": (((3,), "int32"), ((3,), "int64")),
    "int_f32": (((3,), "int64"), ((2, 3), F32)),
    "scalar_float": (((2, 3), F32), 1.5),
    "scalar_int": (((2, 3), F32), 3),
    "scalar_bool": (((2, 3), F64), True),
    "int_scalar_float": (((3,), "int64"), 2.5),
    "int_scalar_int": (((3,), "int32"), 2),
    "f16_scalar": (((3,), "float16"), 2.5),
    "float_scalar_left": (-1.5, ((2, 3), F32)),
    "int_scalar_left": (4, ((3,), "int64")),
    "mismatch": (((2, 3), F32), ((2, 4), F32)),
    "mismatch_lead": (((5, 3), F32), ((2, 1, 4), F32)),
}


def binary_case(op, specs):
    def case(lib):
        a, b = (operand(lib, spec, seed) for seed, spec in enumerate(specs, start=1))
        return results(lib, OPS[op](a, b), [a, b])

    return case


for _op in OPS:
    for _name, _specs in BINARY.items():
        CASES.add(f"{_op}_{_name}", binary_case(_op, _specs))


def neg(lib):
    a = operand(lib, ((2, 3), F32), 1)
    return results(lib, -a, [a])


def neg_int(lib):
    return results(lib, -operand(lib, ((3,), "int64"), 1), [])


def neg_bool(lib):
    return results(lib, -lib.tensor(np.array([True, False])), [])


def sub_bool(lib):
    t = lib.tensor(np.array([True, False]))
    return results(lib, t - t, [])


def add_bool(lib):
    t = lib.tensor(np.array([True, False]))
    return results(lib, t + True, [])


def chain(lib):
    """An expression reusing one leaf: its gradients accumulate."""
    a = operand(lib, ((2, 3), F32), 1)
    b = operand(lib, ((3,), F32), 2)
    return results(lib, (a * b - a / (b + 1.0)) * 2.0 - 1.0 / a + -b, [a, b])


for _case in (neg, neg_int, neg_bool, sub_bool, add_bool, chain):
    CASES.add(_case.__name__, _case)

MATMUL = {
    "mm": ((2, 3), (3, 4)),
    "dot": ((3,), (3,)),
    "vm": ((3,), (3, 4)),
    "mv": ((2, 3), (3,)),
    "bmm": ((2, 2, 3), (2, 3, 4)),
    "batch_broadcast": ((2, 1, 2, 3), (3, 3, 2)),
    "3d_2d": ((2, 2, 3), (3, 4)),
    "2d_3d": ((2, 3), (2, 3, 4)),
    "1d_3d": ((3,), (2, 3, 4)),
    "3d_1d": ((2, 2, 3), (3,)),
    "err_mm": ((2, 3), (4, 5)),
    "err_dot": ((3,), (4,)),
    "err_vm": ((3,), (4, 5)),
    "err_mv": ((2, 3), (4,)),
    "err_bmm": ((2, 2, 3), (2, 4, 5)),
    "err_3d_2d": ((2, 2, 3), (4, 5)),
    "err_2d_3d": ((2, 3), (2, 4, 5)),
    "err_batch": ((3, 2, 3), (2, 3, 5)),
    "err_0d": ((), (3,)),
    "err_1d_3d": ((3,), (2, 4, 5)),
    "err_3d_1d": ((2, 2, 3), (4,)),
    "err_4d_3d": ((2, 1, 2, 3), (3, 4, 5)),
}


def matmul_case(shapes, dtypes=(F32, F32)):
    def case(lib):
        a, b = (
            operand(lib, (s, d), k)
            for k, (s, d) in enumerate(zip(shapes, dtypes, strict=True), start=1)
        )
        return results(lib, a @ b, [a, b])

    return case


for _name, _shapes in MATMUL.items():
    CASES.add(f"matmul_{_name}", matmul_case(_shapes))


def matmul_no_grad(shapes):
    def case(lib):
        a, b = (lib.tensor(deterministic(s, k)) for k, s in enumerate(shapes, start=1))
        return results(lib, a @ b, [a, b])

    return case


for _name in ("err_2d_3d", "err_1d_3d", "err_3d_1d", "err_3d_2d", "err_bmm"):
    CASES.add(f"matmul_{_name}_no_grad", matmul_no_grad(MATMUL[_name]))
CASES.add("matmul_f64", matmul_case(((2, 3), (2, 3, 2)), (F64, F64)))
CASES.add("matmul_dtypes", matmul_case(((2, 3), (3, 2)), (F32, F64)))
CASES.add("matmul_int", matmul_case(((2, 3), (3, 2)), ("int64", "int64")))


def shape_case(function, shape=(2, 3, 4), dtype=F32):
    def case(lib):
        x = operand(lib, (shape, dtype), 1)
        return results(lib, function(x, lib), [x])

    return case


def index_tensor(lib, values):
    return lib.tensor(np.array(values))


SHAPES = {
    "reshape": lambda x, lib: x.reshape(4, 6),
    "reshape_tuple": lambda x, lib: x.reshape((3, -1)),
    "reshape_flat": lambda x, lib: x.reshape(-1),
    "reshape_scalar": lambda x, lib: x[0, 0, :1].reshape(()),
    "reshape_invalid": lambda x, lib: x.reshape(5, 5),
    "reshape_invalid_infer": lambda x, lib: x.reshape(-1, 5),
    "reshape_two_infer": lambda x, lib: x.reshape(-1, -1),
    "reshape_negative": lambda x, lib: x.reshape(-2, 12),
    "view": lambda x, lib: x.view(6, 4) * 2.0,
    "view_infer": lambda x, lib: x.view(2, -1),
    "view_invalid": lambda x, lib: x.view(7, -1),
    "view_strides": lambda x, lib: x.transpose(0, 2).view(24),
    "reshape_strides": lambda x, lib: x.transpose(0, 2).reshape(24),
    "transpose": lambda x, lib: x.transpose(0, 2),
    "transpose_negative": lambda x, lib: x.transpose(-1, 1),
    "transpose_out_of_range": lambda x, lib: x.transpose(0, 3),
    "t_3d": lambda x, lib: x.t(),
    "t_2d": lambda x, lib: x[0].t(),
    "t_1d": lambda x, lib: x[0, 0].t(),
    "T_2d": lambda x, lib: x[1].T,
    "index_int": lambda x, lib: x[1],
    "index_negative": lambda x, lib: x[-1, -2],
    "index_scalar": lambda x, lib: x[1, 2, 3],
    "index_slices": lambda x, lib: x[:, 1:, ::2],
    "index_none_ellipsis": lambda x, lib: x[None, ..., 1],
    "index_ellipsis_middle": lambda x, lib: x[0, ..., None, 2:],
    "index_array": lambda x, lib: x[index_tensor(lib, [1, 0, 1])],
    "index_array_repeat": lambda x, lib: x[:, index_tensor(lib, [2, 2, 0, 2])],
    "index_two_arrays": lambda x, lib: x[
        index_tensor(lib, [0, 1, 1]), :, index_tensor(lib, [3, 3, 0])
    ],
    "index_list": lambda x, lib: x[..., [0, 0, 3]],
    "index_mask": lambda x, lib: x[index_tensor(lib, [True, False])],
    "index_out_of_range": lambda x, lib: x[2],
    "index_out_of_range_late": lambda x, lib: x[:, :, 4],
    "index_array_out_of_range": lambda x, lib: x[:, index_tensor(lib, [0, 3])],
    "index_too_many": lambda x, lib: x[0, 0, 0, 0],
}
for _name, _function in SHAPES.items():
    CASES.add(_name, shape_case(_function))
CASES.add("T_1d", shape_case(lambda x, lib: x.T, (3,)))

REDUCE = {
    "sum_all": lambda x: x.sum(),
    "sum_dim": lambda x: x.sum(1),
    "sum_negative_dim": lambda x: x.sum(-1),
    "sum_keepdim": lambda x: x.sum(0, keepdim=True),
    "sum_tuple": lambda x: x.sum((0, 2)),
    "sum_tuple_keepdim": lambda x: x.sum((2, -3), keepdim=True),
    "sum_all_keepdim": lambda x: x.sum(dim=None, keepdim=True),
    "sum_out_of_range": lambda x: x.sum(3),
    "sum_repeated": lambda x: x.sum((0, -3)),
    "mean_all": lambda x: x.mean(),
    "mean_dim": lambda x: x.mean(1),
    "mean_keepdim": lambda x: x.mean(-1, keepdim=True),
    "mean_tuple": lambda x: x.mean((0, 1)),
    "mean_out_of_range": lambda x: x.mean(-4),
}
for _name, _function in REDUCE.items():
    CASES.add(_name, shape_case(lambda x, lib, f=_function: f(x)))
    CASES.add(_name + "_f64", shape_case(lambda x, lib, f=_function: f(x), dtype=F64))
CASES.add("sum_int_dim", shape_case(lambda x, lib: x.sum(0), (2, 3), "int32"))
CASES.add("sum_bool_dim", shape_case(lambda x, lib: x.sum(1), (2, 3), "bool"))
CASES.add("sum_f16", shape_case(lambda x, lib: x.sum((0, 2)), dtype="float16"))
CASES.add("mean_f16", shape_case(lambda x, lib: x.mean(-1), dtype="float16"))
CASES.add("sum_0d_dim", shape_case(lambda x, lib: x.sum(0), ()))
CASES.add("mean_0d_keepdim", shape_case(lambda x, lib: x.mean(-1, keepdim=True), ()))
CASES.add("mean_int", shape_case(lambda x, lib: x.mean(), (2, 3), "int64"))
CASES.add("mean_empty_dim", shape_case(lambda x, lib: x.mean(1), (2, 0)))


@pytest.mark.parametrize("name", CASES.names())
def test_against_torch(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        CASES.check(name)


@pytest.mark.parametrize("shape", [(2, 3, 4), (3,), ()])
def test_T_other_than_2d_reverses_and_warns(shape):
    x = nb.tensor(deterministic(shape, 1))
    with pytest.warns(UserWarning, match="x.T"):
        y = x.T
    np.testing.assert_array_equal(y.data, np.transpose(x.data))


def test_views_share_memory():
    x = nb.tensor(deterministic((2, 3), 1))
    assert np.shares_memory(x.reshape(3, 2).data, x.data)
    assert np.shares_memory(x.transpose(0, 1).data, x.data)
    assert np.shares_memory(x[:, 1:].data, x.data)


def test_python_float_keeps_float32():
    x = nb.tensor(deterministic((3,), 1))
    for y in (x + 0.1, 0.1 - x, x * 1e30, 2.0 / x, x / 3):
        assert y.dtype == np.float32


# Finite differences in float64: every input of every Function, broadcasting included.
def _arrays(*shapes):
    return [deterministic(s, k, np.float64, 0.5, 2.0) for k, s in enumerate(shapes, start=1)]


GRADCHECKS = {
    "add": (lambda a, b: a + b, ((2, 3), (3,))),
    "sub": (lambda a, b: a - b, ((2, 1), (1, 3))),
    "rsub": (lambda a: 2.5 - a, ((2, 3),)),
    "mul": (lambda a, b: a * b, ((2, 3), (2, 1))),
    "div": (lambda a, b: a / b, ((2, 3), (3,))),
    "rdiv": (lambda a: 2.0 / a, ((2, 3),)),
    "neg": (lambda a: -a, ((2, 3),)),
    "mm": (lambda a, b: a @ b, ((2, 3), (3, 2))),
    "dot": (lambda a, b: a @ b, ((3,), (3,))),
    "vm": (lambda a, b: a @ b, ((3,), (3, 2))),
    "mv": (lambda a, b: a @ b, ((2, 3), (3,))),
    "bmm_broadcast": (lambda a, b: a @ b, ((2, 1, 2, 3), (2, 3, 2))),
    "3d_1d": (lambda a, b: a @ b, ((2, 2, 3), (3,))),
    "reshape": (lambda a: a.reshape(3, -1) * a.reshape(3, 2), ((2, 3),)),
    "view": (lambda a: a.view(6), ((2, 3),)),
    "transpose": (lambda a: a.transpose(0, 2), ((2, 3, 2),)),
    "t": (lambda a: a.t() @ a, ((2, 3),)),
    "index_basic": (lambda a: a[1:, None, ..., ::2], ((3, 2, 3),)),
    "index_array": (lambda a: a[nb.tensor([0, 2, 0]), 1:], ((3, 2),)),
    "index_mask": (lambda a: a[nb.tensor([True, False, True])], ((3, 2),)),
    "sum_dim": (lambda a: a.sum((0, -1), keepdim=True), ((2, 3, 2),)),
    "sum_all": (lambda a: a.sum(), ((2, 3),)),
    "mean_dim": (lambda a: a.mean(1), ((2, 3, 2),)),
    "mean_all": (lambda a: a.mean(), ((2, 3),)),
}


@pytest.mark.parametrize("name", GRADCHECKS)
def test_gradcheck(name):
    function, shapes = GRADCHECKS[name]
    gradcheck(function, _arrays(*shapes))


@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    op=st.sampled_from(sorted(OPS)),
)
def test_gradcheck_broadcasting(shapes, op):
    """Every pair of broadcastable shapes: gradients summed back to each operand's shape."""
    gradcheck(OPS[op], _arrays(*shapes.input_shapes))


@given(
    batch=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=2),
    vector=st.tuples(st.booleans(), st.booleans()),
)
def test_gradcheck_matmul_shapes(batch, vector):
    """1-D operands and broadcast batch dimensions, as torch.matmul."""
    (batch_a, batch_b), (m, k, n) = batch.input_shapes, (2, 3, 2)
    shape_a = (k,) if vector[0] else (*batch_a, m, k)
    shape_b = (k,) if vector[1] else (*batch_b, k, n)
    gradcheck(operator.matmul, _arrays(shape_a, shape_b))
