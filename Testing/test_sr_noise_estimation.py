"""Tests of MRSuperResLib.noise_estimation: local-SD and wavelet noise estimates on flat objects, ramps, zero-filled
noise and images without foreground; the noise read in the air around a textured object."""

import math

import pytest
import torch
from noise_helpers import textured_disc_in_air

from MRSuperResLib.degradation import fourier_resample
from MRSuperResLib.noise_estimation import (
    estimate_background_sigma,
    estimate_noise_sigma,
    estimate_noise_sigma_blind,
    estimate_noise_sigma_wavelet,
    local_std,
)


def _flat_square_with_noise(sigma, size=96, margin=6, level=100.0, batch=4, seed=0):
    """A flat square of `level` filling most of the image, plus white Gaussian noise of SD sigma."""
    generator = torch.Generator().manual_seed(seed)
    clean = torch.zeros((batch, size, size))
    clean[:, margin:-margin, margin:-margin] = level
    return clean + sigma * torch.randn(clean.shape, generator=generator)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_estimate_on_flat_object_with_white_noise_is_within_5_percent(sigma):
    estimates = estimate_noise_sigma(_flat_square_with_noise(sigma))
    assert estimates.shape == (4,)
    assert (estimates / sigma).tolist() == pytest.approx([1.0] * 4, rel=0.05)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_estimate_after_fourier_zero_filling_is_within_15_percent(sigma):
    """Zero-filling x2 keeps the per-voxel SD but correlates the noise; 5x5 windows then read it ~10 % low."""
    zero_filled = fourier_resample(_flat_square_with_noise(sigma, seed=1), (192, 192))
    estimates = estimate_noise_sigma(zero_filled)
    assert (estimates / sigma).tolist() == pytest.approx([1.0] * 4, rel=0.15)


def test_estimate_scales_with_intensity_units():
    noisy = _flat_square_with_noise(5.0, seed=2)
    assert estimate_noise_sigma(noisy * 10).tolist() == pytest.approx((estimate_noise_sigma(noisy) * 10).tolist(), rel=1e-4)


def test_images_without_foreground_give_zero():
    assert estimate_noise_sigma(torch.zeros((2, 32, 32))).tolist() == [0.0, 0.0]
    # A 3 x 3 speck covers only 2 x 2 Haar blocks: fewer than 16 foreground samples, no estimate.
    speck = torch.zeros((1, 32, 32))
    speck[0, 10:13, 10:13] = 100.0
    assert estimate_noise_sigma_wavelet(speck).tolist() == [0.0]


def test_mixed_batch_gives_zero_only_for_the_empty_image():
    batch = _flat_square_with_noise(4.0, batch=2, seed=3)
    batch[1] = 0
    estimates = estimate_noise_sigma(batch)
    assert estimates[0].item() == pytest.approx(4.0, rel=0.05)
    assert estimates[1].item() == 0.0


def test_local_std_of_constant_is_zero_and_of_checkerboard_is_known():
    sd, mean = local_std(torch.full((1, 16, 16), 3.0))
    assert torch.allclose(sd, torch.zeros_like(sd), atol=1e-3) and torch.allclose(mean, torch.full_like(mean, 3.0))
    # +-1 checkerboard: a full 5x5 window holds 13 of one sign and 12 of the other -> SD sqrt(1 - (1/25)^2).
    rows, cols = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    checkerboard = ((rows + cols) % 2 * 2 - 1).float()[None]
    sd, _ = local_std(checkerboard)
    assert torch.allclose(sd[0, 2:-2, 2:-2], torch.full((12, 12), (1 - 1 / 625) ** 0.5), atol=1e-5)


# ---------------------------------------------------------------- wavelet (finest diagonal Haar band) estimate


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_wavelet_estimate_on_flat_object_with_white_noise_is_within_6_percent(sigma):
    estimates = estimate_noise_sigma_wavelet(_flat_square_with_noise(sigma, size=128, seed=4))
    assert estimates.shape == (4,)
    assert (estimates / sigma).tolist() == pytest.approx([1.0] * 4, rel=0.06)


def test_wavelet_estimate_is_not_inflated_by_a_linear_ramp():
    """The diagonal Haar band (a - b - c + d) / 2 of a linear ramp is exactly zero; local SD windows are not."""
    rows, cols = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    ramp = (100 + 3 * rows + 2 * cols)[None].repeat(4, 1, 1)
    noisy = ramp + 5.0 * torch.randn(ramp.shape, generator=torch.Generator().manual_seed(5))
    assert (estimate_noise_sigma_wavelet(noisy) / 5.0).tolist() == pytest.approx([1.0] * 4, rel=0.06)
    assert (estimate_noise_sigma(noisy) / 5.0).min().item() > 1.3  # the local-SD estimate reads the ramp as noise
    # The network's condition takes the smaller of the two: the ramp does not inflate it either.
    assert torch.equal(estimate_noise_sigma_blind(noisy, noisy), estimate_noise_sigma_wavelet(noisy))


def test_wavelet_estimate_of_zero_filled_noise_matches_the_band_limited_theory():
    """After x2 zero-filling the noise fills only |w| < pi/2 per axis; the diagonal Haar filter 4 sin^2(wr/2)
    sin^2(wc/2) averaged over that band gives SD = 2 (1/2 - 1/pi) sigma = 0.363 sigma (it reads low, by design)."""
    sigma = 5.0
    zero_filled = fourier_resample(_flat_square_with_noise(sigma, seed=6), (192, 192))
    expected = 2 * (0.5 - 1 / math.pi)
    assert (estimate_noise_sigma_wavelet(zero_filled) / sigma).tolist() == pytest.approx([expected] * 4, rel=0.06)


def test_wavelet_estimate_handles_odd_sizes_and_empty_images():
    noisy = _flat_square_with_noise(5.0, batch=2, seed=7)
    assert torch.equal(estimate_noise_sigma_wavelet(noisy[:, :95, :93]), estimate_noise_sigma_wavelet(noisy[:, :94, :92]))
    assert estimate_noise_sigma_wavelet(torch.zeros((2, 31, 33))).tolist() == [0.0, 0.0]


# ---------------------------------------------------------------- the noise read in the air


@pytest.mark.parametrize("sigma", [2.0, 5.0, 8.0])
def test_air_reads_the_noise_within_5_percent_where_the_foreground_estimates_read_the_texture(sigma):
    images = textured_disc_in_air(sigma)
    assert estimate_background_sigma(images) == pytest.approx(sigma, rel=0.05)
    assert estimate_noise_sigma_blind(images, images).min().item() > 2 * sigma


def test_air_reading_scales_with_intensity_units_and_ignores_air_masked_to_zero():
    images = textured_disc_in_air(5.0, seed=9)
    assert estimate_background_sigma(10 * images) == pytest.approx(10 * estimate_background_sigma(images), rel=1e-5)
    half_masked = images.clone()
    half_masked[:, :, :20] = 0  # a scanner or a tool zeroed part of the air: the rest still reads the noise
    assert estimate_background_sigma(half_masked) == pytest.approx(5.0, rel=0.05)


def test_air_is_not_read_where_it_cannot_be():
    images = textured_disc_in_air(5.0, seed=10)
    assert estimate_background_sigma(images - 50) is None  # negative values: not a magnitude image
    masked = torch.where(images > 30, images, torch.zeros_like(images))
    assert estimate_background_sigma(masked) is None  # the air was masked to zero
    filled = 100 + 5.0 * torch.randn((4, 64, 64), generator=torch.Generator().manual_seed(11))
    assert estimate_background_sigma(filled) is None  # the object fills the field of view
    # Noise so strong that the foreground threshold (10 % of the 99th percentile, here 1.06 sigma) cuts into the
    # air's own spread: 4 % of the voxels still count as air, but their median would read 20 % low.
    assert estimate_background_sigma(textured_disc_in_air(14.0, seed=12)) is None
    assert estimate_background_sigma(textured_disc_in_air(30.0, seed=12)) is None  # no window of air left at all
    assert estimate_background_sigma(torch.zeros((0, 8, 8))) is None
