"""The Rician floor taken out of the measured input before the Wiener step (MRSuperResLib.rician_floor)."""

import numpy as np
import pytest
import torch
from noise_helpers import textured_disc_in_air
from scipy import ndimage

from MRQualityMetricsLib.volume import make_ijk_to_ras
from MRSuperResLib import data_consistency, inference, rician_floor
from MRSuperResLib.data_consistency import MeasuredBandRestorer


def _magnitudes(amplitude, sigma, count=400_000, seed=0):
    generator = torch.Generator().manual_seed(seed)
    real = amplitude + sigma * torch.randn(count, generator=generator)
    return torch.hypot(real, sigma * torch.randn(count, generator=generator))


@pytest.mark.parametrize("amplitude", [0.0, 0.5, 1.0, 2.0, 5.0, 30.0])
def test_rician_mean_matches_sampled_magnitudes_and_inverts(amplitude):
    sigma = 3.0
    expected = float(_magnitudes(amplitude * sigma, sigma).mean())
    mean = rician_floor.rician_mean(torch.tensor([amplitude * sigma]), sigma)
    assert float(mean) == pytest.approx(expected, rel=3e-3)
    if amplitude > 0:  # at A = 0 the mean is the floor itself, which inverts to 0
        assert float(rician_floor.amplitude_from_mean(mean, sigma)) == pytest.approx(amplitude * sigma, rel=1e-3)
    assert float(rician_floor.amplitude_from_mean(torch.tensor([0.9 * 1.2533 * sigma]), sigma)) == 0.0


def test_air_loses_its_floor_tissue_keeps_its_level_and_masked_zeros_stay():
    sigma = 4.0
    air = _magnitudes(0.0, sigma).view(25, 100, 160)
    tissue = _magnitudes(80.0, sigma, seed=1).view(25, 100, 160)
    measured = torch.cat([air, tissue, torch.zeros_like(air)], dim=2)
    network = torch.cat([torch.zeros_like(air), torch.full_like(tissue, 80.0), torch.zeros_like(air)], dim=2)
    corrected = rician_floor.without_floor(measured, network, sigma)
    assert float(air.mean()) == pytest.approx(1.2533 * sigma, rel=0.01)  # the floor the network removes
    # What is left (0.19 sigma measured) is the local mean's noise read as signal: the price of the faint-signal guard.
    assert abs(float(corrected[..., :160].mean())) < 0.25 * sigma
    assert float(corrected[..., 160:320].mean()) == pytest.approx(80.0, abs=0.02 * sigma)
    assert torch.equal(corrected[..., 320:], measured[..., 320:])
    assert torch.equal(rician_floor.without_floor(measured, network, 0.0), measured)


def test_faint_signal_the_network_flattened_keeps_its_level():
    """The larger of the two estimates of A: where the network returned 0 for a faint real signal (2 sigma), the
    local mean still says signal, so only its small floor is taken."""
    sigma = 2.0
    faint = _magnitudes(2 * sigma, sigma, seed=2).view(16, 100, 250)
    corrected = rician_floor.without_floor(faint, torch.zeros_like(faint), sigma)
    assert float(corrected.mean()) == pytest.approx(2 * sigma, abs=0.1 * sigma)


def test_restorer_removes_the_floor_only_from_magnitude_images_and_streams_like_one_go(monkeypatch):
    sigma, truth = 5.0, textured_disc_in_air(0.0, size=48, batch=9, seed=3)
    measured = textured_disc_in_air(sigma, size=48, batch=9, seed=3)
    inside = truth != 0
    far_air = ~torch.from_numpy(ndimage.binary_dilation(inside.numpy(), iterations=4))  # beyond the local mean's reach

    def restored(magnitude, chunk_pixels=data_consistency.CHUNK_PIXELS, steps=(9,)):
        monkeypatch.setattr(data_consistency, "CHUNK_PIXELS", chunk_pixels)
        # A good network: the truth but for a little noise it left (the Wiener step's pilot is never exactly 0).
        output = (truth + 0.3 * sigma * torch.randn(truth.shape, generator=torch.Generator().manual_seed(4))).numpy()
        restorer = MeasuredBandRestorer(measured.numpy(), output, sigma, "cpu", magnitude=magnitude)
        assert [restorer.advance(available) for available in steps][-1] == 9
        return torch.from_numpy(output)

    with_floor, without = restored(False), restored(True)
    assert float(with_floor[far_air].mean()) > 0.8 * sigma  # the Wiener step brought the floor back (1.19 sigma)
    assert abs(float(without[far_air].mean())) < 0.25 * sigma  # measured 0.15 sigma
    assert float((without - truth)[inside].abs().mean()) <= float((with_floor - truth)[inside].abs().mean())
    streamed = restored(True, chunk_pixels=2 * 48 * 48, steps=(1, 2, 5, 6, 9))
    torch.testing.assert_close(streamed, without, atol=1e-3, rtol=0)
    assert restored(None).equal(without)  # decided by the values: none negative


def test_enhance_leaves_the_air_dark_and_keeps_it_at_strength_zero():
    sigma = 5.0
    noisy = textured_disc_in_air(sigma, size=64, batch=5, seed=21).numpy()
    air = textured_disc_in_air(0.0, size=64, batch=5, seed=21).numpy() == 0
    geometry = make_ijk_to_ras((1.0, 1.0, 3.0))
    denoised, _ = inference.enhance(noisy, geometry, scale=1, model_id="mrsr-unet16-2p5d-v7", device="cpu")
    assert float(noisy[air].mean()) == pytest.approx(1.25 * sigma, rel=0.05)
    assert float(denoised[air].mean()) < 0.2 * sigma
    kept, _ = inference.enhance(noisy, geometry, scale=1, denoise=0.0, model_id="mrsr-unet16-2p5d-v7", device="cpu")
    np.testing.assert_allclose(kept, noisy, atol=1e-3)


def test_tabulated_floor_and_inverse_agree_with_the_formula():
    sigma = 3.0
    amplitude = torch.linspace(0.0, 40 * sigma, 20001)
    exact_mean = rician_floor.rician_mean(amplitude.double(), sigma)
    floor = rician_floor.floor_of(amplitude, sigma)
    assert float((floor - (exact_mean - amplitude.double())).abs().max()) < 1e-3 * sigma  # beyond 20 sigma too
    back = rician_floor.amplitude_from_mean(exact_mean.float(), sigma)
    assert float((back - amplitude).abs().max()) < 1e-3 * sigma
