"""Tests of MRSuperResLib.acquired_matrix: finding the matrix a scanner zero-filled from, and using it in enhance.

Inputs come from the project's own scanner simulation (degradation.acquire: complex k-space, noise, magnitude),
with and without the scanner's zero-filling onto a finer grid.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from MRQualityMetricsLib.volume import make_ijk_to_ras
from MRSuperResLib import inference, phantoms
from MRSuperResLib.acquired_matrix import detect_acquired_matrix, parse_acquired_matrix
from MRSuperResLib.degradation import acquire, sigma_for_snr
from MRSuperResLib.fidelity import head_mask, psnr

SAMPLE = Path(__file__).resolve().parents[1] / "MRSuperRes" / "Resources" / "SampleData" / "GEBrainPD"
GRID = (256, 256)


@pytest.fixture(scope="module")
def ge_truth():
    """Six slices of the bundled real GE series (256 x 256, acquired on its own grid) as the object."""
    from MRQualityMetricsLib.volume_io import read_volume

    return np.asarray(read_volume(SAMPLE).array, np.float32)[7:13]


def _scan(truth, acquired, snr, zero_filled=True, partial_fourier=1.0, seed=1):
    tensor = torch.from_numpy(truth)
    sigma = sigma_for_snr(tensor, snr) if snr else 0.0
    generator = torch.Generator().manual_seed(seed)
    image = acquire(tensor, acquired, sigma, recon_shape=GRID if zero_filled else None,
                    partial_fourier=partial_fourier, generator=generator)
    return image.numpy().astype(np.float32)


@pytest.mark.parametrize("acquired", [(128, 128), (192, 256), (256, 160)])
@pytest.mark.parametrize("snr", [40.0, None])
def test_a_scanner_zero_filled_series_gives_its_acquired_matrix(ge_truth, acquired, snr):
    """Each axis to within 2 samples (the magnitude's own spill past the band edge can keep one bin either side)."""
    detected = detect_acquired_matrix(_scan(ge_truth, acquired, snr))
    assert all(a <= d <= a + 2 for a, d in zip(acquired, detected)), (acquired, detected)


@pytest.mark.parametrize("snr", [5.0, 20.0, None])
def test_series_acquired_on_their_own_grid_are_taken_as_measured(ge_truth, snr):
    assert detect_acquired_matrix(ge_truth) == GRID
    assert detect_acquired_matrix(_scan(ge_truth, GRID, snr, zero_filled=False)) == GRID


@pytest.mark.parametrize("snr", [20.0, None])
def test_partial_fourier_with_zero_lines_is_not_mistaken_for_scanner_zero_filling(ge_truth, snr):
    """Missing lines on one side halve the amplitude there (0.6 decades of power), a smaller drop than ZIP's."""
    assert detect_acquired_matrix(_scan(ge_truth, GRID, snr, zero_filled=False, partial_fourier=0.625)) == GRID


def test_pure_noise_and_small_grids_are_taken_as_measured(ge_truth):
    noise = phantoms.rayleigh_noise((4, 96, 96), 1.0, seed=3)
    assert detect_acquired_matrix(noise) == (96, 96)
    small = _scan(ge_truth, (128, 128), None)[:, 100:148, 100:148]  # 48 x 48: too few bins to judge
    assert detect_acquired_matrix(small) == (48, 48)
    with pytest.raises(ValueError, match="slices, rows, columns"):
        detect_acquired_matrix(noise[0])


@pytest.mark.parametrize("acquired", [(128, 128), (192, 256), (256, 160)])
@pytest.mark.parametrize("snr", [5.0, 10.0])
def test_a_matrix_the_header_states_is_used_where_the_spectrum_confirms_it(ge_truth, acquired, snr):
    """At SNR 5-10 the blind test misses these (the edge drops 0.40-0.63 decades); the stated edge is confirmed."""
    scan = _scan(ge_truth, acquired, snr)
    assert detect_acquired_matrix(scan) == GRID
    assert detect_acquired_matrix(scan, stated=acquired) == acquired


@pytest.mark.parametrize("stated", [(128, 128), (192, 256), (256, 160), (240, 240)])
@pytest.mark.parametrize("snr", [5.0, 20.0, None])
def test_a_stated_matrix_the_spectrum_contradicts_is_ignored(ge_truth, stated, snr):
    """Headers that do not describe the pixels (e.g. the series was resampled since): measured grid, with and
    without partial Fourier, keeps its size."""
    for partial_fourier in (1.0, 0.625):
        scan = _scan(ge_truth, GRID, snr, zero_filled=False, partial_fourier=partial_fourier)
        assert detect_acquired_matrix(scan, stated=stated) == GRID


@pytest.mark.parametrize("text, expected", [("auto", "auto"), ("off", None), (None, None), ("256x192", (256, 192)),
                                            ((64, 48), (64, 48))])
def test_parse_acquired_matrix(text, expected):
    assert parse_acquired_matrix(text) == expected


@pytest.mark.parametrize("bad", ["256", "axb", "0x64", (64,)])
def test_parse_acquired_matrix_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="acquired matrix"):
        parse_acquired_matrix(bad)


def test_enhance_restores_a_zero_filled_series_from_its_acquired_matrix(ge_truth):
    """x1 on a series zero-filled x2 by the scanner: detected, restored as x2 from 128 x 128, closer to the truth
    than when the grid is taken as measured; the output grid and geometry are the input's either way.
    SNR 20: there the fast model gains in the head too (+0.16 dB measured; +1.0 dB over the whole image). At SNR
    40-80 on this real series it loses 0.2-0.3 dB in the head (docs/evaluation/model-comparison.md)."""
    truth = ge_truth[:4]
    scan = _scan(truth, (128, 128), 20.0)
    geometry = make_ijk_to_ras((0.86, 0.86, 7.0))
    kwargs = dict(scale=1, model_id="mrsr-unet16-2p5d-v7", device="cpu")
    with pytest.warns(UserWarning, match="zero-filled by the scanner from 12[89]x12[89]"):
        auto, auto_geometry = inference.enhance(scan, geometry, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no detection message when told the grid is measured
        measured, measured_geometry = inference.enhance(scan, geometry, acquired_matrix="off", **kwargs)
    given, _ = inference.enhance(scan, geometry, acquired_matrix=(128, 128), **kwargs)
    assert auto.shape == measured.shape == given.shape == truth.shape
    np.testing.assert_array_equal(auto_geometry, measured_geometry)
    head = head_mask(truth)
    for restored in (given, auto):
        assert psnr(restored, truth) > psnr(measured, truth) + 0.5
        assert psnr(restored, truth, head, float(truth.max())) > psnr(measured, truth, head, float(truth.max())) + 0.05


def test_a_dicom_series_zero_filled_at_low_snr_is_restored_from_its_stated_matrix(ge_truth, tmp_path):
    """The DICOM path end to end: the header's Acquisition Matrix reaches the detection through the Volume, and
    helps only where it describes the pixels; the slices taken along another axis ignore it."""
    from sample_series import copy_zero_filled_slices

    from MRQualityMetricsLib.volume_io import read_volume

    truth = ge_truth[:4]  # the sample's slices 7-10
    kwargs = dict(scale=1, model_id="mrsr-unet16-2p5d-v7", device="cpu")
    volume = read_volume(copy_zero_filled_slices(tmp_path / "stated", range(7, 11), (128, 128), 10.0, [0, 128, 128, 0]))
    assert volume.metadata["acquisition_matrix"] == (128, 128)
    with pytest.warns(UserWarning, match=r"from 128x128 \(the DICOM header's acquisition matrix, confirmed"):
        stated = inference.enhance_volume(volume, **kwargs)
    unstated = read_volume(copy_zero_filled_slices(tmp_path / "unstated", range(7, 11), (128, 128), 10.0,
                                                   [0, 256, 256, 0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # blind detection misses at SNR 10, and the header says 256 x 256
        measured = inference.enhance_volume(unstated, **kwargs)
        inference.enhance_volume(volume, slice_axis="i", **kwargs)  # other slices: the stated matrix does not apply
    assert psnr(stated.array, truth) > psnr(measured.array, truth) + 0.3


def test_enhance_rejects_an_acquired_matrix_larger_than_the_grid():
    with pytest.raises(ValueError, match="larger than the slices' grid"):
        inference.enhance(np.ones((3, 32, 32), np.float32), make_ijk_to_ras((1, 1, 3)), scale=1,
                          acquired_matrix=(64, 32), model_id="mrsr-unet16-2p5d-v7", device="cpu")


def test_cropping_to_the_acquired_matrix_in_chunks_equals_one_go(monkeypatch, ge_truth):
    from MRSuperResLib.degradation import fourier_resample

    scan = _scan(ge_truth, (128, 96), 40.0)
    monkeypatch.setattr(inference, "CROP_SLICES", 4)  # 6 slices: a whole chunk and a partial one
    cropped = inference._from_acquired_matrix(scan, (128, 96))
    expected = fourier_resample(torch.from_numpy(scan), (128, 96)).numpy()
    assert cropped.shape == (6, 128, 96)
    np.testing.assert_allclose(cropped, expected, atol=1e-3)
    assert inference._from_acquired_matrix(scan, "off") is scan
