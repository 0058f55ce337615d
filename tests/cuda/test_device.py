"""CUDA tensors and modules: devices, copies, gradients on the device, state dicts and errors.

torch's behaviour on a GPU is written out here: the CPU-only torch of the test environment makes
no CUDA tensors. Inputs are tiny, since numba's simulator runs each GPU thread in Python.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import cuda

import numbanorm as nb
from numbanorm import nn
from numbanorm.dispatch import backend, device_of
from numbanorm.nn import functional as F
from tests.oracle import channels_last, deterministic

ROOT = Path(__file__).resolve().parents[2]
SAME_DEVICE = (
    r"Expected all tensors to be on the same device, but found at least two devices, cuda:0 and "
    r"cpu!"
)


def host(t: nb.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def on_cuda(t: nb.Tensor) -> bool:
    return t.device == "cuda:0" and device_of(t.data) == "cuda"


# -- tensors -----------------------------------------------------------------------------------


def test_tensor_device_argument_and_moves():
    a = deterministic((2, 3), 0)
    x = nb.tensor(a, device="cuda")
    assert on_cuda(x) and x.dtype == np.float32 and x.shape == (2, 3)
    assert str(x.device) == "cuda:0" and repr(x.device) == "device(type='cuda', index=0)"
    assert x.cuda() is x and x.to("cuda") is x and x.to("cuda:0") is x and x.to(nb.device(0)) is x
    back = x.cpu()
    assert back.device == "cpu" and back.cpu() is back
    np.testing.assert_array_equal(back.numpy(), a)
    np.testing.assert_array_equal(host(back.cuda()), a)
    assert repr(x).endswith("device='cuda:0')")


CASTS = [
    ("float32", "float16"),
    ("float16", "float32"),
    ("float32", "float64"),
    ("float64", "int64"),
]


@pytest.mark.parametrize(("source", "target"), CASTS)
def test_casts_run_on_the_device(source, target):
    a = deterministic((2, 3), 1, source, low=-3, high=3)
    x = nb.tensor(a, device="cuda").to(np.dtype(target))
    assert on_cuda(x) and x.dtype == target
    np.testing.assert_array_equal(host(x), a.astype(target))


def test_channels_last_layout_survives_the_trip():
    a = channels_last(deterministic((2, 3, 2, 2), 2))
    x = nb.tensor(a, device="cuda")
    assert x.data.strides == a.strides
    assert x.cpu().numpy().strides == a.strides
    assert nb.tensor(a).cuda().data.strides == a.strides


def test_numpy_of_a_cuda_tensor_is_torchs_error():
    with pytest.raises(TypeError) as error:
        nb.tensor([1.0], device="cuda").numpy()
    assert str(error.value) == (
        "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to "
        "host memory first."
    )


def test_tensor_of_a_cuda_tensor_is_a_copy_on_the_device():
    x = nb.tensor([1.0, 2.0], device="cuda")
    y = nb.tensor(x)
    assert on_cuda(y) and y.data is not x.data
    backend("cuda").copyto(x.data, 5.0)
    np.testing.assert_array_equal(host(y), [1.0, 2.0])
    z = nb.tensor(x, dtype="float64", device="cpu")
    assert z.device == "cpu" and z.dtype == np.float64


class _InterfaceOnly:
    """A CUDA array of another library (CuPy, torch): only ``__cuda_array_interface__``."""

    def __init__(self, array):
        self.array = array
        self.__cuda_array_interface__ = {"shape": array.shape, "typestr": "<f4", "version": 3}


def test_cuda_array_interface_is_taken_without_a_copy(monkeypatch):
    device_array = cuda.to_device(deterministic((2, 3), 3))
    imported = []

    def as_cuda_array(obj, sync=True):  # the simulator has none: numba's, for this object
        imported.append(obj)
        return obj.array

    monkeypatch.setattr(cuda, "as_cuda_array", as_cuda_array, raising=False)
    source = _InterfaceOnly(device_array)
    assert nb.Tensor(source).data is device_array and imported == [source]
    y = F.layer_norm(source, (3,))
    assert on_cuda(y)
    expected = F.layer_norm(nb.tensor(deterministic((2, 3), 3)), (3,))
    np.testing.assert_allclose(host(y), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_numba_device_arrays_are_used_as_they_are():
    device_array = cuda.to_device(deterministic((4, 2), 4))
    assert nb.Tensor(device_array).data is device_array
    y = F.batch_norm(device_array, None, None, training=True)
    assert on_cuda(y)


def test_strided_device_arrays_are_copied_for_the_kernels():
    a = deterministic((2, 6), 19)
    columns = cuda.to_device(a)[:, ::2]  # every other column: no layout the kernels take
    x = nb.Tensor(columns, requires_grad=True)
    y = F.layer_norm(x, (3,))
    y.backward(nb.tensor(deterministic((2, 3), 20), device="cuda"))
    expected = nb.tensor(a[:, ::2], requires_grad=True)
    y_cpu = F.layer_norm(expected, (3,))
    y_cpu.backward(nb.tensor(deterministic((2, 3), 20)))
    np.testing.assert_allclose(host(y), host(y_cpu), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(x.grad), expected.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_one_gpu_only():
    with pytest.raises(RuntimeError, match="numbanorm runs on one GPU, cuda:0"):
        nb.tensor([1.0]).to("cuda:1")
    with pytest.raises(RuntimeError, match="numbanorm runs on one GPU, cuda:0"):
        nn.LayerNorm(2, device="cuda:1")


# -- gradients -----------------------------------------------------------------------------------


def test_sum_backward_and_gradients_given_on_the_device():
    a = deterministic((2, 3, 2), 5)
    x = nb.tensor(a, device="cuda", requires_grad=True)
    y = F.local_response_norm(x, 2)
    y.sum().backward()
    assert on_cuda(x.grad)
    x_cpu = nb.tensor(a, requires_grad=True)
    F.local_response_norm(x_cpu, 2).sum().backward()
    np.testing.assert_allclose(host(x.grad), x_cpu.grad.numpy(), rtol=1e-5, atol=1e-6)
    first = x.grad.data
    y = F.local_response_norm(x, 2)
    y.backward(nb.tensor(np.ones(a.shape, np.float64), device="cuda"))  # cast to float32
    assert x.grad.data is first  # accumulated in place, as torch's AccumulateGrad
    np.testing.assert_allclose(host(x.grad), 2 * x_cpu.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_a_tensor_used_three_times_adds_its_gradients_on_the_device():
    a = deterministic((3,), 6)
    grads = []
    for device in ("cpu", "cuda"):
        x = nb.tensor(a, device=device, requires_grad=True)
        F.layer_norm(x, (3,), x, x).backward(nb.tensor(deterministic((3,), 7), device=device))
        grads.append(host(x.grad))
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_gradients_on_the_wrong_device():
    x = nb.tensor(deterministic((2, 3), 8), device="cuda", requires_grad=True)
    y = F.local_response_norm(x.reshape(1, 2, 3), 2)
    with pytest.raises(RuntimeError) as error:
        y.backward(nb.tensor(np.ones((1, 2, 3), np.float32)))
    assert str(error.value) == "invalid gradient at index 0 - expected device cuda:0 but got cpu"
    y.sum().backward(nb.tensor(2.0))  # a 0-d gradient is moved, as torch does
    assert on_cuda(x.grad)


def test_to_is_on_the_tape_across_devices_and_dtypes():
    a = deterministic((1, 3, 2), 9)
    expected = nb.tensor(a, requires_grad=True)
    F.local_response_norm(expected, 2).sum().backward()
    for dtype in ("float32", "float16"):
        x = nb.tensor(a, requires_grad=True)
        F.local_response_norm(x.to("cuda", dtype), 2).sum().backward()
        assert x.grad.device == "cpu" and x.grad.dtype == np.float32
        np.testing.assert_allclose(x.grad.numpy(), expected.grad.numpy(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_sum_of_several_blocks(dtype):
    a = deterministic((3, 30), 10, dtype)  # blocks of the 32 threads set here, then partials
    x = nb.tensor(a, device="cuda", requires_grad=True)
    total = x.sum()
    assert on_cuda(total) and total.shape == () and total.dtype == dtype
    np.testing.assert_allclose(total.item(), a.astype(np.float64).sum(), rtol=1e-3)
    total.backward()
    np.testing.assert_array_equal(host(x.grad), np.ones_like(a))


def test_sums_that_have_no_cuda_kernel():
    with pytest.raises(NotImplementedError, match="sum of a CUDA tensor of dtype int64"):
        nb.tensor([1, 2], device="cuda").sum()
    with pytest.raises(NotImplementedError, match="Could not run 'Sum'"):
        nb.tensor([[1.0, 2.0]], device="cuda").sum(dim=0)


def test_copies_of_arrays_whose_dimensions_do_not_merge():
    xp = backend("cuda")
    a = np.arange(2.0**7).reshape((2,) * 7)
    reversed_view = xp.permute(xp.asarray(a), tuple(range(6, -1, -1)))
    with pytest.raises(NotImplementedError, match="at most 6 dimensions that do not merge"):
        xp.ascontiguousarray(reversed_view)
    six = xp.permute(xp.asarray(a[0]), tuple(range(5, -1, -1)))
    np.testing.assert_array_equal(xp.to_host(xp.ascontiguousarray(six)), a[0].transpose())


# -- modules -------------------------------------------------------------------------------------


def _tensors(module: nn.Module) -> dict:
    return dict(module.named_parameters()) | dict(module.named_buffers())


def test_module_to_cuda_and_back_moves_parameters_buffers_and_gradients():
    m = nn.BatchNorm2d(2)
    x = nb.tensor(deterministic((2, 2, 1, 2), 11), requires_grad=True)
    m(x).sum().backward()
    grad = m.weight.grad.numpy().copy()
    assert m.cuda() is m
    assert all(on_cuda(t) for t in _tensors(m).values()) and on_cuda(m.weight.grad)
    np.testing.assert_array_equal(host(m.weight.grad), grad)
    m.to("cpu")
    assert all(t.device == "cpu" for t in _tensors(m).values())
    assert m.num_batches_tracked.item() == 1


MODULES = {
    "BatchNorm1d": lambda **kw: nn.BatchNorm1d(3, **kw),
    "BatchNorm2d": lambda **kw: nn.BatchNorm2d(3, **kw),
    "BatchNorm3d": lambda **kw: nn.BatchNorm3d(3, **kw),
    "InstanceNorm1d": lambda **kw: nn.InstanceNorm1d(3, affine=True, momentum=None, **kw),
    "InstanceNorm2d": lambda **kw: nn.InstanceNorm2d(3, **kw),
    "InstanceNorm3d": lambda **kw: nn.InstanceNorm3d(3, affine=True, **kw),
    "LayerNorm": lambda **kw: nn.LayerNorm((2, 3), **kw),
    "GroupNorm": lambda **kw: nn.GroupNorm(1, 3, **kw),
    "RMSNorm": lambda **kw: nn.RMSNorm(3, **kw),
    "LazyBatchNorm2d": lambda **kw: nn.LazyBatchNorm2d(**kw),
    "LazyInstanceNorm1d": lambda **kw: nn.LazyInstanceNorm1d(**kw),
}


@pytest.mark.parametrize("name", MODULES)
def test_device_argument_of_every_norm_module(name):
    m = MODULES[name](device="cuda", dtype="float64")
    tensors = _tensors(m)
    assert all(on_cuda(t) for t in tensors.values())
    floats = [t for t in tensors.values() if t.dtype.kind == "f"]
    assert all(t.dtype == np.float64 for t in floats)
    if name in ("BatchNorm2d", "LayerNorm"):  # their reset values, on the device
        reference = MODULES[name]()
        for key, t in tensors.items():
            np.testing.assert_array_equal(host(t), np.asarray(_tensors(reference)[key]))


def test_state_dict_is_on_the_host_and_loads_in_place_on_the_device():
    m = nn.BatchNorm1d(2, device="cuda")
    m(nb.tensor(deterministic((3, 2), 12), device="cuda"))
    state = m.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    assert state["num_batches_tracked"] == 1 and state["running_mean"].any()
    other = nn.BatchNorm1d(2).cuda()
    arrays = {k: t.data for k, t in _tensors(other).items()}
    other.load_state_dict(state)
    for key, t in _tensors(other).items():
        assert t.data is arrays[key] and on_cuda(t)
        np.testing.assert_array_equal(host(t), state[key])
    cpu = nn.BatchNorm1d(2)
    cpu.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(cpu.running_var.numpy(), state["running_var"])


def test_zero_grad_keeps_zeros_on_the_device():
    m = nn.LayerNorm(3, device="cuda")
    m(nb.tensor(deterministic((1, 3), 13), device="cuda")).sum().backward()
    m.zero_grad(set_to_none=False)
    assert on_cuda(m.weight.grad) and not host(m.weight.grad).any()


def test_momentum_none_reads_the_counter_on_the_device():
    m = nn.BatchNorm1d(2, momentum=None, device="cuda")
    for seed in (14, 15):
        m(nb.tensor(deterministic((3, 2), seed), device="cuda"))
    expected = np.mean(
        [deterministic((3, 2), seed).astype(np.float64).mean(0) for seed in (14, 15)], axis=0
    )
    np.testing.assert_allclose(host(m.running_mean), expected, rtol=1e-5, atol=1e-6)
    assert m.num_batches_tracked.item() == 2 and on_cuda(m.num_batches_tracked)


# -- errors --------------------------------------------------------------------------------------


def _state(module: nn.Module) -> dict:
    return {k: np.array(np.asarray(v), copy=True) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("where", ["input", "module"])
def test_mixed_devices_raise_torchs_error_and_change_nothing(where):
    m = nn.BatchNorm2d(2) if where == "input" else nn.BatchNorm2d(2, device="cuda")
    x = nb.tensor(deterministic((2, 2, 1, 2), 16), device="cuda" if where == "input" else "cpu")
    before = _state(m)
    with pytest.raises(RuntimeError, match=SAME_DEVICE):
        m(x)
    after = _state(m)
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm", "group_norm", "instance_norm"])
def test_functional_forms_refuse_mixed_devices(name):
    x = nb.tensor(deterministic((2, 3, 2), 17), device="cuda")
    w = nb.tensor(np.ones(2 if name in ("layer_norm", "rms_norm") else 3, np.float32))
    call = {
        "layer_norm": lambda: F.layer_norm(x, (2,), w),
        "rms_norm": lambda: F.rms_norm(x, (2,), w),
        "group_norm": lambda: F.group_norm(x, 1, w),
        "instance_norm": lambda: F.instance_norm(x, weight=w),
    }[name]
    with pytest.raises(RuntimeError, match=SAME_DEVICE):
        call()


NOT_ON_CUDA = {
    "Conv2d": lambda x: nn.Conv2d(2, 2, 1).cuda()(x),
    "Linear": lambda x: nn.Linear(2, 2).cuda()(x),
    "MaxPool2d": lambda x: nn.MaxPool2d(2)(x),
    "AvgPool2d": lambda x: nn.AvgPool2d(2)(x),
    "ReLU": lambda x: nn.ReLU()(x),
    "Dropout": lambda x: nn.Dropout(0.5)(x),
    "MSELoss": lambda x: nn.MSELoss()(x, x),
    "CrossEntropyProbabilities": lambda x: nn.CrossEntropyLoss()(x.reshape(4, 2), x.reshape(4, 2)),
    "Add": lambda x: x + 1,
    "Mul": lambda x: x * x,
    "Neg": lambda x: -x,
    "Mean": lambda x: x.mean(),
    "Transpose": lambda x: x.transpose(0, 1),
    "Index": lambda x: x[0],
}


@pytest.mark.parametrize("name", NOT_ON_CUDA)
def test_ops_without_cuda_kernels_say_so(name):
    x = nb.tensor(deterministic((1, 2, 2, 2), 18), device="cuda")
    with pytest.raises(NotImplementedError, match=f"Could not run '{name}' with arguments from"):
        NOT_ON_CUDA[name](x)


@pytest.mark.parametrize("optimizer", ["SGD", "Adam", "AdamW"])
def test_optimizers_refuse_cuda_parameters_and_change_nothing(optimizer):
    m = nn.BatchNorm2d(2).cuda()
    x = nb.tensor(deterministic((2, 2, 2, 2), 19), device="cuda", requires_grad=True)
    m(x).sum().backward()
    cpu_m = nn.BatchNorm2d(2).cpu()
    before = {k: v.copy() for k, v in m.state_dict().items()}
    groups = [{"params": [cpu_m.weight]}, {"params": list(m.parameters())}]
    opt = getattr(nb.optim, optimizer)(groups, lr=0.1)
    cpu_m.weight.grad = nb.tensor(np.ones(2, np.float32))
    with pytest.raises(NotImplementedError, match=r"Could not run 'optimizer\.step' with"):
        opt.step()
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    np.testing.assert_array_equal(cpu_m.weight.data, np.ones(2, np.float32))
    assert opt.state_dict()["state"] == {}


REAL_VIEWS = """
import json, numpy as np
from numba.cuda.cudadrv.devicearray import DeviceNDArray
import numbanorm.backends.cuda as xp
from numbanorm.functions.layout import channel_view

memory = object()  # views only read shapes and strides: no GPU needed
def device(shape):
    return DeviceNDArray(shape, np.empty(shape, np.float32).strides, np.float32, gpu_data=memory)

cl = xp.permute(device((2, 4, 5, 3)), (0, 3, 1, 2))
view, layout = channel_view(cl)
six = xp._six_dim_views((cl, device((2, 3, 4, 5))))
print(json.dumps({
    "types": [type(a).__name__ for a in (cl, view, *six)],
    "memory": all(a.gpu_data is memory for a in (cl, view, *six)),
    "channel_view": [layout, view.shape, view.strides],
    "six": [[a.shape, a.strides] for a in six],
    "broadcast": xp.broadcast_to(device(()), (2, 3)).strides,
}))
"""


def test_views_of_numbas_gpu_arrays():
    """The views a GPU gets (the simulator's arrays take another branch), built on numba's
    DeviceNDArray without a GPU."""
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run(
        [sys.executable, "-c", REAL_VIEWS],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "types": ["DeviceNDArray"] * 4,
        "memory": True,
        "channel_view": ["nsc", [2, 20, 3], [240, 12, 4]],
        "six": [
            [[1, 1, 1, 2, 3, 20], [0, 0, 0, 240, 4, 12]],
            [[1, 1, 1, 2, 3, 20], [0, 0, 0, 240, 80, 4]],
        ],
        "broadcast": [0, 0],
    }


def test_import_loads_numba_cuda_only_for_cuda_arrays():
    code = (
        "import sys, json, numpy as np, numbanorm as nb\n"
        "nb.nn.BatchNorm1d(2)(nb.tensor(np.ones((3, 2), np.float32)))\n"
        "before = 'numba.cuda' in sys.modules\n"
        "nb.tensor([1.0], device='cuda')\n"
        "print(json.dumps([before, 'numba.cuda' in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [False, True]
