"""The tape against torch's autograd: custom Functions, ``ctx.needs_input_grad``, gradients that
accumulate, graphs freed by backward (``retain_graph``), deep graphs, ``no_grad``; then what only
numbanorm promises (no recursion, nothing kept alive by a used graph, no unneeded gradient)."""

import gc
import sys
import threading
import warnings
import weakref

import numpy as np
import pytest

import numbanorm as nb
from numbanorm.functions.batch_norm import BatchNorm
from tests.oracle import Cases, deterministic

CASES = Cases("autograd")


def top(lib):
    """The library's top-level namespace: ``torch`` or ``numbanorm``."""
    return lib.torch if lib.name == "torch" else nb


def function(lib, name, forward, backward):
    """A custom Function named ``name`` on ``lib``: the same code runs on torch tensors (torch)
    and on numpy arrays (numbanorm)."""
    base = lib.torch.autograd.Function if lib.name == "torch" else nb.Function
    return type(
        name, (base,), {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    )


def error(e: Exception) -> np.ndarray:
    return np.array(f"{type(e).__name__}: {e}")


def leaf(lib, shape=(2, 3), seed=1, dtype="float32", requires_grad=True):
    return lib.tensor(deterministic(shape, seed, dtype), requires_grad=requires_grad)


def scale(lib):
    """y = a * k, saving nothing: backward may run any number of times."""

    def forward(ctx, a, k):
        ctx.k = k
        return a * k

    return function(lib, "Scale", forward, lambda ctx, g: (g * ctx.k, None))


def square(lib, access=True, save=True):
    """y = a * a, saving ``a`` (when ``save``) and reading it back (when ``access``)."""

    def forward(ctx, a):
        if save:
            ctx.save_for_backward(a)
        if not (save and access):
            ctx.a = a  # kept by ctx itself: backward reads this one
        return a * a

    def backward(ctx, g):
        saved = ctx.saved_tensors if access else ()
        a = saved[0] if saved else ctx.a
        return 2 * a * g

    return function(lib, "Square", forward, backward)


def mul(lib):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return (
            g * b if ctx.needs_input_grad[0] else None,
            g * a if ctx.needs_input_grad[1] else None,
        )

    return function(lib, "Mul", forward, backward)


def add(lib):
    return function(lib, "Add", lambda ctx, a, b: a + b, lambda ctx, g: (g, g))


# -- gradients accumulate ---------------------------------------------------------------------


def accumulate_over_two_backward_calls(lib):
    x = leaf(lib)
    fn = scale(lib)
    fn.apply(x, 3.0).sum().backward()
    first_grad = x.grad
    first = lib.numpy(x.grad)
    fn.apply(x, -0.5).sum().backward()
    return {"first": first, "second": lib.numpy(x.grad), "same": np.array(x.grad is first_grad)}


def accumulate_over_paths(lib):
    """a is used twice by one Mul and once more through another: the three gradients add up."""
    a, b = leaf(lib, seed=1), leaf(lib, seed=2)
    m, s = mul(lib), add(lib)
    z = s.apply(m.apply(a, b), m.apply(a, a)).sum()
    z.backward()
    return {"z": lib.numpy(z), "da": lib.numpy(a.grad), "db": lib.numpy(b.grad)}


def grads_of_non_leaves_stay_none(lib):
    x = leaf(lib)
    y = scale(lib).apply(x, 2.0)
    y.sum().backward()
    with warnings.catch_warnings():  # torch warns about .grad of a non-leaf
        warnings.simplefilter("ignore", UserWarning)
        y_grad = y.grad
    return {
        "x_is_leaf": np.array(x.is_leaf),
        "y_is_leaf": np.array(y.is_leaf),
        "y_grad_is_none": np.array(y_grad is None),
        "y_has_grad_fn": np.array(y.grad_fn is not None),
        "x_has_grad_fn": np.array(x.grad_fn is not None),
    }


def leaf_not_requiring_grad_gets_none(lib):
    a, b = leaf(lib, seed=1), leaf(lib, seed=2, requires_grad=False)
    mul(lib).apply(a, b).sum().backward()
    return {"da": lib.numpy(a.grad), "b_grad_is_none": np.array(b.grad is None)}


for _case in [
    accumulate_over_two_backward_calls,
    accumulate_over_paths,
    grads_of_non_leaves_stay_none,
    leaf_not_requiring_grad_gets_none,
]:
    CASES.add(_case.__name__.replace("_", "-"), _case)


# -- deep graphs ------------------------------------------------------------------------------

DEPTH = 10_000


def deep_sum_chain(lib):
    x = leaf(lib)
    y = x
    for _ in range(DEPTH):
        y = y.sum()
    y.backward()
    return {"y": lib.numpy(y), "dx": lib.numpy(x.grad)}


def deep_function_chain(lib):
    """10000 custom Functions that each save their input for backward."""

    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a * 0.999 + 0.001

    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g * 0.999 + a * 0.0

    step = function(lib, "Step", forward, backward)
    x = leaf(lib, dtype="float64")
    y = x
    for _ in range(DEPTH):
        y = step.apply(y)
    y.sum().backward()
    return {"y": lib.numpy(y), "dx": lib.numpy(x.grad)}


def deep_batch_norm_chain(lib):
    """1500 training-mode batch norms (more than Python's default recursion limit) in float64."""
    if lib.name == "torch":  # torch's thread pool makes 1500 tiny calls take seconds on 2 cores
        threads = lib.torch.get_num_threads()
        lib.torch.set_num_threads(1)
        try:
            return _deep_batch_norm_chain(lib)
        finally:
            lib.torch.set_num_threads(threads)
    return _deep_batch_norm_chain(lib)


def _deep_batch_norm_chain(lib):
    x = leaf(lib, (4, 3), dtype="float64")
    weight = leaf(lib, (3,), seed=2, dtype="float64")
    bias = leaf(lib, (3,), seed=3, dtype="float64")
    y = x
    for _ in range(1500):
        y = lib.F.batch_norm(y, None, None, weight, bias, training=True)
    y.backward(lib.tensor(deterministic((4, 3), 4, "float64")))
    return {
        "y": lib.numpy(y),
        "dx": lib.numpy(x.grad),
        "dweight": lib.numpy(weight.grad),
        "dbias": lib.numpy(bias.grad),
    }


CASES.add("deep-sum-chain", deep_sum_chain)
CASES.add("deep-function-chain", deep_function_chain)
CASES.add("deep-batch-norm-chain", deep_batch_norm_chain)


# -- a graph is freed by backward -------------------------------------------------------------


def backward_twice(lib, fn, retain=False):
    """Backward through one graph three times; each result is x.grad or the error."""
    x = leaf(lib)
    s = (x if fn is None else fn.apply(x)).sum()
    s.backward(retain_graph=retain)
    out = {"first": lib.numpy(x.grad)}
    try:
        s.backward()
        out["second"] = lib.numpy(x.grad)
    except RuntimeError as e:
        out["second_error"] = error(e)
        out["grad_after_error"] = lib.numpy(x.grad)
    try:
        s.backward()
        out["third"] = lib.numpy(x.grad)
    except RuntimeError as e:
        out["third_error"] = error(e)
    return out


def saved_tensors_after_backward(lib):
    x = leaf(lib)
    y = square(lib).apply(x)
    before = len(y.grad_fn.saved_tensors)
    y.sum().backward()
    out = {"before": np.array(before)}
    try:
        out["after"] = np.array(len(y.grad_fn.saved_tensors))
    except RuntimeError as e:
        out["after_error"] = error(e)
    return out


def batch_norm_backward_twice(lib, retain):
    m = lib.nn.BatchNorm2d(3)
    x = leaf(lib, (2, 3, 2, 2))
    y = m(x)
    g = lib.tensor(deterministic((2, 3, 2, 2), 5))
    y.backward(g, retain_graph=retain)
    out = {"dx": lib.numpy(x.grad), "dweight": lib.numpy(m.weight.grad)}
    try:
        y.backward(g)
        out["dx2"] = lib.numpy(x.grad)
        out["dweight2"] = lib.numpy(m.weight.grad)
    except RuntimeError as e:
        out["second_error"] = error(e)
    return out


FREED = {
    "saved-and-read": lambda lib: backward_twice(lib, square(lib)),
    "saved-and-read-retain_graph": lambda lib: backward_twice(lib, square(lib), retain=True),
    "saved-not-read": lambda lib: backward_twice(lib, square(lib, access=False)),
    "read-not-saved": lambda lib: backward_twice(lib, square(lib, save=False)),
    "nothing-saved-or-read": lambda lib: backward_twice(lib, square(lib, False, False)),
    "sum": lambda lib: backward_twice(lib, None),
    "saved_tensors-after-backward": saved_tensors_after_backward,
    "batch-norm": lambda lib: batch_norm_backward_twice(lib, False),
    "batch-norm-retain_graph": lambda lib: batch_norm_backward_twice(lib, True),
}
for _name, _case in FREED.items():
    CASES.add(f"freed-{_name}", _case)


# -- ctx.needs_input_grad ---------------------------------------------------------------------


def recorded_needs(lib, grads_required):
    """Which of (a, b, c, k) the forward and backward are told need a gradient."""
    seen = {}

    def forward(ctx, a, b, c, k):
        seen["forward"] = tuple(ctx.needs_input_grad)
        return a * k + b * c

    def backward(ctx, g):
        seen["backward"] = tuple(ctx.needs_input_grad)
        na, nb_, nc, _ = ctx.needs_input_grad
        return (g * 2.0 if na else None, g * 3.0 if nb_ else None, g * 4.0 if nc else None, None)

    fn = function(lib, "Record", forward, backward)
    a, b, c = (leaf(lib, seed=i, requires_grad=r) for i, r in enumerate(grads_required))
    y = fn.apply(a, b, c, 2.0)
    out = {"forward": np.array(seen["forward"]), "requires_grad": np.array(y.requires_grad)}
    if not y.requires_grad:
        return out
    y.sum().backward()
    out["backward"] = np.array(seen["backward"])
    for name, t in zip("abc", (a, b, c), strict=True):
        out[f"d{name}_is_none"] = np.array(t.grad is None)
        if t.grad is not None:
            out[f"d{name}"] = lib.numpy(t.grad)
    return out


for _required in [(True, False, True), (False, True, False), (True, True, True)]:
    _name = "".join("abc"[i] for i, r in enumerate(_required) if r)
    CASES.add(f"needs_input_grad-{_name}", lambda lib, r=_required: recorded_needs(lib, r))
CASES.add("needs_input_grad-none", lambda lib: recorded_needs(lib, (False, False, False)))


def batch_norm_grads(lib, x_grad, weight_grad, bias_grad, training):
    """BatchNorm2d where only some of input, weight and bias require a gradient."""
    m = lib.nn.BatchNorm2d(3)
    m.load_state_dict(
        {
            "weight": lib.tensor(deterministic((3,), 7, "float32", 0.5, 1.5)),
            "bias": lib.tensor(deterministic((3,), 8)),
        },
        strict=False,
    )
    m.weight.requires_grad_(weight_grad)
    m.bias.requires_grad_(bias_grad)
    m.train(training)
    x = leaf(lib, (2, 3, 2, 2), requires_grad=x_grad)
    y = m(x)
    y.backward(lib.tensor(deterministic((2, 3, 2, 2), 5)))
    out = {"y": lib.numpy(y)}
    for name, t in [("dx", x), ("dweight", m.weight), ("dbias", m.bias)]:
        out[f"{name}_is_none"] = np.array(t.grad is None)
        if t.grad is not None:
            out[name] = lib.numpy(t.grad)
    return out


for _flags in [
    (False, True, True),
    (True, False, True),
    (False, True, False),
    (True, False, False),
]:
    for _training in [True, False]:
        _name = "-".join(n for n, f in zip(["x", "weight", "bias"], _flags, strict=True) if f)
        CASES.add(
            f"batch-norm-grads-{_name}-{'train' if _training else 'eval'}",
            lambda lib, f=_flags, t=_training: batch_norm_grads(lib, *f, t),
        )


# -- what torch's engine checks in a backward's result -----------------------------------------


def returning(lib, name, make_grads, shape=(2,), dtype="float32"):
    """A Function of (a, b, k) whose backward returns ``make_grads(lib, g)``."""
    fn = function(lib, name, lambda ctx, a, b, k: a * k + b, lambda ctx, g: make_grads(lib, g))
    a = leaf(lib, shape, dtype=dtype)
    b = leaf(lib, shape, seed=2, dtype=dtype, requires_grad=False)
    fn.apply(a, b, 2.0).sum().backward()
    return {"da": lib.numpy(a.grad), "da_dtype": np.array(str(a.grad.dtype).removeprefix("torch."))}


def ones(lib, shape, dtype="float32"):
    return (
        lib.torch.ones(shape, dtype=lib.dtype(dtype))
        if lib.name == "torch"
        else np.ones(shape, dtype)
    )


RESULTS = {
    "all": lambda lib, g: (g, g, None),
    "too-few": lambda lib, g: (g, g),
    "one-bare": lambda lib, g: g,
    "extra-none": lambda lib, g: (g, None, None, None),
    "extra-not-none": lambda lib, g: (g, None, None, g),
    "list": lambda lib, g: [g, None, None],
    "grad-for-not-required-tensor": lambda lib, g: (g, ones(lib, (5,)), None),
    "grad-for-non-tensor": lambda lib, g: (g, None, g),
    "wrong-shape": lambda lib, g: (ones(lib, (3,)), None, None),
    "wrong-shape-and-grad-for-non-tensor": lambda lib, g: (ones(lib, (3,)), None, g),
    "transposed-shape": lambda lib, g: (ones(lib, (2, 1)), None, None),
    "broadcast-shape-is-summed": lambda lib, g: (ones(lib, (4, 2)) * 0.5, None, None),
    "leading-1-is-summed": lambda lib, g: (ones(lib, (1, 2)), None, None),
    "float64-is-cast": lambda lib, g: (ones(lib, (2,), "float64") / 3, None, None),
}
for _name, _grads in RESULTS.items():
    _class = "".join(part.capitalize() for part in _name.split("-"))
    CASES.add(f"backward-returns-{_name}", lambda lib, c=_class, f=_grads: returning(lib, c, f))


# -- no_grad ----------------------------------------------------------------------------------


def no_grad_context(lib):
    x = leaf(lib)
    t = top(lib)
    with t.no_grad():
        inside = t.is_grad_enabled()
        y = scale(lib).apply(x, 2.0)
        s = x.sum()
    return {
        "inside": np.array(inside),
        "after": np.array(t.is_grad_enabled()),
        "y_requires_grad": np.array(y.requires_grad),
        "y_has_grad_fn": np.array(y.grad_fn is not None),
        "s_requires_grad": np.array(s.requires_grad),
        "y": lib.numpy(y),
    }


def no_grad_backward_of_no_grad_result(lib):
    x = leaf(lib)
    with top(lib).no_grad():
        y = x.sum()
    y.backward()
    return {}


def no_grad_decorators(lib):
    t = top(lib)

    @t.no_grad()
    def with_parentheses(x):
        return t.is_grad_enabled(), x.sum()

    @t.no_grad
    def without_parentheses(x):
        """Documented."""
        return t.is_grad_enabled(), x.sum()

    x = leaf(lib)
    e1, y1 = with_parentheses(x)
    e2, y2 = without_parentheses(x)
    return {
        "enabled": np.array([e1, e2, t.is_grad_enabled()]),
        "requires_grad": np.array([y1.requires_grad, y2.requires_grad]),
        "name": np.array(without_parentheses.__name__ + ":" + str(without_parentheses.__doc__)),
    }


def no_grad_nested_and_exceptions(lib):
    t = top(lib)
    states = []
    with t.no_grad():
        with t.no_grad():
            states.append(t.is_grad_enabled())
        states.append(t.is_grad_enabled())
    states.append(t.is_grad_enabled())
    try:
        with t.no_grad():
            raise KeyError("inside")
    except KeyError:
        states.append(t.is_grad_enabled())
    return {"states": np.array(states)}


def no_grad_is_thread_local(lib):
    t = top(lib)
    seen = []
    with t.no_grad():
        thread = threading.Thread(target=lambda: seen.append(t.is_grad_enabled()))
        thread.start()
        thread.join()
        seen.append(t.is_grad_enabled())
    return {"seen": np.array(seen)}


def no_grad_batch_norm(lib):
    """Under no_grad a training BatchNorm still updates its running statistics."""
    m = lib.nn.BatchNorm1d(3)
    x = leaf(lib, (4, 3))
    with top(lib).no_grad():
        y = m(x)
    return {
        "y": lib.numpy(y),
        "requires_grad": np.array(y.requires_grad),
        "running_mean": np.asarray(m.state_dict()["running_mean"]),
        "num_batches_tracked": np.asarray(m.state_dict()["num_batches_tracked"]),
    }


for _case in [
    no_grad_context,
    no_grad_backward_of_no_grad_result,
    no_grad_decorators,
    no_grad_nested_and_exceptions,
    no_grad_is_thread_local,
    no_grad_batch_norm,
]:
    CASES.add(_case.__name__.replace("_", "-"), _case)


@pytest.mark.parametrize(
    "name",
    CASES.names(),
)
def test_autograd_matches_torch(name):
    CASES.check(name)


# -- numbanorm only ---------------------------------------------------------------------------


class _Lib:
    name = "numbanorm"


NUMBANORM_LIB = _Lib()


def test_backward_walks_the_graph_without_recursion():
    """Even with a recursion limit far below the graph's depth."""
    x = nb.tensor([1.0, 2.0], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y.sum()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(150)
    try:
        y.backward()
    finally:
        sys.setrecursionlimit(limit)
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])
    del y  # freeing a deep chain does not recurse either
    gc.collect()


def test_backward_frees_saved_arrays_and_the_graph_keeps_no_intermediate():
    """After backward, a saved intermediate array is freed although the output is alive; the
    graph itself never holds intermediate tensors, only Functions' nodes and leaves."""
    fn = square(NUMBANORM_LIB)
    x = nb.tensor(np.arange(4.0), requires_grad=True)
    hidden = fn.apply(x)
    saved_array = weakref.ref(hidden.data)
    hidden_tensor = weakref.ref(hidden)
    out = fn.apply(hidden)
    del hidden
    gc.collect()
    assert hidden_tensor() is None, "the graph keeps an intermediate Tensor alive"
    assert saved_array() is not None, "a saved array was freed before backward"
    out.sum().backward()
    gc.collect()
    assert saved_array() is None, "backward did not free the saved array"
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.arange(4.0) ** 3)


def test_batch_norm_graph_frees_its_saved_input_after_backward():
    """BatchNorm saves its input (an intermediate here) for backward, and nothing else keeps it."""
    m = nb.nn.BatchNorm1d(3)
    x = nb.tensor(deterministic((5, 3), 1), requires_grad=True)
    hidden = scale(NUMBANORM_LIB).apply(x, 2.0)
    hidden_array = weakref.ref(hidden.data)
    y = m(hidden)
    del hidden
    gc.collect()
    assert hidden_array() is not None, "BatchNorm did not save its input"
    y.backward(nb.tensor(deterministic((5, 3), 2)))
    gc.collect()
    assert hidden_array() is None, "the saved input outlived backward"
    assert x.grad is not None


def test_no_grad_tells_forward_that_no_input_needs_a_gradient():
    """Unlike torch (whose forward sees requires_grad), nothing is saved for a backward that
    cannot happen."""
    seen = []

    def forward(ctx, a):
        seen.append(ctx.needs_input_grad)
        return a * 2

    fn = function(NUMBANORM_LIB, "Twice", forward, lambda ctx, g: g * 2)
    x = nb.tensor([1.0], requires_grad=True)
    with nb.no_grad():
        fn.apply(x)
    fn.apply(x)
    assert seen == [(False,), (True,)]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    "x_grad, weight_grad, bias_grad",
    [
        (False, True, True),
        (True, False, False),
        (False, False, True),
        (True, True, True),
    ],
)
def test_batch_norm_computes_only_the_gradients_needed(
    monkeypatch, training, x_grad, weight_grad, bias_grad
):
    returned = []
    backward = BatchNorm.backward

    def spy(ctx, grad):
        result = backward(ctx, grad)
        returned.append(result)
        return result

    monkeypatch.setattr(BatchNorm, "backward", staticmethod(spy))
    m = nb.nn.BatchNorm2d(2).train(training)
    m.weight.requires_grad_(weight_grad)
    m.bias.requires_grad_(bias_grad)
    x = nb.tensor(deterministic((2, 2, 3, 3), 1), requires_grad=x_grad)
    m(x).backward(nb.tensor(deterministic((2, 2, 3, 3), 2)))
    (dx, dweight, dbias, *rest) = returned[0]
    assert (dx is not None, dweight is not None, dbias is not None) == (
        x_grad,
        weight_grad,
        bias_grad,
    )
    assert all(r is None for r in rest)


def test_backward_calls_no_backward_of_a_branch_that_needs_no_gradient():
    calls = []

    def forward(ctx, a):
        return a * 2

    def backward(ctx, g):
        calls.append(ctx.needs_input_grad)
        return g * 2

    fn = function(NUMBANORM_LIB, "Twice", forward, backward)
    x = nb.tensor([1.0], requires_grad=True)
    frozen = nb.tensor([2.0])
    y = mul(NUMBANORM_LIB).apply(fn.apply(x), fn.apply(frozen))
    y.sum().backward()
    assert calls == [(True,)]


def test_leaf_takes_over_a_gradient_only_the_engine_holds():
    """As torch's AccumulateGrad: a fresh gradient becomes ``.grad`` without a copy; one that a
    Function keeps a reference to, or the caller's own gradient, is copied."""
    made, kept = [], []

    class Fresh(nb.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            out = grad * 2
            made.append(id(out))
            return out

    class Keeps(Fresh):
        @staticmethod
        def backward(ctx, grad):
            out = grad * 2
            kept.append(out)
            return out

    x = nb.tensor(np.ones(3, np.float32), requires_grad=True)
    Fresh.apply(x).backward(nb.tensor(np.ones(3, np.float32)))
    assert id(x.grad.data) == made[0]
    x = nb.tensor(np.ones(3, np.float32), requires_grad=True)
    Keeps.apply(x).backward(nb.tensor(np.ones(3, np.float32)))
    assert x.grad.data is not kept[0]
    x.grad.data += 1
    np.testing.assert_array_equal(kept[0], [2, 2, 2])
    gradient = np.ones(3, np.float32)
    leaf = nb.tensor(np.ones(3, np.float32), requires_grad=True)
    leaf.backward(gradient)
    assert not np.shares_memory(leaf.grad.data, gradient)


def test_leaf_takes_over_a_large_gradient_from_the_host_cache():
    """A gradient of 1 MiB or more lives in a buffer of the host cache, which keeps a reference
    of its own for reuse: that reference does not count as a user, so the leaf takes the gradient
    over instead of copying it (a copy cost a 25 MB GroupNorm forward+backward a fifth more)."""
    from numbanorm.backends import host_cache

    x = nb.tensor(deterministic((4, 8, 128, 128), 7), requires_grad=True)
    assert x.data.nbytes >= host_cache.MIN_BYTES
    made = []

    class Keep(nb.Function):
        @staticmethod
        def forward(ctx, a):
            return a.copy()

        @staticmethod
        def backward(ctx, grad):
            out = host_cache.empty(grad.shape, grad.dtype)
            out[...] = grad
            made.append(id(out))
            return out

    Keep.apply(x).backward(nb.tensor(np.ones(x.shape, np.float32)))
    assert id(x.grad.data) == made[0] and host_cache.holds(x.grad.data.base)
    nb.nn.GroupNorm(4, 8)(x).sum().backward()  # accumulates in place into the same buffer
    assert id(x.grad.data) == made[0]
    view = x.grad.data[:2]
    x.grad = None
    Keep.apply(x).backward(nb.tensor(np.ones(x.shape, np.float32)))
    assert not np.shares_memory(x.grad.data, view)  # a buffer still in use is never handed out
