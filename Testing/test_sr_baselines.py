"""Tests of MRSuperResLib.baselines: sampling convention, geometry, exactness on known signals, denoising."""

import numpy as np
import pytest

from MRQualityMetricsLib.volume import make_ijk_to_ras
from MRSuperResLib import baselines, phantoms, simulate

INTERPOLATORS = ["zero_fill", "bspline", "bicubic"]


def _cosine_volume(n=64, slices=3):
    """Band-limited periodic image; its exact values at input index m * n_in / n_out are known."""
    x = np.arange(n)
    image = np.cos(2 * np.pi * 3 * x / n)[:, None] * np.cos(2 * np.pi * 5 * x / n)[None, :] + 2.0
    return np.repeat(image[None], slices, axis=0)


@pytest.mark.parametrize("name", INTERPOLATORS)
def test_samples_follow_the_fourier_convention(name):
    out, geometry = baselines.run_method(name, _cosine_volume(), make_ijk_to_ras((1, 1, 3)), scale=2)
    assert out.shape == (3, 128, 128) and out.dtype == np.float32
    position = np.arange(128) * 0.5  # output sample m at input index m * 64 / 128
    exact = np.cos(2 * np.pi * 3 * position / 64)[:, None] * np.cos(2 * np.pi * 5 * position / 64)[None, :] + 2.0
    tolerance = {"zero_fill": 1e-5, "bspline": 0.02, "bicubic": 0.01}[name]
    np.testing.assert_allclose(out[1, 8:-8, 8:-8], exact[8:-8, 8:-8], atol=tolerance)
    np.testing.assert_allclose(geometry, make_ijk_to_ras((0.5, 0.5, 3)))


@pytest.mark.parametrize("name", INTERPOLATORS + ["nlm"])
def test_geometry_matches_simulation_inverse_and_constant_is_kept(name):
    # Slice axis j (largest spacing), odd sizes, scale 3, oblique directions.
    angle = np.radians(20)
    directions = np.array([[np.cos(angle), 0, -np.sin(angle)], [0, 1, 0], [np.sin(angle), 0, np.cos(angle)]])
    geometry = make_ijk_to_ras((0.9, 4.0, 1.1), directions, origin=(3, -4, 5))
    array = np.full((23, 4, 31), 7.0)
    out, out_geometry = baselines.run_method(name, array, geometry, scale=3)
    assert out.shape == (69, 4, 93)
    # Odd sizes: the centred DFT aligns samples 15 (i) and 11 (k), so voxel 0 moves by -1/3 input voxel.
    first = [simulate.fourier_sample_positions(31, 93)[0], 0.0, simulate.fourier_sample_positions(23, 69)[0], 1.0]
    np.testing.assert_allclose(first, [-1 / 3, 0, -1 / 3, 1])
    np.testing.assert_allclose(out_geometry[:3, 3], (geometry @ first)[:3])
    np.testing.assert_allclose(out_geometry[:3, 0], geometry[:3, 0] / 3)
    np.testing.assert_allclose(out_geometry[:3, 1], geometry[:3, 1])
    np.testing.assert_allclose(out_geometry[:3, 2], geometry[:3, 2] / 3)
    np.testing.assert_allclose(out, 7.0, atol=1e-4)


@pytest.mark.parametrize("size", [96, 90])  # 90 -> 45 is odd: the coarse voxel 0 sits at truth index 1
def test_interpolators_invert_the_simulated_grid(size):
    # simulate (truth n -> n/2) then interpolate back (n/2 -> n): same shape and geometry as the truth.
    truth = phantoms.stack(phantoms.flat_shapes((size, size)), 3)
    geometry = make_ijk_to_ras((1, 1, 3), origin=(-5, 2, 9))
    low = simulate.simulate_array(truth, geometry, scale=2, snr=None)
    for name in INTERPOLATORS:
        out, out_geometry = baselines.run_method(name, low.array, low.ijk_to_ras, scale=2)
        assert out.shape == truth.shape
        np.testing.assert_allclose(out_geometry, geometry)
        error = np.abs(out - truth).mean() / truth.mean()
        assert error < 0.07, name  # 0.05-0.06 here; a one-truth-voxel misalignment gives 0.096 at size 90


def test_overshoot_at_a_step_is_largest_for_sinc():
    step = np.zeros((1, 8, 64))
    step[..., 16:48] = 100.0
    outputs = {name: baselines.run_method(name, step, make_ijk_to_ras((1, 1, 5)), 2)[0] for name in INTERPOLATORS}
    overshoot = {name: float(out.max()) - 100.0 for name, out in outputs.items()}
    # Keys at the half-sample next to the step: 0.5625 * 200 - 0.0625 * 100 = 106.25.
    assert overshoot["bicubic"] == pytest.approx(6.25, abs=1e-4)
    assert overshoot["bicubic"] < overshoot["bspline"] < overshoot["zero_fill"]  # Gibbs ringing of sinc is worst


def test_keys_weights_interpolate_samples_and_sum_to_one():
    weights = baselines.keys_weights(10, np.array([0.0, 2.0, 3.5, 9.0]))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights[1], np.eye(10)[2], atol=1e-12)
    np.testing.assert_allclose(weights[2, [2, 3, 4, 5]], [-0.0625, 0.5625, 0.5625, -0.0625])


def test_wavelet_sigma_estimate_and_nlm_reduce_noise():
    rng = np.random.default_rng(1)
    clean = phantoms.stack(phantoms.flat_shapes((64, 64)), 4)
    noisy = clean + rng.normal(0, 5.0, clean.shape)
    assert baselines.wavelet_mad_sigma(rng.normal(0, 5.0, (4, 64, 64)) + 40) == pytest.approx(5.0, rel=0.05)
    denoised, _ = baselines.nlm(noisy, make_ijk_to_ras((1, 1, 4)), scale=1)
    error_before = np.sqrt(np.mean((noisy - clean) ** 2))
    error_after = np.sqrt(np.mean((denoised - clean) ** 2))
    assert error_after < 0.6 * error_before


def test_scale_one_interpolators_are_identity():
    array = np.random.default_rng(0).random((3, 20, 22)).astype(np.float32)
    for name in INTERPOLATORS:
        out, geometry = baselines.run_method(name, array, np.eye(4), scale=1)
        np.testing.assert_allclose(out, array, atol=1e-5)
        np.testing.assert_allclose(geometry, np.eye(4))


def test_methods_and_bad_input():
    assert set(baselines.available_methods()) >= {"zero_fill", "bspline", "bicubic", "nlm"}
    assert ("bm4d" in baselines.available_methods()) == baselines.bm4d_available()
    with pytest.raises(ValueError, match="unknown classical method"):
        baselines.run_method("lanczos", np.ones((2, 8, 8)), np.eye(4))
    with pytest.raises(ValueError, match="scale"):
        baselines.zero_fill(np.ones((2, 8, 8)), np.eye(4), scale=0)
    with pytest.raises(ValueError, match="3D"):
        baselines.bspline(np.ones((8, 8)), np.eye(4))
    if not baselines.bm4d_available():
        with pytest.raises(ValueError, match="bm4d"):
            baselines.bm4d(np.ones((2, 8, 8)), np.eye(4))


@pytest.mark.skipif(not baselines.bm4d_available(), reason="the optional PyPI package bm4d is not installed")
def test_bm4d_denoises_a_stack_thinner_than_its_blocks():
    """BM4D's Wiener blocks are 5 voxels deep; a 4-slice stack is mirrored for it and cropped back."""
    rng = np.random.default_rng(0)
    truth = np.zeros((4, 32, 32), dtype=np.float32)
    truth[:, 8:24, 8:24] = 100.0
    noisy = truth + rng.normal(0, 10, truth.shape).astype(np.float32)
    out, geometry = baselines.bm4d(noisy, np.eye(4), scale=1, slice_axis="k")
    assert out.shape == truth.shape
    np.testing.assert_allclose(geometry, np.eye(4))
    assert np.mean((out - truth) ** 2) < 0.3 * np.mean((noisy - truth) ** 2)
