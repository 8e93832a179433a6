"""Tests of MRSuperResLib.fidelity: PSNR/NRMSE/SSIM with analytic values, head mask, input checks."""

import math

import numpy as np
import pytest

from MRQualityMetricsLib.volume import make_ijk_to_ras
from MRSuperResLib import fidelity, phantoms


def test_psnr_and_nrmse_analytic():
    reference = np.full((2, 10, 10), 50.0)
    reference[0, 0, 0] = 200.0  # data range = reference max = 200
    test = reference + 2.0  # MSE = 4 everywhere
    assert fidelity.psnr(test, reference) == pytest.approx(10 * math.log10(200**2 / 4))
    assert fidelity.psnr(test, reference, data_range=100) == pytest.approx(10 * math.log10(100**2 / 4))
    assert fidelity.psnr(reference, reference) == math.inf
    mask = np.zeros(reference.shape, bool)
    mask[1] = True
    assert fidelity.nrmse(test, reference, mask) == pytest.approx(2.0 / 50.0)
    # Error only outside the mask: perfect inside, finite outside.
    partial = reference.copy()
    partial[0] += 10.0
    assert fidelity.psnr(partial, reference, mask) == math.inf
    assert fidelity.nrmse(partial, reference, mask) == 0.0
    assert fidelity.psnr(partial, reference) == pytest.approx(10 * math.log10(200**2 / 50))


def test_ssim_identity_and_contrast_change():
    rng = np.random.default_rng(0)
    reference = phantoms.stack(phantoms.flat_shapes((48, 48)), 3) + rng.normal(0, 1, (3, 48, 48))
    assert fidelity.ssim(reference, reference) == pytest.approx(1.0)
    # A constant offset c leaves structure and contrast terms at 1; the luminance term drops, SSIM < 1.
    shifted = fidelity.ssim(reference + 20.0, reference)
    assert 0.5 < shifted < 0.999
    noisy = fidelity.ssim(reference + rng.normal(0, 10, reference.shape), reference)
    assert noisy < shifted
    # Along another axis the planes are 3 x 48: too small for the 7 x 7 window.
    with pytest.raises(ValueError, match="SSIM window"):
        fidelity.ssim(reference, reference, slice_axis=2)


def test_fidelity_metrics_mask_and_whole():
    truth = phantoms.stack(phantoms.flat_shapes((64, 64)), 3)
    mask = fidelity.head_mask(truth)
    test = truth.copy()
    test[~mask] += 5.0  # error only in the background
    metrics = fidelity.fidelity_metrics(test, truth, mask)
    assert set(metrics) == {"psnr_mask", "psnr_whole", "ssim_mask", "ssim_whole", "nrmse_mask", "nrmse_whole"}
    assert metrics["psnr_mask"] == math.inf and metrics["nrmse_mask"] == 0.0
    assert metrics["psnr_whole"] < 40 and metrics["ssim_whole"] < metrics["ssim_mask"]


def test_head_mask_fills_holes_and_drops_specks():
    truth = np.zeros((5, 60, 60))
    yy, xx = np.mgrid[:60, :60]
    ring = ((yy - 30) ** 2 + (xx - 30) ** 2 <= 20**2) & ((yy - 30) ** 2 + (xx - 30) ** 2 >= 8**2)
    truth[:, ring] = 100.0  # a "skull" with a dark inside (ventricle-like hole)
    truth[:, 2, 2] = 100.0  # a speck outside
    mask = fidelity.head_mask(truth)
    assert mask[2, 30, 30]  # the hole is filled
    assert not mask[2, 2, 2]  # the speck is dropped
    assert not mask[2, 55, 55]
    with pytest.raises(ValueError, match="no positive signal"):
        fidelity.head_mask(np.zeros((3, 10, 10)))


def test_slice_axis_follows_geometry():
    assert fidelity.slice_array_axis(make_ijk_to_ras((1, 1, 4))) == 0
    assert fidelity.slice_array_axis(make_ijk_to_ras((4, 1, 1))) == 2


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        fidelity.psnr(np.ones((2, 8, 8)), np.ones((2, 8, 9)))
    with pytest.raises(ValueError, match="mask is empty"):
        fidelity.psnr(np.ones((2, 8, 8)), np.ones((2, 8, 8)), np.zeros((2, 8, 8), bool))
    with pytest.raises(ValueError, match="data range"):
        fidelity.psnr(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="SSIM window"):
        fidelity.ssim(np.ones((2, 5, 5)), np.ones((2, 5, 5)))
    with pytest.raises(ValueError, match="mask is required"):
        fidelity.fidelity_metrics(np.ones((2, 8, 8)), np.ones((2, 8, 8)), None)
