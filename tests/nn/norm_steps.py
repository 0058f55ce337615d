"""Case helpers shared by the LayerNorm, RMSNorm and GroupNorm tests, written once against the
oracle's shared API (``tests/oracle.py``): training and evaluation steps of a module, gradients
of a functional form for any subset of its tensor arguments, and a check that a failed call
changes nothing."""

import numpy as np

from tests.oracle import channels_last, deterministic

LAYOUTS = ("contiguous", "channels_last", "transposed")


def _is_channels_last(lib, tensor) -> bool:
    """Channels-last memory (torch's ``channels_last`` for 4-D, ``channels_last_3d`` for 5-D)."""
    if lib.name == "torch":
        torch = lib.torch
        layout = torch.channels_last_3d if tensor.ndim == 5 else torch.channels_last
        return tensor.is_contiguous(memory_format=layout)
    return np.moveaxis(tensor.data, 1, -1).flags.c_contiguous


def make_input(lib, array, layout, requires_grad):
    """``(leaf, x)``: ``x`` has ``array``'s values in ``layout``, ``leaf`` is the tensor the
    input gradient lands on (``transposed``: ``x`` is a transposed, non-contiguous view of it)."""
    if layout == "channels_last":
        array = channels_last(array)
    if layout != "transposed":
        leaf = lib.tensor(array, requires_grad)
        return leaf, leaf
    last = array.ndim - 1
    leaf = lib.tensor(np.ascontiguousarray(np.swapaxes(array, 0, last)), requires_grad)
    return leaf, leaf.transpose(0, last)


def load(lib, module, values: dict) -> None:
    module.load_state_dict({k: lib.tensor(v) for k, v in values.items()}, strict=False)


def module_steps(
    lib, module, shape, dtype, layout="contiguous", x_grad=True, offset=3.0, param_grads=True
):
    """A training step then an evaluation step (forward and backward) of ``module`` on inputs of
    ``shape`` and ``dtype``: outputs, gradients and the state after each step."""
    out = {}
    for step, training in enumerate((True, False)):
        module.train(training)
        array = (deterministic(shape, step) * (step + 1) + offset * step).astype(dtype)
        leaf, x = make_input(lib, array, layout, x_grad)
        y = module(x)
        y.backward(lib.tensor(deterministic(shape, 100 + step, dtype)))
        out[f"y{step}"] = lib.numpy(y)
        if x_grad:
            out[f"dx{step}"] = lib.numpy(leaf.grad)
        if layout == "channels_last":
            out[f"y{step}_channels_last"] = _is_channels_last(lib, y)
            if x_grad:
                out[f"dx{step}_channels_last"] = _is_channels_last(lib, leaf.grad)
        for name, param in module.named_parameters() if param_grads else ():
            out[f"d{name}{step}"] = lib.numpy(param.grad)
        module.zero_grad()
        for key, value in module.state_dict().items():
            out[f"{key}{step}"] = np.array(np.asarray(value))
    return out


def functional_grads(
    lib, function, arrays: dict, needs: tuple, upstream_seed=50, upstream_dtype=None, **kwargs
):
    """``function(**tensors, **kwargs)`` with the named arrays as tensors (None stays None), the
    ones in ``needs`` requiring a gradient: output and those gradients. The upstream gradient
    has the output's dtype; with ``upstream_dtype``, its values are rounded to that dtype first
    (a float64 reference of a float16 computation gets the float16 call's upstream values)."""
    tensors = {
        k: None if v is None else lib.tensor(v, requires_grad=k in needs) for k, v in arrays.items()
    }
    y = function(**tensors, **kwargs)
    out = {"y": lib.numpy(y)}
    if needs:
        values = deterministic(tuple(y.shape), upstream_seed, upstream_dtype or out["y"].dtype)
        y.backward(lib.tensor(values.astype(out["y"].dtype)))
        for k in needs:
            out[f"d{k}"] = lib.numpy(tensors[k].grad)
    return out


def snapshot(module) -> dict:
    """A module's parameters and their gradients, by value and identity."""
    state = {"training": module.training}
    for name, value in module.named_parameters():
        state[name] = np.array(np.asarray(value.detach()), copy=True)
        state[f"{name}.id"] = id(value)
        if value.grad is not None:
            state[f"{name}.grad"] = np.array(np.asarray(value.grad.detach()), copy=True)
            state[f"{name}.grad.id"] = id(value.grad)
    return state


def assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value, err_msg=key)
            assert after[key].dtype == value.dtype, key
        else:
            assert after[key] == value, key
