"""Noise that varies across the volume: the simulator's noise_variation, the estimated map (noise_map.py) and its use
in enhance() (noise_map="auto" or an array), with the real shipped fast model on the CPU."""

import numpy as np
import pytest

from MRQualityMetricsLib.volume import make_ijk_to_ras
from MRSuperResLib import fidelity, inference, noise_map, simulate
from MRSuperResLib.simulate import fourier_sample_positions

FAST_MODEL = "mrsr-unet16-2p5d-v7"
GEOMETRY = make_ijk_to_ras((1, 1, 1))


def _head(slices=8, n=96):
    """A flat ellipse with a brighter inner ellipse and dark dots: a head-like phantom with some edges."""
    rows, cols = np.mgrid[0:n, 0:n] / (n - 1) * 2 - 1
    head = np.where(rows**2 / 0.8 + cols**2 / 0.6 < 1, 100.0, 0.0)
    head += np.where(rows**2 / 0.3 + cols**2 / 0.2 < 1, 60.0, 0.0)
    head -= np.where((np.sin(12 * rows) * np.sin(12 * cols) > 0.9) & (head > 0), 50.0, 0.0)
    return np.repeat(head[None], slices, axis=0).astype(np.float32)


def _log_error_sd(estimate: noise_map.RelativeNoiseMap, true_map, stack):
    """SD over the foreground of log(estimated / true), up to a constant (the map is relative)."""
    estimated = estimate.on_grid(*(np.arange(n) for n in stack.shape))
    foreground = stack > 0.1 * np.percentile(stack, 99)
    error = np.log(estimated[foreground]) - np.log(true_map[foreground])
    return float(np.std(error))


# ---------------------------------------------------------------- simulation


def test_noise_variation_map_is_smooth_with_the_requested_ratio():
    values = simulate.noise_variation_map((6, 40, 50), 3.0, np.random.default_rng(1))
    assert values.shape == (6, 40, 50)
    np.testing.assert_allclose(values.max() / values.min(), 3.0, rtol=1e-5)
    assert np.abs(np.diff(values, axis=2)).max() < 0.25  # no jumps between neighbouring pixels


def test_simulated_noise_follows_the_map_with_the_snr_over_its_rms():
    truth = np.full((8, 64, 64), 100.0, np.float32)
    result = simulate.simulate_array(truth, GEOMETRY, scale=1, snr=20, noise_variation=3.0, random_phase=False,
                                     seed=3)
    assert result.noise_map is not None and result.noise_map.shape == truth.shape
    np.testing.assert_allclose(np.sqrt(np.mean(result.noise_map**2)), 1.0, rtol=1e-4)  # all foreground here
    # At SNR 20 the magnitude's noise is nearly Gaussian: the local SD follows sigma x map.
    residual = (result.array - 100.0) / (result.sigma * result.noise_map)
    high, low = result.noise_map > np.percentile(result.noise_map, 80), result.noise_map < np.percentile(result.noise_map, 20)
    assert abs(residual[high].std() - 1.0) < 0.05 and abs(residual[low].std() - 1.0) < 0.05
    assert result.array[high].std() > 1.8 * result.array[low].std()


def test_uniform_noise_has_no_map_and_the_variation_is_checked():
    truth = np.full((4, 32, 32), 100.0, np.float32)
    assert simulate.simulate_array(truth, GEOMETRY, snr=20).noise_map is None
    with pytest.raises(ValueError, match="noise variation"):
        simulate.simulate_array(truth, GEOMETRY, snr=20, noise_variation=0.5)


# ---------------------------------------------------------------- the map


def test_map_interpolates_linearly_between_centres_and_is_constant_beyond():
    values = np.arange(1.0, 7.0).reshape(1, 2, 3)
    relative = noise_map.RelativeNoiseMap(values, (np.array([0.0]), np.array([2.0, 6.0]), np.array([0.0, 1.0, 3.0])))
    grid = relative.on_grid(np.array([0, 5]), np.array([0.0, 4.0, 9.0]), np.array([-1.0, 0.5, 2.0, 3.0]))
    assert grid.shape == (2, 3, 4)
    np.testing.assert_allclose(grid[0, :, 0], [1.0, 2.5, 4.0])  # rows 2 / 6 hold 1 / 4 in column 0
    np.testing.assert_allclose(grid[0, 0, :], [1.0, 1.5, 2.5, 3.0])
    np.testing.assert_array_equal(grid[0], grid[1])


@pytest.mark.parametrize("centres", [12, 90])  # interpolated by weight matrices, and by gathering neighbours
def test_both_interpolation_paths_are_trilinear(centres):
    """on_grid against scipy's trilinear interpolation (positions clamped to the outer centres), on irregular centres
    with as many centres per in-plane axis as an estimate has tiles (12) or a given map has pixels (90)."""
    from scipy.interpolate import RegularGridInterpolator

    rng = np.random.default_rng(4)
    axes = (np.array([0.5, 3.0, 9.0]), *(np.cumsum(rng.uniform(0.5, 2.0, centres)) for _ in range(2)))
    relative = noise_map.RelativeNoiseMap(rng.uniform(0.5, 2.0, (3, centres, centres)), axes)
    positions = [np.sort(rng.uniform(a[0] - 3, a[-1] + 3, n)) for a, n in zip(axes, (5, 70, 110))]
    reference = RegularGridInterpolator(axes, relative.values)
    points = np.stack(np.meshgrid(*(np.clip(p, a[0], a[-1]) for p, a in zip(positions, axes)), indexing="ij"), -1)
    grid = relative.on_grid(*positions)
    assert grid.dtype == np.float32 and grid.shape == (5, 70, 110)
    np.testing.assert_allclose(grid, reference(points), rtol=1e-5)


def test_tile_estimates_are_each_tiles_median_over_its_foreground():
    """The all-tiles-at-once medians against the definition, tile by tile, on uneven tiles with partial foreground."""
    import torch

    rng = np.random.default_rng(6)
    slab = rng.normal(10.0, rng.uniform(0.5, 3.0, (1, 46, 1)), (5, 46, 53)).astype(np.float32)
    slab[:, :, :20] *= 0.01  # dark columns: tiles there lack foreground
    row_bounds, col_bounds = np.array([0, 9, 25, 46]), np.array([0, 17, 33, 53])
    logs, weights = noise_map._tile_estimates(torch.from_numpy(slab), 10.0, row_bounds, col_bounds)
    detail, mean = noise_map.diagonal_detail(torch.from_numpy(slab))
    foreground = mean > 1.0
    for i in range(3):
        for j in range(3):
            rows, cols = slice(row_bounds[i] // 2, row_bounds[i + 1] // 2), slice(col_bounds[j] // 2, col_bounds[j + 1] // 2)
            values = detail[:, rows, cols][foreground[:, rows, cols]]
            if values.numel() < noise_map.MIN_SAMPLES:
                assert weights[i, j] == 0 and logs[i, j] == 0
                continue
            assert weights[i, j] == values.numel()
            assert logs[i, j] == pytest.approx(np.log(float(values.abs().median()) / 0.6745), abs=1e-12)
    assert (weights == 0).sum() >= 1 and (weights > 0).sum() >= 3  # both kinds of tile were checked


def test_a_given_map_is_relative_and_fills_voxels_without_a_value():
    given = np.full((2, 4, 4), 2.0)
    given[0, 0, 0] = 0.0
    given[1, 1, 1] = 6.0
    relative = noise_map.from_array(given)
    grid = relative.on_grid(*(np.arange(n) for n in given.shape))
    assert grid[0, 0, 0] == 1.0 and grid[1, 1, 1] == 3.0
    for bad in (np.full((2, 4, 4), np.nan), np.zeros((2, 4, 4)), np.ones((4, 4))):
        with pytest.raises(ValueError, match="noise map"):
            noise_map.from_array(bad)


def test_diagonal_detail_removes_what_neighbouring_slices_share_and_keeps_white_noise():
    import torch

    rng = np.random.default_rng(0)
    texture = rng.normal(size=(1, 64, 64)).astype(np.float32)  # anatomy finer than a pixel, the same in each slice
    shared, _ = noise_map.diagonal_detail(torch.from_numpy(np.repeat(texture, 4, axis=0)))
    assert float(shared.abs().max()) < 1e-5
    noise, _ = noise_map.diagonal_detail(torch.from_numpy(rng.normal(size=(8, 64, 64)).astype(np.float32)))
    assert abs(float(noise.std()) - 1.0) < 0.03


@pytest.mark.parametrize("scale", [1, 2])
def test_the_estimated_map_follows_the_noise_and_stays_flat_for_uniform_noise(scale):
    truth = _head(slices=16, n=128)
    varying = simulate.simulate_array(truth, GEOMETRY, scale=scale, snr=15, noise_variation=3.0, seed=4)
    stack = varying.array
    estimate = noise_map.estimate_relative_noise_map(stack)
    flat = noise_map.RelativeNoiseMap(np.ones((1, 1, 1)), (np.zeros(1),) * 3)
    # A flat map is off by 0.25 here (ln 3 = 1.1 is the range of the true map); the estimate by 0.10 / 0.12.
    assert _log_error_sd(estimate, varying.noise_map, stack) < 0.55 * _log_error_sd(flat, varying.noise_map, stack)
    uniform = simulate.simulate_array(truth, GEOMETRY, scale=scale, snr=15, seed=4).array
    estimated = noise_map.estimate_relative_noise_map(uniform).on_grid(*(np.arange(n) for n in uniform.shape))
    foreground = uniform > 0.1 * np.percentile(uniform, 99)
    assert np.percentile(estimated[foreground], 95) / np.percentile(estimated[foreground], 5) < 1.3


def test_a_stack_without_foreground_has_no_map():
    assert noise_map.estimate_relative_noise_map(np.zeros((4, 32, 32), np.float32)) is None


# ---------------------------------------------------------------- enhance()


def _enhance(array, **kwargs):
    kwargs.setdefault("model_id", FAST_MODEL)
    kwargs.setdefault("device", "cpu")
    return inference.enhance(array, GEOMETRY, **kwargs)[0]


@pytest.mark.parametrize("scale", [1, 2])
def test_enhance_with_a_map_restores_the_input_divided_by_it_and_multiplies_back(scale):
    """With the map f, enhance(x f) = enhance(x) f on the output grid: the input is divided by f, restored with one
    noise level, and each final slice multiplied by f (streamed in several batches here)."""
    truth = _head(slices=6, n=48)
    noisy = simulate.simulate_array(truth, GEOMETRY, scale=1, snr=15, seed=2).array
    rows = np.linspace(0.6, 1.8, noisy.shape[1])
    field = np.broadcast_to((rows[:, None] * np.linspace(1.0, 1.4, noisy.shape[2])[None, :])[None], noisy.shape)
    field = np.ascontiguousarray(field, dtype=np.float32)
    scaled_input = noisy * field
    kept = scaled_input.copy()
    out = _enhance(scaled_input, scale=scale, noise_map=field, batch_size=2)
    np.testing.assert_array_equal(scaled_input, kept)  # the input is never changed
    reference = _enhance(noisy, scale=scale)
    out_rows, out_cols = (fourier_sample_positions(n, n * scale) for n in noisy.shape[1:])
    # from_array scales the map to median 1; the input divided by it keeps that median as a factor.
    on_output = noise_map.from_array(field).on_grid(np.arange(noisy.shape[0]), out_rows, out_cols) * np.median(field)
    np.testing.assert_allclose(out, reference * on_output, rtol=2e-3, atol=2e-3 * float(out.max()))


def test_a_given_map_follows_the_crop_of_a_scanner_zero_filled_series():
    """Cropped from 64 to 32 rows, pixel m of the acquired matrix lies at grid row 2 m: a ramp over the grid's rows
    reads there as the ramp at 2 m."""
    ramp = np.broadcast_to((1.0 + 0.01 * np.arange(64))[None, :, None], (3, 64, 48))
    relative = inference._relative_noise(ramp, np.ones((3, 32, 48), np.float32), (64, 48), 0)
    rows = relative.on_grid(np.arange(3), np.arange(32), np.arange(48))[1, :, 5]
    np.testing.assert_allclose(rows * np.median(ramp), 1.0 + 0.02 * np.arange(32), rtol=1e-6)


def test_auto_map_denoises_where_the_noise_is_high_and_keeps_detail_where_it_is_low():
    truth = _head(slices=8, n=96)
    degraded = simulate.simulate_array(truth, GEOMETRY, scale=1, snr=10, noise_variation=3.0, seed=6)
    mask = fidelity.head_mask(truth)
    one_level = fidelity.psnr(_enhance(degraded.array, scale=1), truth, mask, float(truth.max()))
    mapped = fidelity.psnr(_enhance(degraded.array, scale=1, noise_map="auto"), truth, mask, float(truth.max()))
    assert mapped > one_level + 0.5, (mapped, one_level)


@pytest.mark.parametrize("noise_map_value, message", [("sometimes", "noise map must be"),
                                                      (np.ones((3, 8, 8)), "shape")])
def test_bad_noise_maps_are_value_errors(noise_map_value, message):
    with pytest.raises(ValueError, match=message):
        _enhance(np.ones((4, 16, 16), np.float32), scale=1, noise_map=noise_map_value)
