"""Tests of what a 2.5D network learns its neighbouring slices from: textures shared through the slab
(training_data.correlated_slices) and the slice spacing it is told (network.spacing_condition) from training
through the catalogue to enhance()."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from MRQualityMetricsLib.volume import make_ijk_to_ras
from MRSuperResLib import inference, model_catalog
from MRSuperResLib.network import SPACING_RATIO_RANGE, RestorationNet
from MRSuperResLib.training_data import (
    LABELS,
    SliceSynthesizer,
    power_law_texture_at_depths,
    smooth_field_at_depths,
)


def _correlation(first, second):
    return torch.corrcoef(torch.stack([first.flatten(), second.flatten()]))[0, 1].item()


@pytest.mark.parametrize("exponent", [0.5, 1.5, 3.0])
def test_power_law_slices_share_texture_by_their_distance(exponent):
    """Cuts a pixel apart correlate more than cuts two apart, far more than cuts 30 apart; a smoother spectrum
    (larger exponent) correlates further; each cut has unit SD."""
    generator, exponents = torch.Generator().manual_seed(0), torch.full((6,), exponent)
    texture = power_law_texture_at_depths(torch.tensor([[0.0, 1.0, 2.0]]).repeat(6, 1), 64, exponents, generator, "cpu")
    assert texture.shape == (6, 3, 64, 64)
    np.testing.assert_allclose(texture.flatten(1).std(1).numpy(), 1.0, rtol=1e-4)
    near, second = (_correlation(texture[:, 0], texture[:, k]) for k in (1, 2))
    apart = power_law_texture_at_depths(torch.tensor([[0.0, 30.0]]).repeat(6, 1), 64, exponents, generator, "cpu")
    far = _correlation(apart[:, 0], apart[:, 1])
    assert near > second > abs(far) and abs(far) < 0.15
    expected_near = {0.5: (0.15, 0.45), 1.5: (0.45, 0.75), 3.0: (0.85, 1.0)}[exponent]
    assert expected_near[0] < near < expected_near[1]


def test_power_law_cuts_fall_off_with_the_2d_exponent():
    """A cut of the 3D 1/|k|^3 field falls off about as 1/|k|^2 (power_law_texture's exponent 2) in mid to high
    in-plane frequencies."""
    texture = power_law_texture_at_depths(torch.zeros(8, 1), 64, torch.full((8,), 2.0), torch.Generator().manual_seed(1),
                                          "cpu")
    power = torch.fft.fft2(texture).abs().square().mean((0, 1))
    radius = (torch.fft.fftfreq(64)[:, None] ** 2 + torch.fft.fftfreq(64)[None] ** 2).sqrt()
    low, high = (power[(radius > a) & (radius <= b)].mean().item() for a, b in ((0.08, 0.12), (0.3, 0.4)))
    assert math.log(low / high) / math.log(0.35 / 0.1) == pytest.approx(2.0, abs=0.35)


def test_smooth_field_is_shared_within_a_cell_and_not_beyond():
    depths = torch.tensor([[0.0, 0.5, 40.0]]).repeat(6, 1)
    field = smooth_field_at_depths(depths, 64, 16, torch.Generator().manual_seed(2), "cpu")
    assert field.shape == (6, 3, 64, 64)
    assert _correlation(field[:, 0], field[:, 1]) > 0.95 and abs(_correlation(field[:, 0], field[:, 2])) < 0.15


def _uniform_bank(size=24):
    """A bank of one tissue everywhere (no anatomy), so whatever differs between slices is texture."""
    labels = torch.zeros(1, len(LABELS), size, size, size)
    labels[:, LABELS.index("wm")] = 1.0
    ras_to_norm = torch.eye(4)
    ras_to_norm[:3, :3] /= 200.0  # +-200 mm spans the grid
    return SimpleNamespace(device=torch.device("cpu"), labels=labels.half(), mni_ras_to_norm=ras_to_norm,
                           t1_fine=torch.ones(1, 1, size, size, size).half(), fine_ras_to_norm=ras_to_norm,
                           centre_low=torch.zeros(3), centre_high=torch.zeros(3))


@pytest.mark.parametrize("correlated", [False, True])
def test_synthesised_neighbours_share_texture_only_when_correlated(monkeypatch, correlated):
    """On uniform tissue (no blobs, sheets or tubes) the neighbours of thin slices differ by texture alone: drawn
    per slice they share little of it (only the smooth bias field), cut from 3D fields most of it."""
    monkeypatch.setattr(SliceSynthesizer, "_add_blobs_and_tubes", lambda self, image, points: image)
    synthesizer = SliceSynthesizer(_uniform_bank(), size=48, context=3, generator=torch.Generator().manual_seed(3),
                                   sources={name: {"fraction": float(name == "labels"), "pixel_mm": (1.0, 1.0)}
                                            for name in ("template", "labels", "shapes")},
                                   fine_texture={"correlated_slices": correlated, "max_amplitude": 0.1})
    images, pixel, spacing = synthesizer.sample(32)
    assert images.shape == (32, 3, 48, 48) and pixel.shape == spacing.shape == (32,)
    thin = (spacing <= 1.5) & (images.flatten(1).amax(1) > 0)  # thin slices, not an empty scene
    assert thin.sum() >= 8 and ((spacing >= 0.5) & (spacing <= 6.5)).all()
    detail = images[thin] / images[thin].mean((2, 3), keepdim=True) - 1  # texture (and the smooth bias field)
    correlation = _correlation(detail[:, 0], detail[:, 1])
    assert (correlation > 0.6) if correlated else (correlation < 0.35)


def test_spacing_conditioned_network_needs_the_ratio_and_responds_to_it():
    torch.manual_seed(0)
    model = RestorationNet("unet16", 3, spacing_condition=True).eval()
    assert model.unet.conv_0.conv_0.conv.in_channels == 5  # three slices, the noise level and the spacing
    slices, noise = torch.rand(2, 3, 32, 32), torch.full((2,), 0.05)
    with pytest.raises(ValueError, match="conditioned on the slice spacing: pass spacing_ratio"):
        model(slices, noise)
    with torch.no_grad():
        close, far = model(slices, noise, 1.0), model(slices, noise, torch.tensor([6.0, 6.0]))
        beyond = model(slices, noise, SPACING_RATIO_RANGE[1] * 3)
        edge = model(slices, noise, SPACING_RATIO_RANGE[1])
    assert not torch.allclose(close, far)
    torch.testing.assert_close(beyond, edge)  # ratios beyond training are told the nearest one known
    plain = RestorationNet("unet16", 3).eval()
    assert plain.unet.conv_0.conv_0.conv.in_channels == 4
    with torch.no_grad():
        torch.testing.assert_close(plain(slices, noise, 1.0), plain(slices, noise))


@pytest.mark.parametrize(("spacing", "scale", "axis", "expected"), [
    ((1.0, 1.0, 3.0), 2, 2, 6.0),  # 3 mm slices, 1 mm pixels made 0.5 mm
    ((1.0, 1.0, 1.0), 1, 2, 1.0),
    ((4.0, 0.9, 0.9), 3, 0, 4.0 / 0.3),  # sagittal slices
])
def test_spacing_ratio_is_slice_spacing_over_output_pixel(spacing, scale, axis, expected):
    _, geometry = inference.output_geometry(make_ijk_to_ras(spacing), (12, 12, 12), scale, axis)
    assert inference.spacing_ratio(geometry, axis) == pytest.approx(expected)


def test_enhance_tells_a_spacing_conditioned_catalogue_model_the_volumes_spacing(tmp_path):
    """A catalogue entry with spacing_condition builds the conditioned network, and enhance() hands it slice
    spacing / output pixel: the same slices 1 and 4 mm apart come out differently."""
    torch.manual_seed(1)
    weights = tmp_path / "spacing.pt"
    torch.save(RestorationNet("unet16", 3, spacing_condition=True).state_dict(), weights)
    entry = {"id": "test-spacing-unet16", "file": weights.name, "sha256": model_catalog.sha256_of(weights),
             "architecture": "unet16", "context_slices": 3, "scales": [1, 2, 3], "spacing_condition": True}
    (tmp_path / model_catalog.CATALOG_NAME).write_text(json.dumps({"models": [entry]}))
    info = model_catalog.get_model("test-spacing-unet16", directory=tmp_path)
    assert info.spacing_condition and model_catalog.build_model(info).spacing_condition

    seen = []
    original_forward = RestorationNet.forward

    def recording_forward(self, slices, noise_level, spacing_ratio=None):
        seen.append(spacing_ratio)
        return original_forward(self, slices, noise_level, spacing_ratio)

    array = np.random.default_rng(4).random((6, 16, 16)).astype(np.float32) * 100
    outputs = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RestorationNet, "forward", recording_forward)
        for slice_mm in (1.0, 4.0):
            out, _ = inference.enhance(array, make_ijk_to_ras((1.0, 1.0, slice_mm)), scale=2, device="cpu",
                                       model_id=info.id, models_dir=tmp_path, data_consistency=False)
            outputs.append(out)
    assert sorted(set(seen)) == [2.0, 8.0]
    assert not np.allclose(outputs[0], outputs[1])


def test_context_indices_mirror_about_the_centre_at_the_ends_of_the_stack():
    expected = [[2, 1, 0, 1, 2], [3, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [3, 4, 5, 6, 7],
                [4, 5, 6, 7, 4], [5, 6, 7, 6, 5]]
    assert inference.context_indices(0, 8, 2, 8).tolist() == expected
    assert inference.context_indices(3, 5, 1, 8).tolist() == [[2, 3, 4], [3, 4, 5]]
    assert inference.context_indices(0, 1, 2, 1).tolist() == [[0] * 5]  # one slice: nothing else to show


@pytest.mark.parametrize("count", range(2, 9))
@pytest.mark.parametrize("half", [1, 2, 3])
def test_no_neighbour_is_a_copy_of_its_centre(count, half):
    indices = inference.context_indices(0, count, half, count)
    assert indices.shape == (count, 2 * half + 1) and indices.min() >= 0 and indices.max() < count
    assert (indices[:, half] == np.arange(count)).all()
    neighbours = np.delete(indices, half, axis=1)
    assert (neighbours != np.arange(count)[:, None]).all()


def test_enhance_never_hands_the_network_its_centre_slice_as_a_neighbour():
    """On a three-slice volume every window of the 2.5D model holds three different slices; the middle window is
    the volume's own slices in order."""
    windows = []
    original_forward = RestorationNet.forward

    def recording_forward(self, slices, noise_level, spacing_ratio=None):
        windows.append(slices.clone())
        return original_forward(self, slices, noise_level, spacing_ratio)

    array = np.random.default_rng(5).random((3, 16, 16)).astype(np.float32) * 100
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RestorationNet, "forward", recording_forward)
        inference.enhance(array, make_ijk_to_ras((1.0, 1.0, 2.0)), scale=1, device="cpu",
                          model_id="mrsr-unet16-2p5d-v7", data_consistency=False)
    stacked = torch.cat(windows)
    assert stacked.shape[:2] == (3, 3)
    for window in stacked:
        assert not torch.equal(window[0], window[1]) and not torch.equal(window[2], window[1])

    def same_slice(first, second):  # windows are scaled by their own intensity level
        return torch.allclose(first / first.abs().max(), second / second.abs().max(), atol=1e-6)

    middle = stacked[1]
    assert same_slice(stacked[0][0], middle[1]) and same_slice(stacked[0][1], middle[0])  # mirrored: 1, 0, 1
    assert same_slice(stacked[2][2], middle[1]) and not same_slice(stacked[0][0], middle[2])


def test_training_tells_a_spacing_conditioned_network_each_samples_spacing(tmp_path, monkeypatch):
    """train() on the uniform bank (no templates needed): every forward pass of a spacing-conditioned network gets
    the slice spacing / pixel size of the samples it restores, in training and in validation."""
    from MRSuperResLib import train as train_module
    from MRSuperResLib import training_data

    monkeypatch.setattr(training_data, "TemplateBank", lambda template_dir, device: _uniform_bank())
    drawn, told = [], []
    original_sample, original_forward = SliceSynthesizer.sample, RestorationNet.forward

    def recording_sample(self, batch):
        images, pixel, spacing = original_sample(self, batch)
        drawn.append(spacing / pixel)
        return images, pixel, spacing

    def recording_forward(self, slices, noise_level, spacing_ratio=None):
        told.append(spacing_ratio)
        return original_forward(self, slices, noise_level, spacing_ratio)

    monkeypatch.setattr(SliceSynthesizer, "sample", recording_sample)
    monkeypatch.setattr(RestorationNet, "forward", recording_forward)
    config = train_module.load_config(overrides={
        "model_id": "spacing-smoke", "architecture": "unet16", "synth_size": 48, "crop": 32, "batch_size": 2,
        "max_steps": 2, "time_limit_minutes": 1, "degradations_per_batch": 2, "spacing_condition": True})
    train_module.train(tmp_path, tmp_path, config, log=lambda message: None)
    validation, training = drawn[:4], drawn[4:]  # four validation batches are drawn first, then one to train on
    assert len(training) == 1 and len(told) == 2 + 4  # two training steps on one batch, four validation passes
    for ratios in told[:2]:
        torch.testing.assert_close(ratios, training[0])
    for ratios, expected in zip(told[2:], validation):
        torch.testing.assert_close(ratios, expected)
    assert not torch.allclose(training[0], torch.ones_like(training[0]))
