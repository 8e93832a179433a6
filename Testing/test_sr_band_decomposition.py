"""scripts/band_decomposition.py: the split of an output into the measured band and what lies beyond it."""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from band_decomposition import split_band  # noqa: E402

from MRSuperResLib.degradation import fourier_resample  # noqa: E402


def test_a_zero_filled_input_is_all_band_and_any_output_is_band_plus_beyond():
    rng = np.random.default_rng(3)
    # Odd measured sizes: with even ones the real part of a zero-fill splits the Nyquist line over both edges of
    # k-space, and truncation keeps one of them (a tiny share of an MR image's energy, all of white noise's).
    measured = torch.from_numpy(rng.normal(size=(4, 13, 11)).astype(np.float32))
    zero_filled = fourier_resample(measured, (26, 22)).numpy()
    # Slices along the last numpy axis (i): the split must work on the in-plane axes of that layout too.
    output = np.moveaxis(zero_filled, 0, 2)
    band, beyond = split_band(output, 2, (13, 11))
    np.testing.assert_allclose(band, output, atol=1e-5)
    assert np.abs(beyond).max() < 1e-5

    sharp = rng.normal(size=(26, 22, 4)).astype(np.float32)
    band, beyond = split_band(sharp, 2, (13, 11))
    np.testing.assert_allclose(band + beyond, sharp, atol=1e-6)
    assert np.abs(beyond).mean() > 0.5 * np.abs(sharp).mean()  # white noise is mostly beyond a quarter of k-space
    np.testing.assert_allclose(split_band(band, 2, (13, 11))[0], band, atol=1e-5)  # a projection


def test_band_from_pilot_is_the_shipped_step_at_the_output_scale():
    """Guided by the network's own output, band_from_pilot gives the band enhance() gives (the x2 final pass and
    method-noise check, not the x1 ones); with no noise assumed the measured band comes back as measured."""
    from band_sources import band_from_pilot

    from MRQualityMetricsLib.volume import make_ijk_to_ras
    from MRSuperResLib import inference

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:15, :13]
    clean = 100.0 * ((yy - 7) ** 2 + (xx - 6) ** 2 < 20)
    volume = np.stack([clean + rng.normal(0, 8, clean.shape) for _ in range(6)]).astype(np.float32)
    geometry = make_ijk_to_ras((1.0, 1.0, 2.0))
    kwargs = dict(scale=2, device="cpu", model_id="mrsr-unet16-2p5d-v7")
    network = inference.enhance(volume, geometry, data_consistency=False, **kwargs)[0]
    shipped = inference.enhance(volume, geometry, **kwargs)[0]
    sigma = inference._volume_noise_sigma(volume, (30, 26), torch.device("cpu"))
    pilot = fourier_resample(torch.from_numpy(network), (15, 13)).numpy()
    restored = band_from_pilot(volume, pilot, (30, 26), sigma)
    np.testing.assert_allclose(split_band(restored, 0, (15, 13))[0], split_band(shipped, 0, (15, 13))[0], atol=1e-2)
    unchanged = band_from_pilot(volume, pilot, (30, 26), 0.0)
    np.testing.assert_allclose(split_band(unchanged, 0, (15, 13))[0], fourier_resample(torch.from_numpy(volume), (30, 26)).numpy(), atol=1e-3)


def test_the_3d_band_source_denoises_the_measured_slices_along_the_slice_axis(tmp_path, monkeypatch):
    """volume_band_source reads the slices along the case's slice axis and tells the 3D network that grid's
    spacing ratio and the volume's noise; with the residual branch silenced its network output is the input."""
    from band_sources import volume_band_source

    from MRQualityMetricsLib.volume import Volume, make_ijk_to_ras
    from MRSuperResLib import volume_denoiser
    from MRSuperResLib.volume_denoiser import VolumeDenoiserNet

    model = VolumeDenoiserNet("unet16-3d")
    torch.nn.init.zeros_(model.unet.final_conv.weight)
    torch.nn.init.zeros_(model.unet.final_conv.bias)
    torch.save(model.state_dict(), tmp_path / "identity.pt")
    told = []
    original = volume_denoiser.denoise_stack
    monkeypatch.setattr(volume_denoiser, "denoise_stack",
                        lambda model, stack, sigma, ratio, device: told.append((stack.shape, ratio)) or original(
                            model, stack, sigma, ratio, device))
    rng = np.random.default_rng(2)
    array = (100 + 10 * rng.normal(size=(20, 18, 6))).astype(np.float32)  # [k, j, i]: slices along i
    degraded = Volume(array=array, ijk_to_ras=make_ijk_to_ras((3.0, 1.5, 1.5)))  # 3 mm slices, 1.5 mm pixels
    pipeline, network = volume_band_source(tmp_path / "identity.pt", "unet16-3d")(degraded, "i", 2)
    assert told == [((6, 20, 18), 2.0)]
    np.testing.assert_allclose(network, np.moveaxis(array, 2, 0), rtol=1e-5, atol=1e-3)
    assert pipeline.shape == network.shape and np.isfinite(pipeline).all()
