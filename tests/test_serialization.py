"""numbanorm.save / numbanorm.load: round trips that keep types, atomic writes, refusals."""

import json
import os
import pathlib
import re
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import numbanorm
from numbanorm import serialization
from tests.oracle import TORCH_AVAILABLE, deterministic


def _round_trip(obj, tmp_path, name="state.nb"):
    path = tmp_path / name
    numbanorm.save(obj, path)
    return numbanorm.load(path)


def _assert_same(actual, expected, where="obj"):
    """Equal values *and* equal types all the way down (tuple is not list, int is not float)."""
    assert type(actual) is type(expected), f"{where}: {type(actual)} != {type(expected)}"
    if isinstance(expected, np.ndarray):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, where
        np.testing.assert_array_equal(actual, expected, err_msg=where)
    elif isinstance(expected, np.generic):
        assert actual.dtype == expected.dtype, where
        np.testing.assert_array_equal(actual, expected, err_msg=where)
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert type(key) is type(next(k for k in actual if k == key)), f"{where}[{key!r}]"
            _assert_same(actual[key], expected[key], f"{where}[{key!r}]")
        if hasattr(expected, "_metadata"):
            _assert_same(actual._metadata, expected._metadata, f"{where}._metadata")
        else:
            assert not hasattr(actual, "_metadata"), where
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float) and np.isnan(expected):
        assert np.isnan(actual), where
    else:
        assert actual == expected, where


def _trained_batchnorm():
    module = numbanorm.nn.BatchNorm2d(3, momentum=0.2)
    for seed in range(3):
        module(numbanorm.tensor(deterministic((4, 3, 5, 5), seed)))
    return module


def test_batchnorm_state_dict_round_trip_and_load_back(tmp_path):
    module = _trained_batchnorm()
    state = module.state_dict()
    loaded = _round_trip(state, tmp_path)
    expected = OrderedDict((k, np.array(v)) for k, v in state.items())
    expected._metadata = state._metadata
    _assert_same(loaded, expected)
    assert isinstance(loaded, OrderedDict)
    assert list(loaded) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert loaded["num_batches_tracked"].shape == () and loaded["num_batches_tracked"] == 3

    fresh = numbanorm.nn.BatchNorm2d(3, momentum=0.2)
    result = fresh.load_state_dict(loaded)
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    x = numbanorm.tensor(deterministic((2, 3, 4, 4), 9))
    np.testing.assert_array_equal(fresh.eval()(x).data, module.eval()(x).data)


def test_nested_module_state_dict_keeps_metadata(tmp_path):
    class Net(numbanorm.nn.Module):
        def __init__(self):
            super().__init__()
            self.first = numbanorm.nn.BatchNorm1d(4)
            self.second = numbanorm.nn.BatchNorm2d(2, affine=False)

    state = Net().state_dict()
    loaded = _round_trip(state, tmp_path)
    assert loaded._metadata == state._metadata and "first" in loaded._metadata
    assert list(loaded) == list(state)
    Net().load_state_dict(loaded)


@pytest.mark.skipif(not TORCH_AVAILABLE, reason="the torch state dict needs torch")
def test_a_torch_state_dict_converted_to_arrays_round_trips(tmp_path):
    import torch

    torch_state = torch.nn.BatchNorm2d(3).state_dict()
    state = OrderedDict((k, v.numpy()) for k, v in torch_state.items())
    state._metadata = torch_state._metadata
    loaded = _round_trip(state, tmp_path)
    _assert_same(loaded, state)
    torch.nn.BatchNorm2d(3).load_state_dict({k: torch.from_numpy(v) for k, v in loaded.items()})


def test_optimizer_like_state_dict_round_trip(tmp_path):
    state = {
        "state": {
            0: {
                "step": 3.0,
                "exp_avg": np.arange(6, dtype=np.float32).reshape(2, 3),
                "exp_avg_sq": np.full((2, 3), 0.25),
            },
            1: {"step": np.array(3.0, dtype=np.float32), "momentum_buffer": None},
        },
        "param_groups": [
            {
                "lr": 0.1,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 0,
                "amsgrad": False,
                "maximize": False,
                "foreach": None,
                "params": [0, 1],
                "name": "all",
            }
        ],
    }
    _assert_same(_round_trip(state, tmp_path), state)


SCALARS = [
    None,
    True,
    False,
    0,
    -(2**70),
    1.0,
    -0.0,
    float("inf"),
    float("-inf"),
    float("nan"),
    1e-310,
    0.1,
    "",
    "ünïcode ✓",
    np.float32(1.5),
    np.float16(-2.0),
    np.int8(-3),
    np.uint64(2**64 - 1),
    np.bool_(True),
    np.complex64(1 + 2j),
]


@pytest.mark.parametrize("value", SCALARS, ids=repr)
def test_scalars_keep_type_and_value(tmp_path, value):
    _assert_same(
        _round_trip({"v": value, "in_list": [value], "in_tuple": (value,)}, tmp_path),
        {"v": value, "in_list": [value], "in_tuple": (value,)},
    )


ARRAYS = [
    np.array(2.5, dtype=np.float64),
    np.array(7, dtype=np.int64),
    np.zeros((0, 3), np.float32),
    np.arange(24, dtype=np.float16).reshape(2, 3, 4),
    np.arange(10, dtype=np.uint8),
    np.array([True, False]),
    np.array([1 + 2j, 3 - 4j], dtype=np.complex128),
    np.array(["ab", "c"]),
    np.arange(12.0).reshape(3, 4).T,  # not contiguous
    np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{a.shape}")
def test_arrays_keep_dtype_shape_and_values(tmp_path, array):
    loaded = _round_trip({"a": array}, tmp_path)["a"]
    _assert_same(loaded, np.asarray(array))
    assert loaded.flags.writeable


def test_containers_keep_their_kinds_and_key_types(tmp_path):
    ordered = OrderedDict([("z", 1), ("a", 2), ("m", 3)])
    obj = {
        3: "int key",
        "3": "str key",
        2.5: "float key",
        None: "none key",
        True: "bool key",
        "tuple": (1, [2, (3,)], ()),
        "list": [[], (), {}, OrderedDict()],
        "ordered": ordered,
        "nested": {0: {1: {2: [np.ones(2)]}}},
    }
    loaded = _round_trip(obj, tmp_path)
    _assert_same(loaded, obj)
    assert type(loaded["ordered"]) is OrderedDict and list(loaded["ordered"]) == ["z", "a", "m"]
    assert type(loaded["nested"]) is dict


def test_tensors_are_saved_as_their_host_arrays(tmp_path):
    weight = numbanorm.nn.Parameter(numbanorm.tensor(np.arange(3.0, dtype=np.float32)))
    obj = {"t": numbanorm.tensor([[1.0, 2.0]]), "p": weight, "l": [weight]}
    loaded = _round_trip(obj, tmp_path)
    _assert_same(loaded["t"], np.array([[1.0, 2.0]], np.float32))
    _assert_same(loaded["p"], np.arange(3.0, dtype=np.float32))
    _assert_same(loaded["l"][0], np.arange(3.0, dtype=np.float32))


def test_state_dict_with_keep_vars(tmp_path):
    module = _trained_batchnorm()
    loaded = _round_trip(module.state_dict(keep_vars=True), tmp_path)
    for key, value in module.state_dict().items():
        _assert_same(loaded[key], np.array(value))


@pytest.mark.parametrize("kind", [str, pathlib.Path, "custom"])
def test_str_and_pathlike_paths(tmp_path, kind):
    class Custom(os.PathLike):
        def __fspath__(self):
            return str(tmp_path / "custom.nb")

    path = Custom() if kind == "custom" else kind(tmp_path / "p.nb")
    numbanorm.save({"a": np.ones(2)}, path)
    _assert_same(numbanorm.load(path), {"a": np.ones(2)})


def test_non_path_arguments_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"str or os\.PathLike"):
        numbanorm.save({}, 3)
    with open(tmp_path / "f.nb", "wb") as handle, pytest.raises(TypeError, match="PathLike"):
        numbanorm.save({}, handle)
    with pytest.raises(TypeError, match=r"str or os\.PathLike"):
        numbanorm.load(None)


def test_file_is_a_zip_of_npy_members_and_json(tmp_path):
    path = tmp_path / "s.nb"
    numbanorm.save({"w": np.ones(3), "n": 1}, path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        header = json.loads(archive.read("numbanorm.json"))
    assert names == ["numbanorm.json", "arrays/0.npy"]
    assert header["format"] == "numbanorm" and header["version"] == 1
    with np.load(path, allow_pickle=False) as npz:  # numpy itself reads the arrays
        np.testing.assert_array_equal(npz["arrays/0"], np.ones(3))


def test_overwrites_an_existing_file_and_keeps_its_mode(tmp_path):
    path = tmp_path / "s.nb"
    numbanorm.save({"a": 1}, path)
    os.chmod(path, 0o640)
    numbanorm.save({"a": 2}, path)
    assert numbanorm.load(path) == {"a": 2}
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["s.nb"]


def test_new_file_gets_the_umask_mode_not_the_temporary_files(tmp_path):
    umask = os.umask(0o022)
    try:
        numbanorm.save({"a": 1}, tmp_path / "s.nb")
    finally:
        os.umask(umask)
    assert os.stat(tmp_path / "s.nb").st_mode & 0o777 == 0o644


def test_failure_mid_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "s.nb"
    numbanorm.save({"old": np.zeros(4)}, path)
    before = path.read_bytes()
    calls = []
    original = serialization._write_array

    def failing(archive, name, array):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        original(archive, name, array)

    monkeypatch.setattr(serialization, "_write_array", failing)
    with pytest.raises(OSError, match="disk full"):
        numbanorm.save({"a": np.ones(3), "b": np.ones(1000), "c": np.ones(2)}, path)
    assert calls == ["arrays/0.npy", "arrays/1.npy"]
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["s.nb"]
    _assert_same(numbanorm.load(path), {"old": np.zeros(4)})


def test_interrupt_mid_write_also_cleans_up(tmp_path, monkeypatch):
    def interrupted(archive, name, array):
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization, "_write_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        numbanorm.save({"a": np.ones(3)}, tmp_path / "new.nb")
    assert os.listdir(tmp_path) == []


def test_failure_in_rename_cleans_up(tmp_path, monkeypatch):
    def failing_replace(src, dst):
        raise PermissionError("no")

    monkeypatch.setattr(serialization.os, "replace", failing_replace)
    with pytest.raises(PermissionError):
        numbanorm.save({"a": 1}, tmp_path / "s.nb")
    assert os.listdir(tmp_path) == []


def test_missing_directory_and_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        numbanorm.save({"a": 1}, tmp_path / "no" / "s.nb")
    with pytest.raises(FileNotFoundError):
        numbanorm.load(tmp_path / "absent.nb")


UNSUPPORTED = [
    (object(), "builtins.object", "obj['x']"),
    ({1, 2}, "builtins.set", "obj['x']"),
    (b"bytes", "builtins.bytes", "obj['x']"),
    ({"y": [1, {"z": lambda: 0}]}, "builtins.function", "obj['x']['y'][1]['z']"),
    ({"s": {0: {"e": [1, 2, slice(1)]}}}, "builtins.slice", "obj['x']['s'][0]['e'][2]"),
    (np.array([object()], dtype=object), "object", "obj['x']"),
    ({(1, 2): 3}, "builtins.tuple", "obj['x']"),
    ({np.int64(1): 3}, "numpy.int64", "obj['x']"),
]


@pytest.mark.parametrize("value, type_name, key_path", UNSUPPORTED, ids=lambda v: repr(v)[:30])
def test_unsupported_values_name_type_and_key_path(tmp_path, value, type_name, key_path):
    path = tmp_path / "s.nb"
    with pytest.raises(TypeError) as error:
        numbanorm.save({"x": value}, path)
    message = str(error.value)
    assert type_name in message and key_path in message, message
    assert os.listdir(tmp_path) == []  # refused before touching the disk


def test_circular_references_are_refused(tmp_path):
    loop = []
    loop.append(loop)
    with pytest.raises(TypeError, match=r"circular reference at obj\['x'\]\[0\]"):
        numbanorm.save({"x": loop}, tmp_path / "s.nb")
    shared = [1]
    _assert_same(_round_trip({"a": shared, "b": shared}, tmp_path), {"a": [1], "b": [1]})


def test_tuple_subclasses_are_refused(tmp_path):
    from collections import namedtuple

    point = namedtuple("Point", "x y")
    with pytest.raises(TypeError, match=r"Point.*obj\['p'\]"):
        numbanorm.save({"p": point(1, 2)}, tmp_path / "s.nb")


def _saved(tmp_path, obj=None):
    path = tmp_path / "good.nb"
    numbanorm.save(obj if obj is not None else _trained_batchnorm().state_dict(), path)
    return path


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, -22, -1])
def test_truncated_files(tmp_path, keep):
    data = _saved(tmp_path).read_bytes()
    cut = tmp_path / "cut.nb"
    cut.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(numbanorm.SerializationError, match=re.escape(str(cut))):
        numbanorm.load(cut)


def test_corrupt_member_is_reported(tmp_path):
    path = _saved(tmp_path, {"a": np.arange(100, dtype=np.float64)})
    data = bytearray(path.read_bytes())
    start = data.index(b"\x93NUMPY")
    data[start + 200] ^= 0xFF  # inside the array's bytes: the CRC check fails
    path.write_bytes(bytes(data))
    with pytest.raises(numbanorm.SerializationError, match=r"arrays/0\.npy cannot be read"):
        numbanorm.load(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "random.nb"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(numbanorm.SerializationError, match="not a numbanorm file: not a zip"):
        numbanorm.load(path)
    empty = tmp_path / "empty.nb"
    empty.write_bytes(b"")
    with pytest.raises(numbanorm.SerializationError, match=r"empty\.nb: not a numbanorm file"):
        numbanorm.load(empty)


def test_plain_npz(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, weight=np.ones(3))
    with pytest.raises(numbanorm.SerializationError, match=r"plain numpy \.npz") as error:
        numbanorm.load(path)
    assert str(path) in str(error.value) and "numbanorm.json" in str(error.value)


def test_other_zip(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(numbanorm.SerializationError, match="zip archive of another kind"):
        numbanorm.load(path)


@pytest.mark.skipif(not TORCH_AVAILABLE, reason="writing a .pt file needs torch")
def test_torch_checkpoint(tmp_path):
    import torch

    path = tmp_path / "model.pt"
    torch.save(torch.nn.BatchNorm2d(3).state_dict(), path)
    with pytest.raises(numbanorm.SerializationError, match="torch checkpoint") as error:
        numbanorm.load(path)
    assert str(path) in str(error.value)
    legacy = tmp_path / "legacy.pt"
    torch.save({"a": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(numbanorm.SerializationError, match="not a zip archive"):
        numbanorm.load(legacy)


def _rewrite_header(path, header):
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["numbanorm.json"] = header if isinstance(header, bytes) else json.dumps(header)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


BAD_HEADERS = [
    (b"{not json", "numbanorm.json cannot be read"),
    ({"format": "other", "version": 1, "arrays": 0, "object": {"t": "none"}}, "bad numbanorm"),
    ({"format": "numbanorm", "version": 99, "arrays": 0, "object": {"t": "none"}}, "version 99"),
    ({"format": "numbanorm", "version": 1, "object": {"t": "none"}}, "bad numbanorm.json header"),
    ({"format": "numbanorm", "version": 1, "arrays": 1, "object": {"t": "pickle"}}, "unknown node"),
    ({"format": "numbanorm", "version": 1, "arrays": 1, "object": {"t": "array", "v": 5}}, "index"),
    (
        {"format": "numbanorm", "version": 1, "arrays": 2, "object": {"t": "array", "v": 1}},
        "missing",
    ),
    (
        {"format": "numbanorm", "version": 1, "arrays": 1, "object": {"t": "int", "v": "1"}},
        "bad int",
    ),
    (
        {"format": "numbanorm", "version": 1, "arrays": 1, "object": {"t": "list", "v": 3}},
        "bad list",
    ),
    ({"format": "numbanorm", "version": 1, "arrays": 1, "object": [1]}, "bad node"),
]


@pytest.mark.parametrize("header, message", BAD_HEADERS, ids=lambda v: str(v)[:40])
def test_corrupt_structure(tmp_path, header, message):
    path = _saved(tmp_path, {"a": np.ones(2)})
    _rewrite_header(path, header)
    with pytest.raises(numbanorm.SerializationError, match=message) as error:
        numbanorm.load(path)
    assert str(path) in str(error.value)


def test_object_arrays_in_a_file_are_not_unpickled(tmp_path):
    path = _saved(tmp_path, {"a": np.ones(2)})
    with zipfile.ZipFile(path) as archive:
        header = archive.read("numbanorm.json")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("numbanorm.json", header)
        with archive.open("arrays/0.npy", "w") as member:
            np.lib.format.write_array(member, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(numbanorm.SerializationError, match="cannot be read"):
        numbanorm.load(path)


def test_serialization_error_is_a_value_error():
    assert issubclass(numbanorm.SerializationError, ValueError)
