"""Tests of MRSuperResLib.degradation: centred DFT, Fourier resampling geometry, noise statistics, masks, SNR."""

import math

import numpy as np
import pytest
import torch

from MRSuperResLib import degradation
from MRSuperResLib.simulate import fourier_sample_positions

RAYLEIGH_MEAN = math.sqrt(math.pi / 2)  # 1.2533 sigma
RAYLEIGH_SD = math.sqrt(2 - math.pi / 2)  # 0.6551 sigma


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_fft2c_round_trip_is_exact_and_orthonormal():
    images = torch.randn((2, 17, 24), generator=_generator(), dtype=torch.float64).to(torch.complex128)
    kspace = degradation.fft2c(images)
    assert torch.allclose(degradation.ifft2c(kspace), images, atol=1e-12)
    # Orthonormal: energy is preserved (Parseval).
    assert torch.allclose(kspace.abs().pow(2).sum((-2, -1)), images.abs().pow(2).sum((-2, -1)))


@pytest.mark.parametrize("shape", [(16, 16), (15, 21)])
def test_fft2c_puts_dc_at_the_centre_sample(shape):
    constant = torch.full(shape, 3.0, dtype=torch.complex128)
    kspace = degradation.fft2c(constant)
    centre = (shape[0] // 2, shape[1] // 2)
    assert kspace[centre].real.item() == pytest.approx(3.0 * math.sqrt(shape[0] * shape[1]))
    kspace[centre] = 0
    assert kspace.abs().max().item() < 1e-10


@pytest.mark.parametrize("shape_in, shape_out", [((32, 30), (64, 60)), ((45, 33), (90, 99)), ((64, 60), (32, 20)),
                                                 ((45, 33), (15, 11)), ((40, 40), (27, 53))])
def test_fourier_resample_keeps_constant_and_mean(shape_in, shape_out):
    constant = torch.full((2,) + shape_in, 7.5, dtype=torch.float64)
    resampled = degradation.fourier_resample(constant, shape_out)
    assert resampled.shape == (2,) + shape_out
    assert not resampled.is_complex()
    assert torch.allclose(resampled, torch.full_like(resampled, 7.5), atol=1e-9)
    # The DC sample is kept and rescaled, so the image mean is preserved for any image.
    image = torch.rand((3,) + shape_in, generator=_generator(1), dtype=torch.float64)
    assert torch.allclose(degradation.fourier_resample(image, shape_out).mean((-2, -1)), image.mean((-2, -1)), atol=1e-12)


@pytest.mark.parametrize("shape_in, shape_out", [((32, 30), (64, 60)), ((45, 33), (90, 99)), ((64, 60), (32, 20)),
                                                 ((45, 33), (15, 11)), ((40, 40), (27, 53)), ((90, 90), (45, 45)),
                                                 ((20, 21), (21, 20)), ((21, 20), (20, 21))])  # DC index unchanged
def test_fourier_resample_samples_band_limited_cosine_at_documented_positions(shape_in, shape_out):
    """A cosine with a frequency below every Nyquist limit is reproduced exactly at fourier_sample_positions."""
    f_row, f_col = 3, 2  # cycles per field of view
    rows_in, cols_in = (np.arange(n, dtype=float) for n in shape_in)

    def image(rows, cols):
        return (np.cos(2 * np.pi * f_row * rows / shape_in[0] + 0.4)[:, None]
                * np.cos(2 * np.pi * f_col * cols / shape_in[1] - 1.1)[None, :])

    resampled = degradation.fourier_resample(torch.from_numpy(image(rows_in, cols_in)), shape_out).numpy()
    expected = image(fourier_sample_positions(shape_in[0], shape_out[0]), fourier_sample_positions(shape_in[1], shape_out[1]))
    np.testing.assert_allclose(resampled, expected, atol=1e-10)


def test_acquire_zero_fills_a_rectangular_matrix_with_the_same_dc_index():
    """A 20 x 21 acquisition zero-filled to 21 x 21: both row spectra have their DC at index 10."""
    image = degradation.acquire(torch.full((2, 42, 42), 5.0), (20, 21), 0.0, recon_shape=(21, 21))
    assert image.shape == (2, 21, 21)
    assert torch.allclose(image, torch.full_like(image, 5.0), atol=1e-4)


def test_fourier_resample_of_complex_input_stays_complex():
    images = torch.randn((2, 8, 8), generator=_generator(), dtype=torch.complex128)
    resampled = degradation.fourier_resample(images, (16, 16))
    assert resampled.is_complex()
    assert torch.allclose(degradation.fourier_resample(resampled, (8, 8)), images, atol=1e-12)


def test_acquire_on_zero_image_gives_rayleigh_noise():
    sigma = 2.0
    magnitude = degradation.acquire(torch.zeros((16, 64, 64)), (64, 64), sigma, generator=_generator(2))
    assert magnitude.shape == (16, 64, 64)
    assert magnitude.mean().item() / sigma == pytest.approx(RAYLEIGH_MEAN, rel=0.02)
    assert magnitude.std().item() / sigma == pytest.approx(RAYLEIGH_SD, rel=0.03)


def test_acquire_on_bright_flat_object_gives_rician_mean_close_to_signal():
    signal, sigma = 100.0, 5.0  # SNR 20: Rician mean = signal * (1 + (sigma / signal)^2 / 2) ~ signal + 0.125
    magnitude = degradation.acquire(torch.full((8, 64, 64), signal), (32, 32), sigma, generator=_generator(3))
    assert magnitude.shape == (8, 32, 32)
    assert magnitude.mean().item() == pytest.approx(signal + sigma**2 / (2 * signal), rel=0.002)
    assert magnitude.std().item() == pytest.approx(sigma, rel=0.04)


def test_acquire_per_image_sigma_broadcasts_over_batch():
    sigmas = torch.tensor([1.0, 4.0]).view(2, 1, 1)
    magnitude = degradation.acquire(torch.zeros((2, 64, 64)), (64, 64), sigmas, generator=_generator(4))
    means = magnitude.mean((-2, -1)) / sigmas.view(2)
    assert means.tolist() == pytest.approx([RAYLEIGH_MEAN] * 2, rel=0.04)


def test_zero_filled_reconstruction_keeps_per_voxel_noise_sd():
    """Zero-filling 32x32 acquired samples to 64x64 correlates the noise but keeps its per-voxel SD."""
    sigma = 3.0
    generator = _generator(5)
    acquired = degradation.acquire(torch.zeros((32, 32, 32)), (32, 32), sigma, generator=generator)
    zero_filled = degradation.acquire(torch.zeros((32, 32, 32)), (32, 32), sigma, recon_shape=(64, 64), generator=generator)
    assert zero_filled.shape == (32, 64, 64)
    for magnitude in (acquired, zero_filled):
        assert magnitude.mean().item() / sigma == pytest.approx(RAYLEIGH_MEAN, rel=0.03)
        assert magnitude.std().item() / sigma == pytest.approx(RAYLEIGH_SD, rel=0.04)


@pytest.mark.parametrize("shape, fraction, axis, kept", [((64, 48), 0.75, 0, 48), ((64, 48), 0.75, 1, 36),
                                                         ((63, 40), 0.5, 0, 32), ((20, 20), 1.0, 0, 20)])
def test_partial_fourier_mask_keeps_the_right_lines(shape, fraction, axis, kept):
    mask = degradation.partial_fourier_mask(shape, fraction, axis)
    assert mask.shape == shape
    lines = mask[:, 0] if axis == 0 else mask[0, :]
    assert int(lines.sum()) == kept
    # The kept lines are contiguous, include the DC line (n // 2) and run to the end of k-space.
    n = shape[axis]
    assert lines[n - kept:].eq(1).all() and lines[: n - kept].eq(0).all()
    assert lines[n // 2] == 1
    # The mask is constant along the other axis.
    assert int(mask.sum()) == kept * shape[1 - axis]


@pytest.mark.parametrize("fraction", [0.49, 1.01, 0.0, -1.0])
def test_partial_fourier_mask_rejects_fractions_outside_half_to_one(fraction):
    with pytest.raises(ValueError, match="partial Fourier fraction"):
        degradation.partial_fourier_mask((32, 32), fraction)


def test_apodisation_window_strength_zero_is_all_ones_and_full_hann_peaks_at_dc():
    assert torch.equal(degradation.apodisation_window((31, 40), 0.0), torch.ones((31, 40)))
    window = degradation.apodisation_window((31, 40), 1.0)
    assert window[15, 20].item() == pytest.approx(1.0)
    assert window.max().item() == pytest.approx(1.0)
    assert window[0, 0].item() < 0.05  # the corners of k-space are almost removed


def test_sigma_for_snr_gives_requested_snr_per_image():
    """Binary disks of known level: the foreground mean (above 10 % of the 99th percentile) is the level itself."""
    rows, cols = np.mgrid[:64, :64]
    disk = ((rows - 31.5) ** 2 + (cols - 30.0) ** 2 <= 20**2).astype(np.float32)
    levels = torch.tensor([50.0, 200.0, 1000.0])
    images = torch.from_numpy(disk)[None] * levels.view(3, 1, 1)
    snrs = torch.tensor([5.0, 20.0, 40.0])
    sigmas = degradation.sigma_for_snr(images, snrs)
    assert sigmas.shape == (3, 1, 1)
    np.testing.assert_allclose(sigmas.view(3).numpy(), (levels / snrs).numpy(), rtol=1e-6)
    # A scalar SNR applies to every image.
    np.testing.assert_allclose(degradation.sigma_for_snr(images, 10.0).view(3).numpy(), (levels / 10).numpy(), rtol=1e-6)


def test_noisy_acquisition_has_requested_snr():
    rows, cols = np.mgrid[:64, :64]
    disk = torch.from_numpy(((rows - 32) ** 2 + (cols - 32) ** 2 <= 24**2).astype(np.float32) * 100)[None].repeat(8, 1, 1)
    sigma = degradation.sigma_for_snr(disk, 25.0)
    noisy = degradation.acquire(disk, (64, 64), sigma, generator=_generator(6))
    inside = torch.from_numpy((rows - 32) ** 2 + (cols - 32) ** 2 <= 18**2)  # away from the edge ringing
    background = torch.from_numpy((rows - 32) ** 2 + (cols - 32) ** 2 >= 29**2)
    measured_sigma = noisy[:, background].std().item() / RAYLEIGH_SD
    assert noisy[:, inside].mean().item() / measured_sigma == pytest.approx(25.0, rel=0.05)
