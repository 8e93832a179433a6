"""Tests of the training pipeline: configuration, physics training pairs, and a smoke run of train.train.

The smoke run needs the training templates (`mrsuperres fetch-data` puts them in data/templates); CI does not
fetch them, so that test is skipped there. It takes ~20 s on a 2-core CPU, mostly building the synthetic head
(3D max pooling written for the GPU).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from MRSuperResLib import phantoms
from MRSuperResLib.network import RestorationNet, parameter_count
from MRSuperResLib.noise_estimation import estimate_noise_sigma_blind
from MRSuperResLib.train import DEFAULT_CONFIG, _flipped, detail_weights, load_config, train, training_loss
from MRSuperResLib.training_data import TEMPLATE_FILES
from MRSuperResLib.training_pairs import SCALES, make_training_pairs

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "data" / "templates"


# ---------------------------------------------------------------- configuration


def test_load_config_defaults_file_and_overrides(tmp_path):
    assert load_config() == DEFAULT_CONFIG
    path = tmp_path / "stage.json"
    path.write_text(json.dumps({"architecture": "unet16", "max_steps": 10}))
    config = load_config(path, {"max_steps": 5, "seed": None})  # None overrides are ignored
    assert config["architecture"] == "unet16" and config["max_steps"] == 5
    assert config["seed"] == DEFAULT_CONFIG["seed"]
    assert DEFAULT_CONFIG["max_steps"] == 40000  # the defaults themselves are not modified


def test_load_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({"learning_rat": 1e-3}))
    with pytest.raises(ValueError, match="unknown training config keys: \\['learning_rat'\\]"):
        load_config(path)
    with pytest.raises(ValueError, match="bogus"):
        load_config(None, {"bogus": 1})


# ---------------------------------------------------------------- training pairs


def _clean_batch(batch=2, context=3, size=64):
    """Piecewise-flat phantoms in [0, ~1], slightly different per context slice (like neighbouring slices)."""
    image = phantoms.flat_shapes((size, size), level=1.0)
    slices = [np.roll(image, shift, axis=1) for shift in range(context)]
    clean = torch.from_numpy(np.stack(slices).astype(np.float32))
    return torch.stack([clean * (1.0 - 0.3 * b) for b in range(batch)])


@pytest.mark.parametrize("scale", [1, 2, 3, None])
@pytest.mark.parametrize("seed", [0, 11])  # seed 0 draws a 20 x 21 matrix zero-filled to 21 x 21 (x3 of 64)
def test_training_pairs_have_the_documented_shapes_and_ranges(scale, seed):
    clean = _clean_batch()
    original = clean.clone()
    pairs = make_training_pairs(clean, torch.Generator().manual_seed(seed), crop=48, scale=scale)
    assert torch.equal(clean, original)
    assert pairs["inputs"].shape == (2, 3, 48, 48)
    assert pairs["condition"].shape == (2,)
    assert pairs["target"].shape == (2, 1, 48, 48)
    assert pairs["scale"] in SCALES if scale is None else pairs["scale"] == scale
    for value in (pairs["inputs"], pairs["condition"], pairs["target"]):
        assert torch.isfinite(value).all()
    assert ((pairs["condition"] >= 0) & (pairs["condition"] <= 1)).all()
    # Inputs are normalised by their own 99th percentile, as inference does.
    levels = torch.quantile(pairs["inputs"].flatten(1), 0.99, dim=1)
    assert levels.tolist() == pytest.approx([1.0, 1.0], rel=1e-4)
    # The target is the clean centre slice (same normalisation) plus at most the input's own noise: it follows
    # the clean phantom closely.
    truth = clean[:, 1, 8:56, 8:56].flatten(1)
    for target, expected in zip(pairs["target"].flatten(1), truth):
        assert np.corrcoef(target.numpy(), expected.numpy())[0, 1] > 0.9


def test_training_pairs_are_reproducible_for_a_seed():
    first = make_training_pairs(_clean_batch(), torch.Generator().manual_seed(3), crop=48)
    second = make_training_pairs(_clean_batch(), torch.Generator().manual_seed(3), crop=48)
    for key in ("inputs", "condition", "target"):
        assert torch.equal(first[key], second[key])
    assert first["scale"] == second["scale"]


def test_training_pairs_of_empty_scenes_keep_the_noise_fraction_the_strength_leaves():
    """Without an object the truth is 0, so the target is (1 - strength) x the noisy centre slice, and the
    condition is strength x the blind noise estimate of that slice."""
    clean = torch.zeros((2, 3, 32, 32))
    pairs = make_training_pairs(clean, torch.Generator().manual_seed(5), crop=32, scale=1)
    assert torch.isfinite(pairs["inputs"]).all() and pairs["inputs"].abs().max() > 0  # noise is present
    centre, target = pairs["inputs"][:, 1], pairs["target"][:, 0]
    kept = (centre * target).flatten(1).sum(1) / (centre * centre).flatten(1).sum(1)
    assert torch.allclose(target, kept.view(-1, 1, 1) * centre, atol=1e-6)
    strength = pairs["condition"] / estimate_noise_sigma_blind(centre, centre)  # scale 1, no crop: same grid
    assert torch.allclose(kept, 1 - strength, atol=1e-5)


def test_training_target_is_the_clean_truth_in_the_inputs_units(monkeypatch):
    """Noise-free pairs: at scale 1 without blind blur the input is the truth itself, so the target must equal
    the input; at scale 2 the target is the clean truth (not its blurred zero-fill) in the same units."""
    from MRSuperResLib import training_pairs

    monkeypatch.setattr(training_pairs, "sigma_for_snr", lambda images, snr: torch.zeros(images.shape[0]))
    no_blur = dict.fromkeys(training_pairs.BLIND_BLUR, 0.0)
    pairs = make_training_pairs(_clean_batch(), torch.Generator().manual_seed(1), crop=48, scale=1, blind_blur=no_blur)
    torch.testing.assert_close(pairs["target"], pairs["inputs"][:, 1:2], atol=1e-4, rtol=0)
    pairs = make_training_pairs(_clean_batch(), torch.Generator().manual_seed(1), crop=48, scale=2, blind_blur=no_blur)
    truth = _clean_batch()[:, 1:2, 8:56, 8:56]
    foreground = truth > 0.1
    for target, expected, inside in zip(pairs["target"], truth, foreground):
        ratio = target[inside] / expected[inside]  # 1 / the input's 99th-percentile level
        assert ratio.std() < 1e-4 * ratio.mean()


@pytest.mark.parametrize("probability", [0.0, 1.0])
def test_blind_blur_probabilities_decide_every_kind_of_blur(monkeypatch, probability):
    from MRSuperResLib import training_pairs

    calls, acquire = [], training_pairs.acquire

    def recording_acquire(images, **kwargs):
        calls.append(kwargs)
        return acquire(images, **kwargs)

    monkeypatch.setattr(training_pairs, "acquire", recording_acquire)
    blur = dict.fromkeys(training_pairs.BLIND_BLUR, probability)
    for seed in range(4):
        make_training_pairs(_clean_batch(), torch.Generator().manual_seed(seed), crop=48, scale=1, blind_blur=blur)
    assert len(calls) == 8  # noisy and noise-free acquisition per batch
    for kwargs in calls:
        coarser = [a < r for a, r in zip(kwargs["acquired_shape"], kwargs["recon_shape"])]
        if probability == 0.0:
            assert coarser == [False, False] and kwargs["partial_fourier"] == 1.0 and kwargs["apodisation"] == 0.0
        else:
            assert all(coarser) and kwargs["partial_fourier"] < 1.0 and kwargs["apodisation"] > 0.0


@pytest.mark.parametrize("key", ["blind_blur", "fine_texture", "lesions"])
def test_load_config_rejects_unknown_nested_keys(key):
    with pytest.raises(ValueError, match=f"unknown {key} keys in the training config: \\['motion'\\]"):
        load_config(None, {key: {"motion": 0.5}})


def test_lesion_settings_decide_the_blobs_drawn_into_the_truth():
    """One blob, always present, radius 3 mm: against the same draws with the blob absent, the image differs by one
    ball of that radius (sheets and tubes come from the same random draws in both)."""
    from types import SimpleNamespace

    from MRSuperResLib.training_data import SliceSynthesizer

    axis = torch.arange(-40.0, 40.0)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)[None]  # (1, 80, 80, 80, 3) mm
    images = []
    for probability in (0.0, 1.0):
        synthesizer = SliceSynthesizer(SimpleNamespace(device=torch.device("cpu")),
                                       generator=torch.Generator().manual_seed(3),
                                       lesions={"count": 1, "probability": probability, "radius_mm": (3.0, 3.0)})
        images.append(synthesizer._add_blobs_and_tubes(torch.zeros(1, axis.numel() ** 3), points))
    blob = (images[1] - images[0]).abs()
    inside = int((blob > 0.5 * blob.max()).sum())  # voxels of 1 mm^3 at half height: the ball of radius 3 mm
    assert 4 / 3 * np.pi * 3**3 * 0.8 < inside < 4 / 3 * np.pi * 3**3 * 1.25


def test_training_loss_is_the_configured_error_and_unknown_losses_are_rejected():
    prediction, target = torch.tensor([0.0, 0.0, 3.0]), torch.tensor([1.0, 0.0, 0.0])
    assert training_loss(prediction, target, "l1").item() == pytest.approx(4 / 3)
    assert training_loss(prediction, target, "l2").item() == pytest.approx(10 / 3)
    assert load_config(None, {"loss": "l2"})["loss"] == "l2"
    # Weighted: the error where the weight is 3 counts three times.
    assert training_loss(prediction, target, "l1", torch.tensor([1.0, 1.0, 3.0])).item() == pytest.approx(10 / 5)
    with pytest.raises(ValueError, match="loss must be one of"):
        load_config(None, {"loss": "huber"})


def test_detail_weights_rise_on_fine_structure_only():
    truth = torch.zeros(1, 1, 9, 9)
    truth[0, 0, 4, 4] = 1.0  # a one-pixel spot on a flat background
    weights = detail_weights(truth, 10.0)
    assert weights[0, 0, 4, 4].item() == pytest.approx(1 + 10 * 8 / 9)
    assert weights[0, 0, 0, 0].item() == 1.0 and weights.min().item() == 1.0
    assert detail_weights(truth, 0.0) is None


def test_repeated_degradations_see_flipped_and_transposed_batches():
    clean = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).view(2, 1, 3, 4)
    views = [_flipped(clean, repeat) for repeat in range(4)]
    assert torch.equal(views[0], clean)
    assert torch.equal(views[1], clean.transpose(-1, -2))
    assert torch.equal(views[2], clean.flip(-1))
    assert torch.equal(views[3], clean.transpose(-1, -2).flip(-1))


# ---------------------------------------------------------------- smoke training run


@pytest.mark.skipif(not all((TEMPLATE_DIR / name).is_file() for name in TEMPLATE_FILES.values()),
                    reason="training templates not in data/templates (run `mrsuperres fetch-data`; CI does not)")
def test_smoke_training_writes_loadable_weights_card_and_log(tmp_path, monkeypatch):
    from MRSuperResLib import train as train_module
    from MRSuperResLib import training_data

    config = load_config(overrides={
        "model_id": "smoke-unet16", "architecture": "unet16", "synth_size": 64, "crop": 48, "batch_size": 2,
        "max_steps": 3, "time_limit_minutes": 1, "log_every": 1, "degradations_per_batch": 2, "loss": "l2",
        "lesions": {"count": 1}, "detail_weight": 2.0, "spacing_condition": True,
        "fine_texture": {"correlated_slices": True},
    })
    losses, lesions = [], []  # what the training loop and the slice synthesizers actually got
    monkeypatch.setattr(train_module, "training_loss",
                        lambda prediction, target, kind, weight: losses.append((kind, weight is not None))
                        or training_loss(prediction, target, kind, weight))

    class RecordingSynthesizer(training_data.SliceSynthesizer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            lesions.append(self.lesions["count"])

    monkeypatch.setattr(training_data, "SliceSynthesizer", RecordingSynthesizer)
    messages = []
    summary = train(TEMPLATE_DIR, tmp_path, config, log=messages.append)
    assert losses == [("l2", True)] * 3 and lesions == [1, 1]  # training and validation synthesizers
    assert summary.steps == 3 and summary.model_id == "smoke-unet16"
    assert np.isfinite(summary.final_loss) and np.isfinite(summary.validation_l1_model)

    weights, card, log = (tmp_path / f"smoke-unet16{suffix}" for suffix in (".pt", ".json", ".log"))
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = RestorationNet("unet16", 3, spacing_condition=True)
    model.load_state_dict(state, strict=True)
    assert parameter_count(model) == summary.parameters
    assert all(value.dtype == torch.float32 for value in state.values())
    assert not list(tmp_path.glob("*.tmp"))  # written to a temporary name, then renamed

    card_data = json.loads(card.read_text())
    assert card_data["config"] == config
    assert card_data["training"]["steps"] == 3 and card_data["training"]["parameters"] == summary.parameters

    lines = log.read_text().splitlines()
    assert lines[0].startswith("config ") and lines[-1].startswith("summary ")
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["1", "2", "3"]
    assert messages == lines


def test_the_train_command_offers_every_architecture():
    """cli_train lists the architectures by name (importing network.py would load torch for every command)."""
    import argparse

    from MRSuperResLib import cli_train
    from MRSuperResLib.network import ARCHITECTURES

    parser = argparse.ArgumentParser()
    cli_train.add_arguments(parser)
    choices = next(action.choices for action in parser._actions if action.dest == "architecture")
    assert sorted(choices) == sorted(ARCHITECTURES)
