"""Tests of MRSuperResLib.model_catalog on the shipped catalogue: files, checksums, defaults, safe loading, errors."""

import hashlib
import json
import os
import pickle
import shutil

import pytest
import torch

from MRSuperResLib import model_catalog
from MRSuperResLib.network import RestorationNet, parameter_count

FAST_MODEL = "mrsr-unet16-2p5d-v7"
MAX_WEIGHTS_BYTES = 20 * 1024 * 1024


@pytest.fixture(autouse=True)
def _shipped_catalogue(monkeypatch):
    """Every test starts from the shipped catalogue, whatever the environment says."""
    monkeypatch.delenv("MRSUPERRES_MODELS_DIR", raising=False)


def _shipped_entries():
    return json.loads((model_catalog.DEFAULT_MODELS_DIR / model_catalog.CATALOG_NAME).read_text())["models"]


def _catalogue_copy(folder, model_id=FAST_MODEL, **changes):
    """A catalogue in `folder` holding one shipped entry (with `changes`) and a copy of its weights file."""
    entry = next(e for e in _shipped_entries() if e["id"] == model_id)
    shutil.copyfile(model_catalog.DEFAULT_MODELS_DIR / entry["file"], folder / entry["file"])
    entry = {**entry, **changes}
    (folder / model_catalog.CATALOG_NAME).write_text(json.dumps({"models": [entry]}))
    return folder / entry["file"]


def test_list_models_reads_the_shipped_catalogue():
    entries = _shipped_entries()
    models = model_catalog.list_models()
    assert [m.id for m in models] == [e["id"] for e in entries]
    assert len({m.id for m in models}) == len(models), "model ids must be unique"
    for info, entry in zip(models, entries):
        assert info.file == model_catalog.DEFAULT_MODELS_DIR / entry["file"]
        assert info.sha256 == entry["sha256"]
        assert info.architecture == entry["architecture"]
        assert info.scales == [1, 2, 3]
        assert info.details["licence"] == entry["licence"]  # extra keys are kept as details


def test_every_shipped_weights_file_exists_is_small_and_matches_its_checksum():
    for info in model_catalog.list_models():
        assert info.file.is_file(), f"{info.id}: weights file missing: {info.file}"
        assert info.file.stat().st_size <= MAX_WEIGHTS_BYTES, f"{info.id}: {info.file.name} is over 20 MB"
        assert hashlib.sha256(info.file.read_bytes()).hexdigest() == info.sha256, f"{info.id}: SHA-256 differs"


def test_shipped_weights_load_with_weights_only_into_the_declared_network():
    info = model_catalog.get_model(FAST_MODEL)
    state = torch.load(info.file, map_location="cpu", weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in state.values())
    model = model_catalog.build_model(info)
    assert isinstance(model, RestorationNet) and not model.training
    assert (model.architecture, model.context_slices) == (info.architecture, info.context_slices)
    assert parameter_count(model) == info.parameters
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name])


def test_defaults_per_device_follow_the_catalogue():
    entries = _shipped_entries()
    for device in ("cuda", "cpu"):
        defaults = [e["id"] for e in entries if device in e.get("default_for", [])]
        assert len(defaults) == 1, f"exactly one default model for {device}, got {defaults}"
        assert model_catalog.get_model(None, device).id == defaults[0]
    # The CPU default is the fast model (fewer parameters than the GPU default).
    assert model_catalog.get_model(None, "cpu").parameters < model_catalog.get_model(None, "cuda").parameters


def test_get_model_by_id_and_unknown_id_lists_the_available_ones():
    assert model_catalog.get_model(FAST_MODEL, "cuda").id == FAST_MODEL  # an explicit id beats the default
    with pytest.raises(ValueError, match="unknown model 'no-such-model'") as error:
        model_catalog.get_model("no-such-model")
    for info in model_catalog.list_models():
        assert info.id in str(error.value)


def test_models_dir_argument_and_environment_variable(tmp_path, monkeypatch):
    _catalogue_copy(tmp_path, id="copied-model", default_for=["cpu", "cuda"])
    assert [m.id for m in model_catalog.list_models(tmp_path)] == ["copied-model"]
    monkeypatch.setenv("MRSUPERRES_MODELS_DIR", str(tmp_path))
    info = model_catalog.get_model(None, "cpu")
    assert info.id == "copied-model" and info.file.parent == tmp_path
    assert model_catalog.list_models(model_catalog.DEFAULT_MODELS_DIR)[0].id != "copied-model"  # argument beats variable


def test_without_a_default_for_the_device_the_first_model_is_used(tmp_path):
    _catalogue_copy(tmp_path, id="first", default_for=[])
    catalogue = json.loads((tmp_path / "Models.json").read_text())
    catalogue["models"].append(dict(catalogue["models"][0], id="second"))
    (tmp_path / "Models.json").write_text(json.dumps(catalogue))
    assert model_catalog.get_model(None, "cpu", tmp_path).id == "first"


def test_corrupted_weights_are_refused_before_loading(tmp_path, monkeypatch):
    weights = _catalogue_copy(tmp_path)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # flip one bit in the middle of the tensor data
    weights.write_bytes(bytes(data))
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: loads.append(args) or real_load(*args, **kwargs))
    monkeypatch.setenv("MRSUPERRES_MODELS_DIR", str(tmp_path))
    info = model_catalog.get_model(FAST_MODEL)
    with pytest.raises(ValueError, match="checksum mismatch") as error:
        model_catalog.load_weights(info)
    assert str(weights) in str(error.value)
    with pytest.raises(ValueError, match="checksum mismatch"):
        model_catalog.build_model(info)
    assert loads == [], "torch.load must not run on a file whose checksum is wrong"


def test_missing_weights_file_is_a_value_error(tmp_path):
    weights = _catalogue_copy(tmp_path)
    weights.unlink()
    with pytest.raises(ValueError, match="not found") as error:
        model_catalog.load_weights(model_catalog.get_model(FAST_MODEL, directory=tmp_path))
    assert weights.name in str(error.value)


@pytest.mark.parametrize("text", [
    "{not json",
    json.dumps({"weights": []}),  # no "models" key
    json.dumps(["a list"]),
    json.dumps({"models": []}),
    json.dumps({"models": 3}),
    json.dumps({"models": ["just a string"]}),
    json.dumps({"models": [{"id": "x", "sha256": "0" * 64}]}),  # no file, architecture ...
    json.dumps({"models": [{"id": "x", "file": "x.pt"}]}),  # required fields missing
])
def test_malformed_catalogue_is_a_value_error(tmp_path, text):
    (tmp_path / model_catalog.CATALOG_NAME).write_text(text)
    with pytest.raises(ValueError, match="malformed"):
        model_catalog.get_model(None, "cpu", tmp_path)


def test_missing_catalogue_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="catalogue not found"):
        model_catalog.list_models(tmp_path)


class _CodeOnLoad:
    """Unpickling this object calls os.mkdir(path): a stand-in for arbitrary code in a malicious file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


class _CustomObject:
    value = 3


@pytest.mark.parametrize("payload", ["code", "object"])
def test_pickled_objects_are_refused_even_with_a_matching_checksum(tmp_path, payload):
    marker = tmp_path / "code-was-executed"
    weights = tmp_path / "evil.pt"
    content = {"unet.weight": torch.zeros(2), "extra": _CodeOnLoad(marker) if payload == "code" else _CustomObject()}
    torch.save(content, weights)
    entry = next(e for e in _shipped_entries() if e["id"] == FAST_MODEL)
    entry = {**entry, "id": "evil", "file": weights.name, "sha256": model_catalog.sha256_of(weights)}
    (tmp_path / model_catalog.CATALOG_NAME).write_text(json.dumps({"models": [entry]}))
    info = model_catalog.get_model("evil", directory=tmp_path)
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only load failed"):
        model_catalog.load_weights(info)
    assert not marker.exists(), "the pickled callable must not have run"
