"""Tests of MRSuperResLib.simulate: noise statistics, SNR, geometry, reproducibility, options, bad input."""

import numpy as np
import pytest

from MRQualityMetricsLib.volume import make_ijk_to_ras
from MRSuperResLib import phantoms, simulate

RAYLEIGH_MEAN = np.sqrt(np.pi / 2)  # 1.2533 sigma
RAYLEIGH_SD = np.sqrt(2 - np.pi / 2)  # 0.6551 sigma


def _small_object_volume(slices=12, n=128):
    """A 40 x 40 pixel square of value 100 in a large empty field (background far from any edge)."""
    image = 100.0 * phantoms.box_profile(n, 70.3, 110.6)[:, None] * phantoms.box_profile(n, 70.2, 110.4)[None, :]
    return phantoms.stack(image, slices)


def test_background_noise_is_rayleigh_with_requested_sigma():
    volume = _small_object_volume()
    geometry = make_ijk_to_ras((1.0, 1.0, 3.0))
    result = simulate.simulate_array(volume, geometry, scale=2, snr=20, seed=3)
    assert result.array.shape == (12, 64, 64)
    assert result.slice_axis == 2  # thick slices along k
    # Background far (> 12 output voxels) from the object.
    background = result.array[:, :20, :20].ravel()
    assert background.mean() / result.sigma == pytest.approx(RAYLEIGH_MEAN, rel=0.04)
    assert background.std(ddof=1) / result.sigma == pytest.approx(RAYLEIGH_SD, rel=0.05)


def test_foreground_snr_matches_request():
    volume = _small_object_volume()
    geometry = make_ijk_to_ras((1.0, 1.0, 3.0))
    noisy = simulate.simulate_array(volume, geometry, scale=2, snr=15, seed=5)
    clean = simulate.simulate_array(volume, geometry, scale=2, snr=None, seed=5)
    assert clean.sigma == 0.0
    foreground = clean.array > 0.1 * np.percentile(clean.array, 99)
    # sigma from the background SD with the Rayleigh correction, as a user would measure it.
    sigma_measured = noisy.array[:, :20, :20].std(ddof=1) / RAYLEIGH_SD
    snr_measured = noisy.array[foreground].mean() / sigma_measured
    assert snr_measured == pytest.approx(15, rel=0.05)
    # sigma comes from the clean low-res image without the random phase, which barely changes the magnitude.
    assert noisy.sigma == pytest.approx(simulate.volume_foreground_mean(clean.array) / 15, rel=1e-3)


def test_sigma_is_per_volume_not_per_slice():
    volume = _small_object_volume(slices=4)
    volume[0] *= 0.25  # a dim slice must get the same absolute noise as the bright ones
    result = simulate.simulate_array(volume, make_ijk_to_ras((1, 1, 3)), scale=2, snr=10, seed=0)
    sd = [result.array[s, :20, :20].std() for s in range(4)]
    assert sd[0] == pytest.approx(np.mean(sd[1:]), rel=0.15)


@pytest.mark.parametrize("scanner_zero_fill", [False, True])
@pytest.mark.parametrize("n_k, n_j", [(120, 100), (118, 97)])  # even and odd acquired sizes (59, 49 -> voxel 0 moves)
def test_edge_stays_at_its_ras_position(scanner_zero_fill, n_k, n_j):
    # Permuted and flipped axes, non-zero origin: the slice axis is i (largest spacing).
    directions = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    geometry = make_ijk_to_ras((4.0, 0.8, 0.8), directions, origin=(12.0, -30.0, 7.5))
    n_i = 5
    edge_k, edge_j = 47.3, 38.6  # voxel-index positions of the box's lower edges
    image = phantoms.box_profile(n_k, edge_k, 100.0)[:, None] * phantoms.box_profile(n_j, edge_j, 80.0)[None, :]
    volume = np.repeat((100.0 * image)[:, :, None], n_i, axis=2).astype(np.float32)
    result = simulate.simulate_array(volume, geometry, scale=2, snr=None, seed=0, scanner_zero_fill=scanner_zero_fill)
    assert result.slice_axis == 0
    out = result.array
    out_spacing = np.linalg.norm(result.ijk_to_ras[:3, :3], axis=0)
    expected_spacing = (4.0, 0.8, 0.8) if scanner_zero_fill else (4.0, 0.8 * n_j / out.shape[1], 0.8 * n_k / out.shape[0])
    np.testing.assert_allclose(out_spacing, expected_spacing)
    np.testing.assert_allclose(result.ijk_to_ras[:3, :3] / out_spacing, directions)
    if n_k % 4 == 0 and n_j % 4 == 0:  # even acquired sizes: voxel 0 keeps its position
        np.testing.assert_allclose(result.ijk_to_ras[:3, 3], geometry[:3, 3])
    truth_ijk = np.linalg.inv(geometry)

    def truth_index(ijk_out):
        return (truth_ijk @ result.ijk_to_ras @ [*ijk_out, 1.0])[:3]

    # 50 % crossings of profiles through the flat part of the box, mapped back to truth voxel indices.
    j_out = int(np.argmin(np.abs([truth_index((2, j, 0))[1] - 60 for j in range(out.shape[1])])))
    k_cross = _crossing(out[:, j_out, 2], 50.0)
    assert truth_index((2, j_out, k_cross))[2] == pytest.approx(edge_k, abs=0.25 * out_spacing[2] / 0.8)
    k_out = int(np.argmin(np.abs([truth_index((2, 0, k))[2] - 70 for k in range(out.shape[0])])))
    j_cross = _crossing(out[k_out, :, 2], 50.0)
    assert truth_index((2, j_cross, k_out))[1] == pytest.approx(edge_j, abs=0.25 * out_spacing[1] / 0.8)


def test_fourier_sample_positions():
    np.testing.assert_allclose(simulate.fourier_sample_positions(128, 64), np.arange(64) * 2.0)
    np.testing.assert_allclose(simulate.fourier_sample_positions(64, 128), np.arange(128) * 0.5)
    # 90 -> 45: the centre samples 45 and 22 coincide, so output voxel 0 lies at input index 1.
    np.testing.assert_allclose(simulate.fourier_sample_positions(90, 45)[:2], [1.0, 3.0])
    np.testing.assert_allclose(simulate.fourier_sample_positions(45, 90)[:2], [-0.5, 0.0])


def _crossing(profile, level):
    """Index (linear interpolation) where a rising profile first crosses `level`."""
    index = int(np.argmax(profile > level))
    return index - 1 + (level - profile[index - 1]) / (profile[index] - profile[index - 1])


def test_same_seed_same_output_and_input_untouched():
    volume = _small_object_volume(slices=3)
    original = volume.copy()
    geometry = make_ijk_to_ras((1, 1, 2))
    options = {"scale": 2, "snr": 10, "partial_fourier": 0.75, "apodisation": 0.3, "bias_field_strength": 0.3,
               "slice_profile_mm": 3.0}
    first = simulate.simulate_array(volume, geometry, seed=7, **options)
    second = simulate.simulate_array(volume, geometry, seed=7, **options)
    other = simulate.simulate_array(volume, geometry, seed=8, **options)
    np.testing.assert_array_equal(first.array, second.array)
    assert not np.array_equal(first.array, other.array)
    np.testing.assert_array_equal(volume, original)


def test_partial_fourier_and_apodisation_lower_noise():
    volume = _small_object_volume(slices=6)
    geometry = make_ijk_to_ras((1, 1, 3))
    plain = simulate.simulate_array(volume, geometry, snr=10, seed=1)
    filtered = simulate.simulate_array(volume, geometry, snr=10, seed=1, apodisation=1.0, partial_fourier=0.6)
    assert filtered.sigma == plain.sigma  # same acquisition noise ...
    assert filtered.array[:, :20, :20].std() < 0.8 * plain.array[:, :20, :20].std()  # ... less image noise


def test_bias_field_is_smooth_and_bounded():
    rng = np.random.default_rng(0)
    field = simulate.bias_field((8, 40, 50), 0.3, rng)
    assert field.min() >= np.exp(-0.3) - 1e-9 and field.max() <= np.exp(0.3) + 1e-9
    assert np.log(field).max() == pytest.approx(0.3) or np.log(field).min() == pytest.approx(-0.3)
    assert np.abs(np.diff(field, axis=2)).max() < 0.05  # smooth: tiny change between neighbours


@pytest.mark.parametrize("profile", ["gaussian", "rect"])
def test_slice_profile_blur_has_requested_width(profile):
    # A single bright slice (delta along k, spacing 1 mm) becomes the slice profile of FWHM 4 mm.
    volume = np.zeros((41, 8, 8), dtype=np.float32)
    volume[20] = 1.0
    blurred = simulate.blur_through_plane(volume, axis=0, fwhm_voxels=4.0, profile=profile)[:, 4, 4]
    assert blurred.sum() == pytest.approx(1.0, rel=1e-5)
    offsets = np.arange(41) - 20
    variance = float((blurred * offsets**2).sum())
    # Gaussian: sigma^2; rect of width 4 sampled with half-weight ends: 2 * (0.25 * 1 + 0.125 * 4) = 1.5.
    expected = (4.0 / 2.3548) ** 2 if profile == "gaussian" else 1.5
    assert variance == pytest.approx(expected, rel=0.1)
    if profile == "rect":
        assert blurred[18:23].tolist() == pytest.approx([0.125, 0.25, 0.25, 0.25, 0.125])


def test_slice_axis_choice():
    assert simulate.resolve_slice_axis(make_ijk_to_ras((1, 1, 5))) == 2
    assert simulate.resolve_slice_axis(make_ijk_to_ras((1, 5, 1))) == 1
    # Isotropic sagittal acquisition: voxel axis k points R-L, j points S-I -> axial processing means axis j.
    sagittal = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert simulate.resolve_slice_axis(make_ijk_to_ras((1, 1, 1), sagittal)) == 1
    assert simulate.resolve_slice_axis(make_ijk_to_ras((1, 1, 1)), "i") == 0
    with pytest.raises(ValueError, match="slice axis"):
        simulate.resolve_slice_axis(make_ijk_to_ras((1, 1, 1)), "x")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"scale": 0.5}, "scale"),
        ({"snr": 0}, "SNR"),
        ({"snr": -3}, "SNR"),
        ({"partial_fourier": 0.4}, "partial Fourier"),
        ({"partial_fourier": 1.2}, "partial Fourier"),
        ({"apodisation": 1.5}, "apodisation"),
        ({"slice_profile_mm": 0}, "slice profile"),
    ],
)
def test_bad_parameters_raise(options, message):
    with pytest.raises(ValueError, match=message):
        simulate.simulate_array(np.ones((2, 16, 16)), np.eye(4), **options)


def test_bad_arrays_raise():
    with pytest.raises(ValueError, match="3D"):
        simulate.simulate_array(np.ones((16, 16)), np.eye(4))
    bad = np.ones((2, 16, 16))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        simulate.simulate_array(bad, np.eye(4))
    with pytest.raises(ValueError, match="foreground"):
        simulate.simulate_array(np.zeros((2, 16, 16)), np.eye(4), snr=10)
