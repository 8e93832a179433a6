"""The Wiener data-consistency step after the network (MRSuperResLib.data_consistency), on known signals."""

import numpy as np
import pytest
import torch

from MRQualityMetricsLib.volume import make_ijk_to_ras
from MRSuperResLib import block_matching, data_consistency, inference, method_noise, phantoms
from MRSuperResLib.block_matching import block_matching_wiener
from MRSuperResLib.data_consistency import MeasuredBandRestorer, dct_matrix, wiener_filter
from MRSuperResLib.degradation import fft2c, fourier_resample


def _square(size=48, level=100.0):
    return torch.from_numpy(level * np.outer(phantoms.box_profile(size, 12, size - 12),
                                             phantoms.box_profile(size, 12, size - 12))).float()


def _noisy(truth, sigma, seed=3):
    return truth + sigma * torch.randn(truth.shape, generator=torch.Generator().manual_seed(seed))


def _mse(a, b):
    return float((a - b).square().mean())


def restore_measured_band(measured, restored, sigma):
    """The whole step in one go, as enhance() runs it once the network is done: (S, r, c), (S, R, C) -> (S, R, C)."""
    output = restored.numpy().copy()
    assert MeasuredBandRestorer(measured.numpy(), output, sigma, "cpu").advance(measured.shape[0]) == measured.shape[0]
    return torch.from_numpy(output)


def test_dct_matrix_is_orthonormal():
    for size in (4, 8, 12):
        matrix = dct_matrix(size)
        torch.testing.assert_close(matrix @ matrix.T, torch.eye(size), atol=1e-6, rtol=0)


def test_wiener_filter_with_a_perfect_pilot_removes_most_noise_and_keeps_edges():
    truth = _square()[None].repeat(3, 1, 1)
    noisy = _noisy(truth, 10.0)
    filtered = wiener_filter(noisy, truth, 10.0)
    assert _mse(filtered, truth) < 0.15 * _mse(noisy, truth)
    # The edge keeps its height: the square's mean stays and the background stays dark.
    assert float(filtered[:, 16:32, 16:32].mean()) == pytest.approx(100.0, abs=1.5)
    assert abs(float(filtered[:, :8, :8].mean())) < 2.0


@pytest.mark.parametrize("pilot_factor, expected", [(0.0, "zero"), (1e6, "measured")])
def test_wiener_gain_follows_the_pilot(pilot_factor, expected):
    """A pilot without signal keeps nothing of the measurement; one far above the noise keeps all of it."""
    measured = _noisy(_square()[None], 10.0)
    # A scaled copy of the measurement: every block coefficient of the pilot is that many times the measured one,
    # so none falls near the noise by chance (an unseeded random pilot sometimes had one and failed).
    pilot = pilot_factor * measured
    filtered = wiener_filter(measured, pilot, 10.0)
    target = torch.zeros_like(measured) if expected == "zero" else measured
    torch.testing.assert_close(filtered, target, atol=1e-2 * float(measured.abs().max()), rtol=0)


def test_wiener_filter_without_noise_returns_the_measurement():
    measured = _noisy(_square()[None], 10.0)
    torch.testing.assert_close(wiener_filter(measured, torch.zeros_like(measured), 0.0), measured)


def test_constant_images_stay_constant():
    measured = torch.full((2, 30, 26), 7.0)
    # The block mean is kept with gain 56^2 / (56^2 + 1): a Wiener filter always shrinks a little.
    torch.testing.assert_close(wiener_filter(measured, measured, 1.0), measured, atol=0, rtol=5e-4)


def test_depth_one_filters_each_slice_on_its_own():
    measured = _noisy(_square()[None].repeat(3, 1, 1), 10.0)
    pilot = _noisy(_square()[None].repeat(3, 1, 1), 3.0, seed=8)
    together = wiener_filter(measured, pilot, 10.0, depth=1)
    for index in range(3):
        alone = wiener_filter(measured[index : index + 1], pilot[index : index + 1], 10.0, depth=1)
        torch.testing.assert_close(together[index : index + 1], alone, atol=1e-4, rtol=0)


def test_blocks_across_slices_remove_more_noise_where_anatomy_continues():
    """Same anatomy in 8 slices, independent noise: the shipped blocks across slices average it away better than
    2D blocks."""
    assert data_consistency.DEPTH > 1
    truth = _square()[None].repeat(8, 1, 1)
    noisy = _noisy(truth, 10.0)
    error_2d = _mse(wiener_filter(noisy, truth, 10.0, depth=1), truth)
    error_3d = _mse(wiener_filter(noisy, truth, 10.0, depth=data_consistency.DEPTH), truth)
    assert error_3d < 0.6 * error_2d


def test_a_stack_thinner_than_the_block_uses_its_own_thickness():
    measured = _noisy(_square()[None].repeat(2, 1, 1), 10.0)
    pilot = _square()[None].repeat(2, 1, 1)
    torch.testing.assert_close(wiener_filter(measured, pilot, 10.0, depth=4), wiener_filter(measured, pilot, 10.0, depth=2))


@pytest.mark.parametrize("grouped", [False, True])
def test_streaming_in_small_steps_and_chunks_gives_the_one_go_result(monkeypatch, grouped):
    """The restorer follows the network batch by batch; chunk and step boundaries must not show in the result (also
    with the optional grouped final pass when super-resolving, which reaches further across slices)."""
    monkeypatch.setattr(data_consistency, "BLOCK_MATCHING_WHEN_SUPER_RESOLVING", grouped)
    truth = _square(32)[None].repeat(11, 1, 1) * torch.linspace(0.5, 1.5, 11).view(-1, 1, 1)
    measured = fourier_resample(_noisy(truth, 6.0), (16, 16))
    restored = truth + 2.0 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(6))
    whole = restore_measured_band(measured, restored, 6.0)
    monkeypatch.setattr(data_consistency, "CHUNK_PIXELS", 2 * 16 * 16)  # 2 slices per chunk
    monkeypatch.setattr(data_consistency, "GROUP_PIXELS", {"cpu": 4 * 16 * 16})  # 1 block window per group
    monkeypatch.setattr(block_matching, "MATCH_PIXELS", {"cpu": 16 * 16})  # 1 block window per match
    monkeypatch.setattr(block_matching, "ELEMENTS_PER_GROUP", {"cpu": 1000})  # 1 group per transform
    output = restored.numpy().copy()
    restorer = MeasuredBandRestorer(measured.numpy(), output, 6.0, torch.device("cpu"))
    assert restorer.block_matching == grouped
    finished = [restorer.advance(available) for available in (1, 3, 4, 8, 9, 11)]
    assert finished == sorted(finished) and finished[-1] == 11 and finished[0] == 0
    torch.testing.assert_close(torch.from_numpy(output), whole, atol=1e-3, rtol=0)


def test_restore_measured_band_changes_only_the_measured_band():
    truth = _square(64)[None]
    measured = fourier_resample(_noisy(truth, 8.0), (32, 32))
    restored = truth + 3.0 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(4))
    corrected = restore_measured_band(measured, restored, 8.0)
    band = torch.zeros(64, 64, dtype=torch.bool)
    band[16:49, 16:49] = True  # with the mirror of the input's Nyquist row and column (real images)
    spectrum_in, spectrum_out = fft2c(restored.to(torch.complex64)), fft2c(corrected.to(torch.complex64))
    torch.testing.assert_close(spectrum_out[:, ~band], spectrum_in[:, ~band], atol=1e-3, rtol=0)
    assert not torch.allclose(spectrum_out[:, band], spectrum_in[:, band], atol=1e-1)
    # With no noise the measured band is the measurement itself (but for its Nyquist row and column, which a
    # real-valued zero-fill splits between the two mirrored frequencies).
    exact = restore_measured_band(measured, restored, 0.0)
    back, wanted = (fft2c(image.to(torch.complex64))[:, 1:, 1:] for image in (fourier_resample(exact, (32, 32)), measured))
    torch.testing.assert_close(back, wanted, atol=1e-3, rtol=0)


def test_enhance_at_strength_zero_keeps_the_measured_input_and_the_network_alone_differs():
    truth = 100 * np.outer(phantoms.box_profile(40, 8, 33), phantoms.box_profile(40, 8, 33))
    noisy = np.abs(truth + np.random.default_rng(5).normal(0, 5, (3, 40, 40))).astype(np.float32)
    geometry = make_ijk_to_ras((1, 1, 3))
    kept, _ = inference.enhance(noisy, geometry, scale=1, denoise=0.0, model_id="mrsr-unet16-2p5d-v7", device="cpu")
    np.testing.assert_allclose(kept, noisy, atol=1e-3)
    network, _ = inference.enhance(noisy, geometry, scale=1, denoise=0.0, model_id="mrsr-unet16-2p5d-v7",
                                   device="cpu", data_consistency=False)
    assert np.abs(network - noisy).max() > 0.5


@pytest.mark.parametrize("grouped", [False, True])
def test_super_resolution_final_pass_assumes_less_noise(monkeypatch, grouped):
    """Upsampling x2: the first pass filters with sigma (a clean pilot), the final pass as if the noise were
    sigma / 2**FINAL_PASS_NOISE_EXPONENT (sigma / sqrt(2) as shipped), because the pilot under-represents small
    structures in the measured band; it keeps more of the measurement than two passes at sigma. With the optional
    grouped final pass, that pass filters groups of similar blocks instead of fixed blocks."""
    assert 0 < data_consistency.FINAL_PASS_NOISE_EXPONENT < 1 and data_consistency.PASSES == 2
    monkeypatch.setattr(data_consistency, "BLOCK_MATCHING_WHEN_SUPER_RESOLVING", grouped)
    truth = _square(32)[None].repeat(5, 1, 1)
    measured = fourier_resample(_noisy(truth, 8.0), (16, 16))
    restored = truth + 2.0 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(7))
    shipped = restore_measured_band(measured, restored, 8.0)
    pilot = fourier_resample(restored, (16, 16))
    first = wiener_filter(measured, pilot, 8.0, stride=data_consistency.PILOT_PASS_STRIDE)
    final_sigma = 8.0 / 2**data_consistency.FINAL_PASS_NOISE_EXPONENT
    final = (block_matching_wiener(measured, first, final_sigma, data_consistency.DEPTH) if grouped
             else wiener_filter(measured, first, final_sigma))
    final = method_noise.keep_significant_residual(measured, final, 8.0, 2.0)
    torch.testing.assert_close(shipped, restored + fourier_resample(final - pilot, (32, 32)), atol=1e-4, rtol=0)
    monkeypatch.setattr(data_consistency, "FINAL_PASS_NOISE_EXPONENT", 0.0)
    full_noise = restore_measured_band(measured, restored, 8.0)
    assert _mse(fourier_resample(shipped, (16, 16)), measured) < _mse(fourier_resample(full_noise, (16, 16)), measured)


def test_denoising_final_pass_filters_groups_of_similar_blocks_at_the_full_noise():
    measured = _noisy(_square(32)[None].repeat(5, 1, 1), 8.0)
    restored = _noisy(_square(32)[None].repeat(5, 1, 1), 2.0, seed=7)
    shipped = restore_measured_band(measured, restored, 8.0)
    pilot = wiener_filter(measured, restored, 8.0, stride=data_consistency.PILOT_PASS_STRIDE)
    final = block_matching_wiener(measured, pilot, 8.0, data_consistency.DEPTH)
    torch.testing.assert_close(shipped, method_noise.keep_significant_residual(measured, final, 8.0, scale=1.0),
                               atol=1e-4, rtol=0)


def test_denoising_with_fixed_blocks_uses_the_pilot_pass_stride(monkeypatch):
    """Without block matching (and for slices smaller than a block) the fixed blocks denoise, as when
    super-resolving."""
    monkeypatch.setattr(data_consistency, "BLOCK_MATCHING_WHEN_DENOISING", False)
    measured = _noisy(_square(32)[None].repeat(5, 1, 1), 8.0)
    restored = _noisy(_square(32)[None].repeat(5, 1, 1), 2.0, seed=7)
    shipped = restore_measured_band(measured, restored, 8.0)
    pilot = wiener_filter(measured, restored, 8.0, stride=data_consistency.PILOT_PASS_STRIDE)
    final = wiener_filter(measured, pilot, 8.0)
    torch.testing.assert_close(shipped, method_noise.keep_significant_residual(measured, final, 8.0, scale=1.0),
                               atol=1e-4, rtol=0)


def test_slices_smaller_than_a_block_are_denoised_with_fixed_blocks():
    measured = _noisy(_square(6)[None].repeat(5, 1, 1), 8.0)
    restored = _noisy(_square(6)[None].repeat(5, 1, 1), 2.0, seed=7)
    pilot = wiener_filter(measured, restored, 8.0, stride=data_consistency.PILOT_PASS_STRIDE)
    final = method_noise.keep_significant_residual(measured, wiener_filter(measured, pilot, 8.0), 8.0, scale=1.0)
    torch.testing.assert_close(restore_measured_band(measured, restored, 8.0), final, atol=1e-4, rtol=0)


def test_denoising_streamed_in_small_steps_and_chunks_gives_the_one_go_result(monkeypatch):
    """Block matching reaches further across slices (a group's blocks lie a slice off, and are searched from
    there): the restorer's halo must cover it, so that chunk boundaries do not show."""
    truth = _square(24)[None].repeat(13, 1, 1) * torch.linspace(0.5, 1.5, 13).view(-1, 1, 1)
    measured = _noisy(truth, 6.0)
    restored = _noisy(truth, 2.0, seed=6)
    whole = restore_measured_band(measured, restored, 6.0)
    monkeypatch.setattr(data_consistency, "CHUNK_PIXELS", 2 * 24 * 24)  # 2 slices per chunk
    monkeypatch.setattr(block_matching, "MATCH_PIXELS", {"cpu": 24 * 24})  # 1 block window per match
    monkeypatch.setattr(block_matching, "ELEMENTS_PER_GROUP", {"cpu": 1000})  # 1 group per transform
    output = restored.numpy().copy()
    restorer = MeasuredBandRestorer(measured.numpy(), output, 6.0, torch.device("cpu"))
    finished = [restorer.advance(available) for available in (1, 3, 4, 8, 9, 13)]
    assert finished == sorted(finished) and finished[-1] == 13 and finished[0] == 0
    torch.testing.assert_close(torch.from_numpy(output), whole, atol=1e-3, rtol=0)
