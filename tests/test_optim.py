"""SGD, Adam and AdamW against torch.optim: steps, state dicts, errors, loading torch's state."""

import copy
import itertools

import numpy as np
import pytest

import numbanorm
from tests.oracle import NUMBANORM, Cases, deterministic

CASES = Cases("optim")
ERRORS = Cases("optim_errors")

SHAPES = [(3, 4), (5,), (2, 1, 3)]
STEPS = 5


def _params(lib, dtype, seed=0):
    return [
        lib.nn.Parameter(lib.tensor(deterministic(shape, seed + i, dtype)))
        for i, shape in enumerate(SHAPES)
    ]


def _set_grads(lib, params, dtype, step):
    """Fixed gradients; the last parameter has none on the first two steps (it is skipped)."""
    for i, param in enumerate(params):
        if i == len(params) - 1 and step < 2:
            param.grad = None
            continue
        grad = deterministic(SHAPES[i], 100 + 10 * step + i, dtype)
        param.grad = lib.tensor(grad)


def _group_values(group) -> dict:
    """A param group's entries as arrays (None and strings as text)."""
    out = {}
    for key, value in group.items():
        if value is None or isinstance(value, str):
            out[key] = np.array(str(value))
        else:
            out[key] = np.asarray(value)
    return out


def _state_values(lib, state_dict) -> dict:
    out = {}
    for index, state in state_dict["state"].items():
        for key, value in state.items():
            out[f"state.{index}.{key}"] = np.array(np.asarray(value), copy=True)
    for i, group in enumerate(state_dict["param_groups"]):
        for key, value in _group_values(group).items():
            out[f"group.{i}.{key}"] = value
    return out


def run_steps(lib, optimizer, dtype, kwargs, groups=None):
    """``STEPS`` steps on fixed gradients: parameters after each step and the final state dict."""
    params = _params(lib, dtype)
    if groups is None:
        opt = getattr(lib.optim, optimizer)(params, **kwargs)
    else:
        opt = getattr(lib.optim, optimizer)(
            [{"params": params[:1], **groups}, {"params": params[1:]}], **kwargs
        )
    out = {}
    for step in range(STEPS):
        _set_grads(lib, params, dtype, step)
        opt.step()
        for i, param in enumerate(params):
            out[f"p{i}.{step}"] = lib.numpy(param)
    out.update(_state_values(lib, opt.state_dict()))
    opt.zero_grad()
    out["grads_none"] = np.array([p.grad is None for p in params])
    return out


SGD_GRID = [
    {"momentum": m, "dampening": d, "nesterov": n, "weight_decay": w, "maximize": x}
    for m, d, n, w, x in itertools.product([0, 0.9], [0, 0.5], [False, True], [0, 0.1], [0, 1])
    if not (n and (m == 0 or d != 0))
]
ADAM_GRID = [
    {"lr": lr, "betas": b, "weight_decay": w, "amsgrad": a, "maximize": x}
    for lr, b, w, a, x in itertools.product(
        [1e-3, 0.1], [(0.9, 0.999), (0.5, 0.9)], [0, 0.1], [False, True], [False, True]
    )
]


def _name(kwargs) -> str:
    return ",".join(f"{k}={v}" for k, v in kwargs.items())


for dtype in ["float32", "float64"]:
    for kwargs in SGD_GRID:
        kwargs = {**kwargs, "maximize": bool(kwargs["maximize"]), "lr": 0.1}
        CASES.add(
            f"SGD-{dtype}-{_name(kwargs)}", lambda lib, a=(dtype, kwargs): run_steps(lib, "SGD", *a)
        )
    CASES.add(f"SGD-{dtype}-defaults", lambda lib, d=dtype: run_steps(lib, "SGD", d, {}))
    CASES.add(
        f"SGD-{dtype}-lr=0.01-momentum=0.5",
        lambda lib, d=dtype: run_steps(lib, "SGD", d, {"lr": 0.01, "momentum": 0.5}),
    )
    for optimizer in ["Adam", "AdamW"]:
        for kwargs in ADAM_GRID:
            CASES.add(
                f"{optimizer}-{dtype}-{_name(kwargs)}",
                lambda lib, a=(optimizer, dtype, kwargs): run_steps(lib, *a),
            )
        CASES.add(
            f"{optimizer}-{dtype}-defaults",
            lambda lib, a=(optimizer, dtype): run_steps(lib, *a, {}),
        )
        CASES.add(
            f"{optimizer}-{dtype}-eps=0.1",
            lambda lib, a=(optimizer, dtype): run_steps(lib, *a, {"eps": 0.1, "lr": 0.05}),
        )
        CASES.add(
            f"{optimizer}-{dtype}-groups",
            lambda lib, a=(optimizer, dtype): run_steps(
                lib, *a, {"lr": 0.01}, groups={"lr": 0.2, "weight_decay": 0.3, "amsgrad": True}
            ),
        )
    CASES.add(
        f"SGD-{dtype}-groups",
        lambda lib, d=dtype: run_steps(
            lib, "SGD", d, {"lr": 0.1, "momentum": 0.9}, groups={"lr": 0.5, "nesterov": True}
        ),
    )


def _zero_grad_keep(lib):
    params = _params(lib, "float32")
    opt = lib.optim.SGD(params, lr=0.1)
    _set_grads(lib, params, "float32", 3)
    opt.zero_grad(set_to_none=False)
    return {f"g{i}": lib.numpy(p.grad) for i, p in enumerate(params)}


CASES.add("zero_grad-set_to_none=False", _zero_grad_keep)


def _error(lib, optimizer, kwargs, params=None):
    params = _params(lib, "float32") if params is None else params(lib)
    getattr(lib.optim, optimizer)(params, **kwargs)
    return {}


for optimizer, kwargs in [
    ("SGD", {"lr": -1}),
    ("SGD", {"lr": -0.5}),
    ("SGD", {"momentum": -1}),
    ("SGD", {"weight_decay": -1}),
    ("SGD", {"nesterov": True}),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}),
    ("Adam", {"lr": -1}),
    ("Adam", {"eps": -1}),
    ("Adam", {"betas": (1.0, 0.999)}),
    ("Adam", {"betas": (-0.1, 0.999)}),
    ("Adam", {"betas": (0.9, 1.0)}),
    ("Adam", {"weight_decay": -1}),
    ("AdamW", {"lr": -1}),
    ("AdamW", {"eps": -1}),
    ("AdamW", {"betas": (1.0, 0.999)}),
    ("AdamW", {"betas": (0.9, 1.5)}),
    ("AdamW", {"weight_decay": -1}),
]:
    ERRORS.add(f"{optimizer}-{_name(kwargs)}", lambda lib, a=(optimizer, kwargs): _error(lib, *a))

ERRORS.add("empty", lambda lib: _error(lib, "SGD", {}, params=lambda lib: []))
ERRORS.add(
    "duplicate-groups",
    lambda lib: _error(
        lib,
        "Adam",
        {},
        params=lambda lib: (lambda p: [{"params": p}, {"params": p[:1]}])(_params(lib, "float32")),
    ),
)
ERRORS.add(
    "set",
    lambda lib: _error(
        lib, "SGD", {}, params=lambda lib: [{"params": set(_params(lib, "float32"))}]
    ),
)


def _load_mismatch(lib, groups):
    params = _params(lib, "float32")
    opt = lib.optim.SGD(params, lr=0.1, momentum=0.9)
    _set_grads(lib, params, "float32", 3)
    opt.step()
    state = opt.state_dict()
    other = lib.optim.SGD(groups(_params(lib, "float32")), lr=0.1)
    other.load_state_dict(state)
    return {}


ERRORS.add(
    "load-group-count",
    lambda lib: _load_mismatch(lib, lambda p: [{"params": p[:1]}, {"params": p[1:]}]),
)
ERRORS.add("load-group-size", lambda lib: _load_mismatch(lib, lambda p: p[:2]))


@pytest.mark.parametrize("name", CASES.names())
def test_optimizer_matches_torch(name):
    CASES.check(name)


@pytest.mark.parametrize("name", ERRORS.names())
def test_error_matches_torch(name):
    ERRORS.check(name)


ROUND_TRIP = [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    ("Adam", {"lr": 0.1, "amsgrad": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.05, "maximize": True}),
    ("AdamW", {"lr": 0.1, "amsgrad": True}),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer,kwargs", ROUND_TRIP)
def test_state_dict_round_trip(optimizer, kwargs, dtype):
    """Saving after 2 steps and resuming in a fresh optimizer equals the uninterrupted run."""
    lib = NUMBANORM
    cls = getattr(numbanorm.optim, optimizer)
    params = _params(lib, dtype)
    opt = cls(params, **kwargs)
    saved = None
    for step in range(STEPS):
        if step == 2:
            saved = (copy.deepcopy(opt.state_dict()), [p.data.copy() for p in params])
        _set_grads(lib, params, dtype, step)
        opt.step()
    state, arrays = saved
    resumed = [numbanorm.nn.Parameter(numbanorm.Tensor(a)) for a in arrays]
    fresh = cls(resumed, lr=1.0)  # hyperparameters come from the state dict
    fresh.load_state_dict(state)
    for step in range(2, STEPS):
        _set_grads(lib, resumed, dtype, step)
        fresh.step()
    for a, b in zip(params, resumed, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
        assert b.data.dtype == np.dtype(dtype)
    final, again = opt.state_dict(), fresh.state_dict()
    assert final["param_groups"] == again["param_groups"]
    assert final["state"].keys() == again["state"].keys()
    for index in final["state"]:
        assert final["state"][index].keys() == again["state"][index].keys()
        for key, value in final["state"][index].items():
            np.testing.assert_array_equal(again["state"][index][key], value)
            assert np.asarray(again["state"][index][key]).dtype == np.asarray(value).dtype


def test_load_state_dict_copies():
    """A loaded state is the optimizer's own: stepping does not write into the loaded dict."""
    params = _params(NUMBANORM, "float64")
    opt = numbanorm.optim.SGD(params, lr=0.1, momentum=0.9)
    _set_grads(NUMBANORM, params, "float64", 3)
    opt.step()
    state = copy.deepcopy(opt.state_dict())
    kept = state["state"][0]["momentum_buffer"].copy()
    opt.load_state_dict(state)
    opt.step()
    np.testing.assert_array_equal(state["state"][0]["momentum_buffer"], kept)
    assert not np.array_equal(opt.state_dict()["state"][0]["momentum_buffer"], kept)


def test_param_groups_take_defaults_and_own_options():
    params = _params(NUMBANORM, "float32")
    opt = numbanorm.optim.AdamW([{"params": params[:1], "lr": 0.5}, {"params": params[1:]}])
    assert [g["lr"] for g in opt.param_groups] == [0.5, 1e-3]
    assert all(g["weight_decay"] == 1e-2 and g["decoupled_weight_decay"] for g in opt.param_groups)
    assert opt.state_dict()["param_groups"][1]["params"] == [1, 2]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer,kwargs", ROUND_TRIP)
def test_state_dict_crosses_to_and_from_torch(optimizer, kwargs, dtype):
    """torch's state dict (tensors through np.asarray) loads here and ours (arrays through
    torch.as_tensor) loads into torch; both continue as the uninterrupted torch run."""
    torch = pytest.importorskip("torch")
    from tests.oracle import Lib

    torch_lib = Lib("torch")
    reference = _params(torch_lib, dtype)
    torch_opt = getattr(torch.optim, optimizer)(reference, **kwargs)
    for step in range(2):
        _set_grads(torch_lib, reference, dtype, step)
        torch_opt.step()
    torch_state = torch_opt.state_dict()
    converted = {
        "state": {
            i: {k: np.asarray(v) for k, v in s.items()} for i, s in torch_state["state"].items()
        },
        "param_groups": torch_state["param_groups"],
    }
    ours = [numbanorm.nn.Parameter(numbanorm.Tensor(p.detach().numpy().copy())) for p in reference]
    our_opt = getattr(numbanorm.optim, optimizer)(ours, lr=1.0)
    our_opt.load_state_dict(converted)
    for step in range(2, 4):
        _set_grads(torch_lib, reference, dtype, step)
        torch_opt.step()
        _set_grads(NUMBANORM, ours, dtype, step)
        our_opt.step()
    # and back: our state dict into a fresh torch optimizer
    back = [torch.nn.Parameter(torch.from_numpy(p.data.copy())) for p in ours]
    back_opt = getattr(torch.optim, optimizer)(back, lr=1.0)
    our_state = our_opt.state_dict()
    back_opt.load_state_dict(
        {
            "state": {
                i: {k: torch.as_tensor(np.array(v)) for k, v in s.items()}
                for i, s in our_state["state"].items()
            },
            "param_groups": copy.deepcopy(our_state["param_groups"]),
        }
    )
    _set_grads(torch_lib, reference, dtype, 4)
    torch_opt.step()
    _set_grads(NUMBANORM, ours, dtype, 4)
    our_opt.step()
    _set_grads(torch_lib, back, dtype, 4)
    back_opt.step()
    from tests.tolerances import assert_close

    for ref, mine, returned in zip(reference, ours, back, strict=True):
        assert_close(mine.data, ref.detach().numpy(), f"{optimizer} numbanorm")
        assert_close(returned.detach().numpy(), ref.detach().numpy(), f"{optimizer} torch")
