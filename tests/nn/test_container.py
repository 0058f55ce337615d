"""nn.Sequential against torch: forward/backward, state_dict keys, indexing, repr."""

from collections import OrderedDict

import numpy as np
import pytest

import numbanorm
from tests.oracle import NUMBANORM, Cases, deterministic

CASES = Cases("nn_container")


def _model(lib, ordered=False):
    layers = [
        ("fc", lib.nn.Linear(4, 3)),
        ("bn", lib.nn.BatchNorm1d(3)),
        ("act", lib.nn.ReLU()),
        ("out", lib.nn.Linear(3, 2)),
        ("gelu", lib.nn.GELU(approximate="tanh")),
        ("tanh", lib.nn.Tanh()),
    ]
    model = (
        lib.nn.Sequential(OrderedDict(layers))
        if ordered
        else lib.nn.Sequential(*(m for _, m in layers))
    )
    prefix = (lambda k: k) if ordered else (lambda k: {"fc": "0", "out": "3"}.get(k, k))
    state = {
        f"{prefix('fc')}.weight": lib.tensor(deterministic((3, 4), 1)),
        f"{prefix('fc')}.bias": lib.tensor(deterministic((3,), 2)),
        f"{prefix('out')}.weight": lib.tensor(deterministic((2, 3), 3)),
        f"{prefix('out')}.bias": lib.tensor(deterministic((2,), 4)),
    }
    model.load_state_dict(state, strict=False)
    return model


def _train_case(ordered):
    def case(lib):
        model = _model(lib, ordered)
        x = lib.tensor(deterministic((5, 4), 5), requires_grad=True)
        y = model(x)
        y.backward(lib.tensor(deterministic(y.shape, 6)))
        out = {"y": lib.numpy(y), "dx": lib.numpy(x.grad), "repr": np.array(repr(model))}
        out["keys"] = np.array(" ".join(model.state_dict().keys()))
        for name, p in model.named_parameters():
            out["grad_" + name] = lib.numpy(p.grad)
        out["running_mean"] = lib.numpy(model[1].running_mean)
        return out

    return case


CASES.add("sequential_positional", _train_case(False))
CASES.add("sequential_ordered_dict", _train_case(True))


def _indexing(lib):
    model = _model(lib)
    model.append(lib.nn.Flatten())
    model.append(lib.nn.Dropout(0.25))
    return {
        "len": np.array(len(model)),
        "names": np.array(" ".join(type(m).__name__ for m in model)),
        "last": np.array(repr(model[-1])),
        "first": np.array(repr(model[0])),
        "slice": np.array(repr(model[1:4])),
        "slice_keys": np.array(" ".join(model[2:][0:2]._modules)),
        "repr": np.array(repr(model)),
    }


CASES.add("indexing_append_slice", _indexing)
CASES.add("index_out_of_range", lambda lib: {"m": np.array(repr(_model(lib)[6]))})
CASES.add("negative_index_out_of_range", lambda lib: {"m": np.array(repr(_model(lib)[-7]))})
CASES.add("empty", lambda lib: {"r": np.array(repr(lib.nn.Sequential())), "n": np.array(0)})


@pytest.mark.parametrize("name", CASES.names())
def test_matches_torch(name):
    CASES.check(name)


def test_eval_mode_reaches_children():
    model = _model(NUMBANORM)
    model.append(numbanorm.nn.Dropout(0.9))
    model.eval()
    assert all(not m.training for m in model)
    x = numbanorm.Tensor(deterministic((3, 4), 9))
    np.testing.assert_array_equal(model(x).data, model(x).data)
