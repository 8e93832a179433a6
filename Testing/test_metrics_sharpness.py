"""Line-profile sharpness on analytic phantoms built in physical (RAS) space.

Each phantom is a continuous function evaluated at every voxel centre's RAS position:
- thin sheet:  exp(-d1^2 / 2 s^2)                  -> FWHM = 2.3548 s (d1 = signed distance to a plane)
- slab:        0.5 (erf((d2 + W/2)/(s sqrt 2)) - erf((d2 - W/2)/(s sqrt 2)))
               -> two Gaussian-blurred steps: ERD = 2.5631 s, ERS = 0.8 / ERD, FWHM = W
The sheet and slab normals are perpendicular, so a line along one normal sees the other term as a constant; the
slab line runs 4 s off the sheet so that interpolating the sheet's curved crest does not ripple its profile.
The default quintic B-spline keeps FWHM within 1 % from s = 1.2 voxels (1.5 % at s = 1 voxel, the limit set by
the aliasing of a sampled Gaussian); linear (trilinear, ImageJ's bilinear) needs s >= 4 voxels for 1 % and
s >= 3 voxels for ERD within 2 %; cubic B-spline reaches this from s = 1.5 (FWHM) / 1 voxel (ERD).
"""

import numpy as np
import pytest
from scipy.special import erf

from MRQualityMetricsLib.edge_metrics import sharpness_from_profile
from MRQualityMetricsLib.line_profile import sample_line
from MRQualityMetricsLib.measurement import LineSpec, measure
from MRQualityMetricsLib.volume import Volume, make_ijk_to_ras

FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))  # 2.3548
ERD_PER_SIGMA = 2 * 1.2815515655446004  # 10-90 % of a Gaussian CDF: 2 z(0.9) = 2.5631
SLAB_WIDTH_SIGMAS = 8.0


def rotation(angle_z, angle_x):
    cz, sz, cx, sx = np.cos(angle_z), np.sin(angle_z), np.cos(angle_x), np.sin(angle_x)
    return np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])


def unit(vector):
    vector = np.asarray(vector, float)
    return vector / np.linalg.norm(vector)


def phantom(centre, half_size_mm, spacing, directions, function, name="phantom", dtype=float):
    """Volume covering a cube of half size around centre, voxel values = function(voxel centre RAS)."""
    spacing = np.asarray(spacing, float)
    # The cube's extent along each voxel axis, in voxels (directions may be oblique).
    counts = np.ceil(2 * half_size_mm * np.abs(directions).sum(axis=0) / spacing).astype(int) + 1
    origin = np.asarray(centre, float) - directions @ (spacing * (counts - 1) / 2)
    matrix = make_ijk_to_ras(spacing, directions, origin)
    k, j, i = np.meshgrid(*[np.arange(n) for n in counts[::-1]], indexing="ij")
    ras = np.stack([i, j, k], axis=-1) @ matrix[:3, :3].T + matrix[:3, 3]
    return Volume(function(ras).astype(dtype), matrix, name)


class SheetAndSlab:
    """Gaussian sheet across normal n1 and a blurred slab across n2 (n1 perpendicular to n2)."""

    def __init__(self, sigma, centre=(3.0, -7.0, 11.0), n1=(1.0, 0.4, -0.3)):
        self.sigma = sigma
        self.centre = np.asarray(centre, float)
        self.n1 = unit(n1)
        self.n2 = unit(np.cross(self.n1, [0.2, 1.0, 0.5]))
        self.half_size = 8.2 * sigma  # covers both lines: |4 s n1 + 7 s n2| = 8.06 s

    def __call__(self, ras):
        d1 = (ras - self.centre) @ self.n1
        d2 = (ras - self.centre) @ self.n2
        s2 = self.sigma * np.sqrt(2)
        half = SLAB_WIDTH_SIGMAS * self.sigma / 2
        return np.exp(-(d1**2) / (2 * self.sigma**2)) + 0.5 * (erf((d2 + half) / s2) - erf((d2 - half) / s2))

    def sheet_line(self):
        return self.centre + np.outer([-5 * self.sigma, 5 * self.sigma], self.n1)

    def slab_line(self):
        reach = (SLAB_WIDTH_SIGMAS / 2 + 3) * self.sigma
        return self.centre + 4 * self.sigma * self.n1 + np.outer([-reach, reach], self.n2)

    def volume(self, spacing, directions=None, name="phantom"):
        directions = np.eye(3) if directions is None else directions
        return phantom(self.centre, self.half_size, spacing, directions, self, name)


def left_handed(directions):
    flipped = np.array(directions, float)
    flipped[:, 1] *= -1
    return flipped


GEOMETRIES = {
    "axis-aligned": ((0.5, 0.5, 0.5), np.eye(3), 2.0),
    "oblique": ((0.5, 0.5, 0.5), rotation(0.44, 0.61), 2.0),
    "oblique-left-handed": ((0.5, 0.5, 0.5), left_handed(rotation(-0.3, 0.9)), 2.0),
    "anisotropic-oblique": ((0.4, 0.55, 0.8), rotation(0.2, -0.5), 3.2),
}


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_fwhm_erd_ers_match_analytic_values_linear(geometry):
    spacing, directions, sigma = GEOMETRIES[geometry]
    assert sigma >= 4 * max(spacing) - 1e-9
    model = SheetAndSlab(sigma)
    volume = model.volume(spacing, directions)
    sheet = sample_line(volume, model.sheet_line(), name="sheet")
    assert np.diff(sheet.distance_mm).max() <= 0.1 * min(spacing) + 1e-12
    result = sharpness_from_profile(sheet.distance_mm, sheet.intensity, name="sheet")
    assert result.polarity == "peak"
    assert result.fwhm_mm == pytest.approx(FWHM_PER_SIGMA * sigma, rel=0.01)

    slab = sample_line(volume, model.slab_line(), name="slab")
    edges = sharpness_from_profile(slab.distance_mm, slab.intensity, name="slab")
    assert edges.polarity == "peak"
    for erd in (edges.erd_mm, edges.erd_left_mm, edges.erd_right_mm):
        assert erd == pytest.approx(ERD_PER_SIGMA * sigma, rel=0.02)
    amplitude = edges.peak_value - edges.baseline_value
    assert edges.ers_per_mm == pytest.approx(0.8 * amplitude / (ERD_PER_SIGMA * sigma), rel=0.02)
    assert edges.fwhm_mm == pytest.approx(SLAB_WIDTH_SIGMAS * sigma, rel=0.01)


def test_same_object_at_two_resolutions_gives_the_same_sharpness():
    model = SheetAndSlab(2.0)
    directions = rotation(0.3, 0.2)
    volumes = [model.volume((0.5, 0.5, 0.5), directions, "DLR"), model.volume((1 / 3, 1 / 3, 1.0), directions, "SR")]
    lines = [LineSpec("sheet", model.sheet_line()), LineSpec("slab", model.slab_line())]
    result = measure(volumes, lines)
    rows = {(row["volume"], row["measurement"]): row for row in result.rows}
    assert len(result.rows) == 4
    for name in ("DLR", "SR"):
        assert rows[(name, "sheet")]["fwhm_mm"] == pytest.approx(FWHM_PER_SIGMA * 2.0, rel=0.01)
        assert rows[(name, "slab")]["erd_mm"] == pytest.approx(ERD_PER_SIGMA * 2.0, rel=0.02)
    # Each volume is sampled at 0.1 of its own smallest spacing.
    assert rows[("SR", "sheet")]["step_mm"] < rows[("DLR", "sheet")]["step_mm"] <= 0.05
    assert set(result.profiles) == {(v, line) for v in ("DLR", "SR") for line in ("sheet", "slab")}


@pytest.mark.parametrize("directions", [np.eye(3), rotation(0.7, 0.35)], ids=["axis-aligned", "oblique"])
def test_cubic_interpolation_resolves_structures_of_one_to_two_voxels(directions):
    spacing = (0.5, 0.5, 0.5)
    model = SheetAndSlab(0.75)  # 1.5 voxels
    volume = model.volume(spacing, directions)
    sheet = sample_line(volume, model.sheet_line(), interpolation="cubic")
    fwhm = sharpness_from_profile(sheet.distance_mm, sheet.intensity).fwhm_mm
    assert fwhm == pytest.approx(FWHM_PER_SIGMA * 0.75, rel=0.01)

    model = SheetAndSlab(0.5)  # 1 voxel
    volume = model.volume(spacing, directions)
    slab = sample_line(volume, model.slab_line(), interpolation="cubic")
    assert sharpness_from_profile(slab.distance_mm, slab.intensity).erd_mm == pytest.approx(ERD_PER_SIGMA * 0.5, rel=0.02)


def test_linear_interpolation_widens_a_one_voxel_gaussian_as_imagej_does():
    # Known limitation, documented: piecewise-linear reconstruction of a Gaussian of SD = 1 voxel overestimates
    # its FWHM by 4-10 % depending on the sub-voxel position; ImageJ's bilinear Plot Profile does the same.
    errors = []
    for offset in (0.0, 0.25, 0.5):
        model = SheetAndSlab(1.0, centre=(offset, 0.0, 0.0), n1=(1.0, 0.0, 0.0))
        volume = model.volume((1.0, 1.0, 1.0))
        sheet = sample_line(volume, model.sheet_line(), interpolation="linear")
        errors.append(sharpness_from_profile(sheet.distance_mm, sheet.intensity).fwhm_mm / FWHM_PER_SIGMA - 1)
    assert all(0.03 < error < 0.11 for error in errors)


@pytest.mark.parametrize("sigma, tolerance", [(1.0, 0.016), (1.2, 0.003), (2.0, 0.003)])  # documented: 1.5 %, 0.2 %
def test_default_quintic_interpolation_resolves_one_voxel_gaussians(sigma, tolerance):
    for offset in (0.0, 0.25, 0.5):
        for directions in (None, rotation(0.4, 0.3)):
            model = SheetAndSlab(sigma, centre=(offset, 0.0, 0.0), n1=(1.0, 0.0, 0.0))
            sheet = sample_line(model.volume((1.0, 1.0, 1.0), directions), model.sheet_line())
            fwhm = sharpness_from_profile(sheet.distance_mm, sheet.intensity).fwhm_mm
            assert fwhm == pytest.approx(FWHM_PER_SIGMA * sigma, rel=tolerance)


def test_trough_is_measured_inverted_and_reported_in_image_units():
    model = SheetAndSlab(2.0)
    bright = model.volume((0.5, 0.5, 0.5), rotation(0.1, 0.2))
    dark = bright.with_array(100.0 - 80.0 * bright.array)
    profile = sample_line(dark, model.sheet_line())
    result = sharpness_from_profile(profile.distance_mm, profile.intensity)
    assert result.polarity == "trough"
    assert result.fwhm_mm == pytest.approx(FWHM_PER_SIGMA * 2.0, rel=0.01)
    line = model.sheet_line()
    slab_value = 100.0 - 80.0 * (model(line[:1])[0] - np.exp(-12.5))  # the slab term along this line
    assert result.peak_value == pytest.approx(slab_value - 80.0, abs=0.5)  # interpolation flattens the tip
    assert result.baseline_value == pytest.approx(slab_value, abs=0.05)
    assert result.half_level == pytest.approx((result.peak_value + result.baseline_value) / 2)
    assert result.ers_per_mm > 0


def test_single_blurred_step_is_measured_as_an_edge():
    sigma, normal, centre = 2.0, unit((0.3, -1.0, 0.2)), np.array([1.0, 2.0, 3.0])

    def step(ras):
        return 10.0 + 50.0 * 0.5 * (1 + erf(((ras - centre) @ normal) / (sigma * np.sqrt(2))))

    volume = phantom(centre, 7 * sigma, (0.5, 0.5, 0.5), rotation(0.5, 0.1), step)
    for sign, side in ((1, "erd_left_mm"), (-1, "erd_right_mm")):
        line = centre + np.outer([-6 * sigma * sign, 6 * sigma * sign], normal)
        profile = sample_line(volume, line)
        result = sharpness_from_profile(profile.distance_mm, profile.intensity)
        assert result.polarity == "edge"
        assert np.isnan(result.fwhm_mm)
        assert result.erd_mm == pytest.approx(ERD_PER_SIGMA * sigma, rel=0.02)
        assert getattr(result, side) == result.erd_mm
        assert result.ers_per_mm == pytest.approx(0.8 * 50.0 / (ERD_PER_SIGMA * sigma), rel=0.02)


def test_integer_images_are_interpolated_as_floats():
    array = np.zeros((3, 3, 4), dtype=np.int16)
    array[:, :, 2] = 1
    volume = Volume(array, make_ijk_to_ras((2.0, 2.0, 2.0)), "int")
    profile = sample_line(volume, [[2.0, 2.0, 2.0], [4.0, 2.0, 2.0]], step_mm=0.5, interpolation="linear")
    assert profile.intensity.dtype == np.float64
    np.testing.assert_allclose(profile.intensity, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(profile.distance_mm, [0.0, 0.5, 1.0, 1.5, 2.0])


def test_polyline_is_sampled_at_equal_steps_along_its_length():
    volume = Volume(np.arange(20 * 20 * 20, dtype=float).reshape(20, 20, 20), np.eye(4), "ramp")
    points = [[1.0, 1.0, 1.0], [4.0, 1.0, 1.0], [4.0, 5.0, 1.0]]
    profile = sample_line(volume, points, step_mm=0.3, interpolation="linear")
    assert profile.distance_mm[-1] == pytest.approx(7.0)
    np.testing.assert_allclose(np.diff(profile.distance_mm), 7.0 / 24)
    np.testing.assert_allclose(profile.points_ras[[0, -1]], [points[0], points[-1]])
    # The ramp value is i + 20 j + 400 k, exact under trilinear interpolation.
    expected = profile.points_ras @ [1.0, 20.0, 400.0]
    np.testing.assert_allclose(profile.intensity, expected, atol=1e-9)


def test_profile_errors_name_the_line_volume_and_problem():
    volume = Volume(np.zeros((10, 10, 10)), make_ijk_to_ras((1.0, 1.0, 1.0)), "vol")
    with pytest.raises(ValueError, match=r"line 'L'.*start point.*outside volume 'vol'"):
        sample_line(volume, [[-3.0, 5.0, 5.0], [5.0, 5.0, 5.0]], name="L")
    with pytest.raises(ValueError, match=r"end point.*outside"):
        sample_line(volume, [[5.0, 5.0, 5.0], [5.0, 5.0, 9.6]], name="L")
    with pytest.raises(ValueError, match=r"part of it \(from .* mm along the line\) lies outside"):
        sample_line(volume, [[1.0, 1.0, 5.0], [5.0, 12.0, 5.0], [8.0, 1.0, 5.0]], name="L")
    with pytest.raises(ValueError, match="zero length"):
        sample_line(volume, [[5.0, 5.0, 5.0], [5.0, 5.0, 5.0]], name="L")
    with pytest.raises(ValueError, match="at least 2 points"):
        sample_line(volume, [[5.0, 5.0, 5.0]], name="L")
    # Voxel-centre bounds rule: -0.5 .. n - 0.5 is inside.
    sample_line(volume, [[-0.5, 0.0, 0.0], [9.5, 9.5, 9.5]])


def test_sharpness_errors():
    distance = np.linspace(0, 5, 51)
    with pytest.raises(ValueError, match="line 'flat'.*flat"):
        sharpness_from_profile(distance, np.full(51, 7.0), name="flat")
    rising = np.linspace(0, 1, 51)
    with pytest.raises(ValueError, match="no peak.*end of the line"):
        sharpness_from_profile(distance, rising, polarity="peak")
    shoulder = np.r_[np.linspace(0, 1, 26), np.ones(25)]
    with pytest.raises(ValueError, match="no measurable peak"):
        sharpness_from_profile(distance, shoulder, polarity="peak")
    with pytest.raises(ValueError, match="polarity"):
        sharpness_from_profile(distance, rising, polarity="bright")
    with pytest.raises(ValueError, match="increase"):
        sharpness_from_profile(distance[::-1], rising)


def test_fwhm_baseline_is_the_higher_side_minimum():
    # Peak 10 between levels 0 (left) and 4 (right): half level 4 + (10 - 4) / 2 = 7 on a triangle.
    distance = np.arange(21.0)
    values = np.r_[np.zeros(5), np.linspace(0, 10, 6), np.linspace(10, 4, 4)[1:], np.full(7, 4.0)]
    result = sharpness_from_profile(distance, values)
    assert (result.peak_value, result.baseline_value, result.half_level) == (10.0, 4.0, 7.0)
    assert result.fwhm_mm == pytest.approx((10 - 8.5) + 1.5)  # crossings at 8.5 and 11.5
    assert result.erd_left_mm == pytest.approx(4.0)  # 1 -> 9 on a rise of 2 per mm
    assert result.erd_right_mm == pytest.approx(0.8 * 6 / 2)  # 10 -> 4 over 3 mm: slope 2 per mm
    assert result.ers_left_per_mm == pytest.approx(2.0)
    assert result.ers_right_per_mm == pytest.approx(2.0)
