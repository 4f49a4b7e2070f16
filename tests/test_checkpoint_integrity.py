"""Checkpoint integrity: bad files raise CheckpointError naming the file and the problem, the checksum
catches changed tensors, old (format 1) files still load, and saving never replaces a file silently.

All on real files in ``tmp_path``; the fits are a step or two long (only the plumbing matters here).
"""

import fractions
import os
import pickle
import struct
import zipfile

import pyro
import pytest
import torch

from pyro_neurodyn import SRNN, LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.data import gaussian_oscillator_data, switching_lorenz, switching_lowrank_data
from pyro_neurodyn.infer import CheckpointError, load_checkpoint, save_checkpoint
from pyro_neurodyn.infer.checkpoint import FORMAT, FORMAT_VERSION, _checksum


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fitted():
    """One tiny fitted model of each estimator class, by class name."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    pyro.clear_param_store()
    srnn = SRNN(2, 2, 3, seed=0)
    srnn.fit(switching_lorenz(2, 20, seed=0).y, num_steps=2, filter_steps=1, progress=False)
    lowrank = LowRankRNN(20, 2, 8, seed=2)
    lowrank.fit(gaussian_oscillator_data(4, 20, seed=3).y, num_particles=4, num_steps=1, progress=False)
    switching = SwitchingLowRankRNN(20, 2, 2, 8, seed=1)
    switching.fit(switching_lowrank_data(num_trials=2, num_steps=30, seed=0).y, "collapsed", num_steps=1, init_from_data=False)
    pyro.clear_param_store()
    torch.set_num_threads(threads)
    return {"SRNN": srnn, "LowRankRNN": lowrank, "SwitchingLowRankRNN": switching}


ESTIMATORS = {"SRNN": SRNN, "LowRankRNN": LowRankRNN, "SwitchingLowRankRNN": SwitchingLowRankRNN}


def _state(model):
    """Every parameter and buffer of a fitted estimator, by name."""
    if isinstance(model, LowRankRNN):
        state = {f"model.{k}": v for k, v in model.model.state_dict().items()}
        return {**state, **{f"guide.{k}": v for k, v in model.guide.state_dict().items()}}
    return dict(model.module.state_dict())


def _saved(fitted, tmp_path, name="SRNN"):
    path = tmp_path / f"{name.lower()}.pt"
    fitted[name].save(path)
    return path


def _raw(path):
    return torch.load(path, weights_only=True, map_location="cpu")


def _rewrite(payload, path):
    """Write ``payload`` as torch.save would, to a new path (simulating a file changed after saving)."""
    torch.save(payload, path)
    return path


def _assert_error(path, excinfo, *phrases):
    message = str(excinfo.value)
    assert isinstance(excinfo.value, ValueError) and excinfo.value.path == path
    assert path.name in message, message
    for phrase in phrases:
        assert phrase in message, message
    assert "weights_only=False will likely succeed" not in message  # never the bare torch advice


# --------------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_each_estimator_round_trips_with_format_version_and_checksum(fitted, tmp_path, name):
    model = fitted[name]
    path = _saved(fitted, tmp_path, name)
    raw = _raw(path)
    assert raw["format"] == FORMAT and raw["format_version"] == FORMAT_VERSION == 3 and raw["kind"] == name
    assert raw["checksum"].startswith("sha256:") and raw["checksum"] == _checksum(raw)
    loaded = ESTIMATORS[name].load(path)
    assert loaded.config == model.config and loaded.losses == model.losses
    before, after = _state(model), _state(loaded)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary files left behind


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_a_format_1_file_still_loads_without_a_checksum(fitted, tmp_path, name):
    raw = _raw(_saved(fitted, tmp_path, name))
    del raw["format_version"], raw["checksum"]  # exactly what the first format wrote,
    raw.pop("optimizer", None), raw.pop("optimizer_state", None)  # but for pyro.optim's moments (tests/test_legacy_optimizer_state.py)
    assert isinstance(raw["version"], str)  # the package version, as format 1 stored it
    old = _rewrite(raw, tmp_path / "old.pt")
    loaded = ESTIMATORS[name].load(old)
    before, after = _state(fitted[name]), _state(loaded)
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert loaded.losses == fitted[name].losses


def test_the_checksum_is_canonical_and_covers_every_kind_of_tensor_and_value(tmp_path):
    optimizer_like = {
        "state": {
            0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)},
            1: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4)},
        },
        "param_groups": [{"lr": 0.01, "betas": (0.9, 0.999), "params": [0, 1], "amsgrad": False, "foreach": None}],
    }
    state = {
        "half": torch.randn(3, 2, dtype=torch.bfloat16),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "mask": torch.tensor([True, False, True]),
        "complex": torch.randn(2, dtype=torch.complex64),
        "counts": torch.arange(5),
        "strided": torch.randn(4, 6)[:, ::2],
    }
    extra = dict(optimizer=optimizer_like, losses=[1.5, float("nan")], note="ünïcode", dtype=torch.float64)
    path = save_checkpoint(tmp_path / "all.pt", "Thing", {"n": 3, "names": ["a", "b"]}, state, **extra)
    payload = load_checkpoint(path, "Thing")
    for key, value in state.items():
        assert payload["state_dict"][key].dtype == value.dtype and torch.equal(payload["state_dict"][key], value)
    assert payload["optimizer"]["param_groups"] == optimizer_like["param_groups"]

    raw = _raw(path)
    shuffled = {key: raw[key] for key in reversed(list(raw))}  # insertion order does not matter
    shuffled["state_dict"] = {key: raw["state_dict"][key] for key in reversed(list(raw["state_dict"]))}
    assert _checksum(shuffled) == raw["checksum"]

    def changed(edit):
        copy = _raw(path)
        edit(copy)
        return _checksum(copy) != raw["checksum"]

    assert changed(lambda p: p["state_dict"]["half"].view(torch.int16)[0, 0].add_(1))  # one bfloat16 bit pattern
    assert changed(lambda p: p["state_dict"]["scalar"].add_(1e-6))
    assert changed(lambda p: p["state_dict"]["mask"].logical_not_())
    assert changed(lambda p: p["optimizer"]["state"][1]["exp_avg"].mul_(-1))
    assert changed(lambda p: p["state_dict"].__setitem__("empty", torch.zeros(3, 0)))  # same (no) bytes, new shape
    assert changed(lambda p: p["state_dict"].__setitem__("counts", p["state_dict"]["counts"].to(torch.int32)))
    assert changed(lambda p: p["losses"].__setitem__(0, 1.25))
    assert changed(lambda p: p["optimizer"]["param_groups"][0].__setitem__("betas", (0.9, 0.99)))
    assert changed(lambda p: p["config"].__setitem__("n", "3"))  # a str is not an int


# --------------------------------------------------------------------------------------------------
# bad files


def _truncated(path, good):
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])


def _plain_pickle(path, good):
    with open(path, "wb") as stream:
        pickle.dump({"format": FORMAT, "kind": "SRNN"}, stream)


BAD_FILES = {
    "empty": (lambda path, good: path.write_bytes(b""), "is empty"),
    "truncated": (_truncated, "is truncated or not a torch file"),
    "random bytes": (lambda path, good: path.write_bytes(os.urandom(4000)), "is truncated or not a torch file"),
    "text": (lambda path, good: path.write_text("not a checkpoint\n"), "is truncated or not a torch file"),
    "plain pickle": (_plain_pickle, "is truncated or not a torch file"),
    "foreign torch dict": (lambda path, good: torch.save({"a": 1}, path), "is not a pyro_neurodyn checkpoint"),
    "foreign torch list": (lambda path, good: torch.save([torch.zeros(2)], path), "is not a pyro_neurodyn checkpoint"),
    "torch file of objects": (
        lambda path, good: torch.save({"f": fractions.Fraction(1, 3)}, path),
        "is not a pyro_neurodyn checkpoint",
    ),
}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, on the plain pickle
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_raises_a_checkpoint_error_naming_it_and_the_problem(fitted, tmp_path, case):
    good = _saved(fitted, tmp_path)
    make, phrase = BAD_FILES[case]
    path = tmp_path / f"bad {case}.pt"
    make(path, good)
    with pytest.raises(CheckpointError) as excinfo:
        SRNN.load(path)
    _assert_error(path, excinfo, phrase)
    assert excinfo.value.__cause__ is not None or case in ("empty", "foreign torch dict", "foreign torch list")


def test_every_truncation_of_a_checkpoint_raises_a_checkpoint_error(fitted, tmp_path):
    data = _saved(fitted, tmp_path, "SwitchingLowRankRNN").read_bytes()
    path = tmp_path / "cut.pt"
    for length in range(0, len(data), max(1, len(data) // 97)):
        path.write_bytes(data[:length])
        with pytest.raises(CheckpointError, match="cut.pt"):
            SwitchingLowRankRNN.load(path)


def test_a_missing_file_is_still_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        SRNN.load(tmp_path / "nowhere.pt")


def test_a_checkpoint_of_another_kind_names_both_kinds(fitted, tmp_path):
    path = _saved(fitted, tmp_path, "SRNN")
    with pytest.raises(CheckpointError) as excinfo:
        LowRankRNN.load(path)
    _assert_error(path, excinfo, "holds a SRNN checkpoint, not a LowRankRNN")


def test_a_newer_format_version_is_refused_with_both_versions(fitted, tmp_path):
    raw = _raw(_saved(fitted, tmp_path))
    raw["format_version"] = FORMAT_VERSION + 1
    path = _rewrite(raw, tmp_path / "future.pt")
    with pytest.raises(CheckpointError) as excinfo:
        SRNN.load(path)
    _assert_error(path, excinfo, f"was written by format version {FORMAT_VERSION + 1}; this version reads {FORMAT_VERSION}")
    raw["format_version"] = "2"
    with pytest.raises(CheckpointError, match="invalid format version '2'"):
        SRNN.load(_rewrite(raw, tmp_path / "odd.pt"))


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_a_changed_tensor_element_fails_the_checksum(fitted, tmp_path, name):
    raw = _raw(_saved(fitted, tmp_path, name))
    key, tensor = next((k, v) for k, v in raw["state_dict"].items() if v.is_floating_point() and v.numel())
    tensor.view(-1).view(torch.int32 if tensor.element_size() == 4 else torch.int64)[0] ^= 1  # one flipped bit
    path = _rewrite(raw, tmp_path / "flipped.pt")  # still unpickles; keeps the old checksum
    assert not torch.equal(_raw(path)["state_dict"][key], _state(fitted[name])[key])
    with pytest.raises(CheckpointError) as excinfo:
        ESTIMATORS[name].load(path)
    _assert_error(path, excinfo, "failed its checksum", "flipped byte")


def test_changed_plain_values_or_a_missing_checksum_are_caught(fitted, tmp_path):
    raw = _raw(_saved(fitted, tmp_path))
    raw["losses"][0] += 1.0
    path = _rewrite(raw, tmp_path / "losses.pt")
    with pytest.raises(CheckpointError, match="failed its checksum"):
        SRNN.load(path)
    del raw["checksum"]
    path = _rewrite(raw, tmp_path / "unsummed.pt")
    with pytest.raises(CheckpointError, match=f"unsummed.pt is corrupted: format version {FORMAT_VERSION} requires a checksum"):
        SRNN.load(path)


def _data_records(path):
    """(offset, size) in the file of each tensor storage record of torch.save's zip archive."""
    data = path.read_bytes()
    records = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if "/data/" in info.filename and info.compress_type == zipfile.ZIP_STORED and info.file_size:
                name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
                records.append((info.header_offset + 30 + name_length + extra_length, info.file_size))
    return records


def test_a_flipped_byte_in_the_file_itself_is_caught(fitted, tmp_path):
    """A real one-bit change inside a stored tensor's bytes: torch.load reads such a file without
    complaint (it does not check the zip CRCs), so without the checksum it would load and predict
    differently."""
    path = _saved(fitted, tmp_path, "SwitchingLowRankRNN")
    offset, size = max(_data_records(path), key=lambda record: record[1])
    data = bytearray(path.read_bytes())
    data[offset + size // 2] ^= 0x10
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as excinfo:
        SwitchingLowRankRNN.load(flipped)
    message = str(excinfo.value)
    assert "flipped.pt" in message
    # torch (2.x) does not verify the archive's CRC-32s, so the checksum is what notices; were a future
    # torch to check them, its read error would surface as "truncated or not a torch file" instead
    assert "failed its checksum" in message or "truncated or not a torch file" in message


# --------------------------------------------------------------------------------------------------
# writing


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_saving_over_an_existing_file_is_refused_and_leaves_it_byte_identical(fitted, tmp_path, name):
    path = tmp_path / "model.pt"
    fitted["SRNN" if name != "SRNN" else "LowRankRNN"].save(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fitted[name].save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary files either
    fitted[name].save(path, overwrite=True)
    assert type(ESTIMATORS[name].load(path)) is ESTIMATORS[name]


def test_a_user_file_of_any_content_is_never_replaced(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("precious")
    with pytest.raises(FileExistsError):
        save_checkpoint(path, "Thing", {}, {"w": torch.ones(2)})
    link = tmp_path / "dangling.pt"
    link.symlink_to(tmp_path / "missing-target")
    with pytest.raises(FileExistsError):
        save_checkpoint(link, "Thing", {}, {"w": torch.ones(2)})
    assert path.read_text() == "precious" and link.is_symlink() and not (tmp_path / "missing-target").exists()


def test_unloadable_payloads_and_reserved_names_are_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "model.pt"
    with pytest.raises(CheckpointError, match="model.pt was not written"):
        save_checkpoint(path, "Thing", {}, {"w": torch.ones(2)}, ratio=fractions.Fraction(1, 3))
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(path, "Thing", {}, {"w": torch.ones(2)}, checksum="sha256:0")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_checkpoint(tmp_path / "no" / "model.pt", "Thing", {}, {})
    assert list(tmp_path.iterdir()) == []


def test_the_saved_file_has_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "model.pt", "Thing", {}, {"w": torch.ones(2)})
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
