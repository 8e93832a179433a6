"""Tests of the 3D denoiser of the measured band (volume_denoiser.py): its training pairs, network and
sliding-window inference, and the volumetric training option (measured, not shipped:
docs/evaluation/model-comparison.md, session 16)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from MRSuperResLib import phantoms, training_pairs
from MRSuperResLib.noise_estimation import estimate_noise_sigma_blind
from MRSuperResLib.train import load_config, train
from MRSuperResLib.training_data import TEMPLATE_FILES
from MRSuperResLib.training_pairs import make_volume_pairs
from MRSuperResLib.volume_denoiser import SPACING_RATIO_RANGE, VolumeDenoiserNet, denoise_stack

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "data" / "templates"
NO_BLUR = dict.fromkeys(training_pairs.BLIND_BLUR, 0.0)


def _clean_stacks(batch=2, depth=16, size=48):
    """Piecewise-flat phantoms shifted a little per slice (a 3D scene), a different contrast per sample."""
    image = phantoms.flat_shapes((size, size), level=1.0)
    stack = np.stack([np.roll(image, shift // 4, axis=1) for shift in range(depth)]).astype(np.float32)
    return torch.stack([torch.from_numpy(stack) * (1.0 - 0.3 * b) for b in range(batch)])


def test_noise_free_volume_pairs_are_the_acquisition_on_the_scanners_grid(monkeypatch):
    """Without noise the input is already the target: the denoiser restores what was measured, on the grid the
    scanner reconstructed (half the clean pixels at x2), cropped in-plane to at most `crop`."""
    monkeypatch.setattr(training_pairs, "sigma_for_snr", lambda images, snr: torch.zeros(images.shape[0]))
    clean = _clean_stacks()
    pairs = make_volume_pairs(clean, torch.Generator().manual_seed(2), crop=16, scale=2, blind_blur=NO_BLUR)
    assert pairs["inputs"].shape == pairs["target"].shape == (2, 1, 16, 16, 16)
    assert pairs["scale"] == 2 and pairs["pixel_factor"] == 2.0
    torch.testing.assert_close(pairs["target"], pairs["inputs"], atol=1e-5, rtol=0)
    # The input is the clean stack's k-space truncation (not the clean pixels): a 2 x 2 block mean comes close.
    blocks = torch.nn.functional.avg_pool2d(clean, 2)[:, :, 4:20, 4:20]
    level = (blocks.flatten(1) * pairs["inputs"].flatten(1)).sum(1) / (blocks.flatten(1) ** 2).sum(1)
    error = (pairs["inputs"][:, 0] - level.view(-1, 1, 1, 1) * blocks).abs().mean()
    assert error < 0.1 * pairs["inputs"].abs().mean()


def test_noisy_volume_pairs_keep_the_noise_fraction_the_strength_leaves():
    """inputs - target = strength x (inputs - truth); the condition is strength x the blind noise estimate of the
    centre slice on the input grid (what inference measures on the input grid)."""
    pairs = make_volume_pairs(_clean_stacks(batch=6), torch.Generator().manual_seed(7), crop=64, scale=1)
    inputs, target, truth = (pairs[key][:, 0] for key in ("inputs", "target", "truth"))
    noise = (inputs - truth).flatten(1)
    noisy = noise.abs().amax(1) > 0  # some samples are drawn noise-free
    assert noisy.sum() >= 3
    strength = ((inputs - target).flatten(1) * noise).sum(1)[noisy] / (noise * noise).sum(1)[noisy]
    assert ((strength >= -1e-4) & (strength <= 1 + 1e-4)).all()
    centre = inputs[:, inputs.shape[1] // 2]
    expected = estimate_noise_sigma_blind(centre, centre)[noisy] * strength
    torch.testing.assert_close(pairs["condition"][noisy], expected, atol=1e-4, rtol=1e-3)
    levels = torch.quantile(inputs.flatten(1), 0.99, dim=1)
    assert levels.tolist() == pytest.approx([1.0] * 6, abs=0.05)  # normalised as inference normalises


def test_the_network_keeps_the_shape_and_clamps_the_spacing_it_is_told():
    torch.manual_seed(0)
    model = VolumeDenoiserNet("unet16-3d").eval()
    volume = torch.rand(2, 1, 16, 32, 48)
    with torch.no_grad():
        out = model(volume, torch.tensor([0.05, 0.1]), SPACING_RATIO_RANGE[1])
        assert out.shape == volume.shape
        torch.testing.assert_close(model(volume, 0.1, SPACING_RATIO_RANGE[1] * 50), model(volume, 0.1, SPACING_RATIO_RANGE[1]))
        assert not torch.allclose(model(volume, 0.1, 1.0), model(volume, 0.1, 5.0))
    with pytest.raises(ValueError, match="unknown 3D architecture 'unet48'"):
        VolumeDenoiserNet("unet48")


@pytest.mark.parametrize("shape", [(5, 40, 50), (37, 150, 130)])  # smaller than one window, and several windows
def test_sliding_windows_cover_the_volume_and_restore_its_units(shape):
    """With the residual branch silenced the network is the identity: whatever the windows, margins and
    normalisation do must give the input back, voxel for voxel, in a new array."""
    model = VolumeDenoiserNet("unet16-3d").eval()
    torch.nn.init.zeros_(model.unet.final_conv.weight)
    torch.nn.init.zeros_(model.unet.final_conv.bias)
    stack = (np.random.default_rng(1).random(shape, dtype=np.float32) * 900 + 100).astype(np.float32)
    original = stack.copy()
    out = denoise_stack(model, stack, sigma=30.0, spacing_ratio=2.5, device=torch.device("cpu"))
    assert out.dtype == np.float32 and out.shape == shape and out is not stack
    np.testing.assert_allclose(out, stack, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(stack, original)


def test_a_volumetric_config_needs_a_depth_multiple_of_16_and_no_detail_weight():
    base = {"volumetric": True, "architecture": "unet16-3d", "context_slices": 16}
    assert load_config(overrides=base)["volumetric"]
    for bad in ({"context_slices": 5}, {"detail_weight": 1.0}):
        with pytest.raises(ValueError, match="volumetric model needs context_slices a multiple of 16"):
            load_config(overrides={**base, **bad})


@pytest.mark.skipif(not all((TEMPLATE_DIR / name).is_file() for name in TEMPLATE_FILES.values()),
                    reason="training templates not in data/templates (run `mrsuperres fetch-data`; CI does not)")
def test_smoke_volumetric_training_writes_weights_the_denoiser_loads(tmp_path):
    config = load_config(overrides={
        "model_id": "smoke-3d", "architecture": "unet16-3d", "volumetric": True, "context_slices": 16,
        "synth_size": 64, "crop": 32, "batch_size": 1, "max_steps": 2, "time_limit_minutes": 1, "log_every": 1,
    })
    summary = train(TEMPLATE_DIR, tmp_path, config, log=lambda message: None)
    assert summary.steps == 2 and np.isfinite(summary.final_loss) and np.isfinite(summary.validation_l1_model)
    model = VolumeDenoiserNet("unet16-3d")
    model.load_state_dict(torch.load(tmp_path / "smoke-3d.pt", map_location="cpu", weights_only=True), strict=True)
