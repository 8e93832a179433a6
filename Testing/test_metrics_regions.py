"""Regions (voxel-centre-inside rule), region statistics, SNR/CNR formulas and multi-volume measurement."""

import csv

import numpy as np
import pytest

from MRQualityMetricsLib import snr
from MRQualityMetricsLib.measurement import (
    COLUMN_NAMES,
    COLUMNS,
    CnrSpec,
    ContrastRatioSpec,
    DifferenceSnrSpec,
    LineSpec,
    SnrSpec,
    measure,
    write_rows_csv,
)
from MRQualityMetricsLib.region_stats import region_statistics
from MRQualityMetricsLib.regions import BoxRegion, CircleRegion, MaskRegion, PolygonRegion, SphereRegion
from MRQualityMetricsLib.volume import Volume, make_ijk_to_ras


def rotation(angle_z, angle_x):
    cz, sz, cx, sx = np.cos(angle_z), np.sin(angle_z), np.cos(angle_x), np.sin(angle_x)
    return np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])


def grid(shape_kji=(40, 60, 60), spacing=(0.5, 0.5, 0.5), directions=None, origin=(-15.0, -15.0, -10.0), array=None):
    array = np.zeros(shape_kji) if array is None else array
    return Volume(array, make_ijk_to_ras(spacing, directions, origin), "grid")


def test_axis_aligned_box_counts_voxel_centres_on_its_faces():
    volume = grid()
    # Centre on a voxel centre, sizes multiples of the spacing: faces pass through voxel centres (inclusive).
    box = BoxRegion("box", center_ras=(0.0, 0.0, 0.0), size_mm=(10.0, 6.0, 4.0))
    assert box.mask(volume).sum() == 21 * 13 * 9
    assert BoxRegion("box", (0.0, 0.0, 0.0), (9.9, 5.9, 3.9)).mask(volume).sum() == 19 * 11 * 7


@pytest.mark.parametrize("directions", [None, rotation(0.5, 0.3)], ids=["axis", "oblique-volume"])
def test_rotated_box_and_sphere_counts_match_their_volume(directions):
    volume = grid((70, 70, 70), directions=directions, origin=(0.0, 0.0, 0.0))
    centre = volume.ijk_to_ras_points([[34.7, 35.2, 35.1]])[0]
    axes = rotation(-0.4, 1.1)
    box = BoxRegion("box", centre, (12.0, 7.0, 5.0), axes)
    assert box.mask(volume).sum() * 0.125 == pytest.approx(12 * 7 * 5, rel=0.02)
    sphere = SphereRegion("sphere", centre, 10.0)
    assert sphere.mask(volume).sum() * 0.125 == pytest.approx(np.pi / 6 * 1000, rel=0.01)
    # The mask agrees with the definition evaluated voxel by voxel.
    k, j, i = np.nonzero(box.mask(volume))
    local = (volume.ijk_to_ras_points(np.c_[i, j, k]) - centre) @ axes
    assert np.all(np.abs(local) <= np.array([6.0, 3.5, 2.5]) + 1e-6)


def test_circle_counts_are_unbiased_and_within_rasterisation_error():
    volume = grid()
    rng = np.random.default_rng(7)
    for diameter, single_tolerance in ((5.0, 0.06), (10.0, 0.03)):
        errors = []
        for _ in range(40):
            circle = CircleRegion("c", rng.uniform(-4, 4, 3), diameter)
            mask = circle.mask(volume)
            assert len(np.unique(np.nonzero(mask)[0])) == 1  # a single slice
            errors.append(mask.sum() * 0.25 / (np.pi * diameter**2 / 4) - 1)
        assert np.max(np.abs(errors)) < single_tolerance
        assert abs(np.mean(errors)) < 0.01


def test_circle_uses_the_slice_nearest_its_centre_and_in_slice_distances():
    volume = grid(spacing=(0.5, 0.5, 2.0), origin=(0.0, 0.0, 0.0))
    circle = CircleRegion("c", (10.0, 10.0, 2.9), 3.0)  # k = 1.45 -> slice 1
    k, j, i = np.nonzero(circle.mask(volume))
    assert set(k) == {1}
    assert np.all((i * 0.5 - 10) ** 2 + (j * 0.5 - 10) ** 2 <= 1.5**2 + 1e-9)
    assert len(i) == 29  # lattice points of a radius-3-pixel disc
    # Coronal plane: the slice axis is j; in-slice pixels are 0.5 x 2 mm, so the disc is 7 x 3 pixels wide.
    coronal = CircleRegion("c", (10.0, 10.0, 10.0), 4.0, plane="coronal")
    k, j, i = np.nonzero(coronal.mask(volume))
    assert set(j) == {20}
    assert (i.min(), i.max(), k.min(), k.max()) == (16, 24, 4, 6)


def test_circle_on_an_oblique_volume_lies_in_the_most_axial_voxel_slice():
    directions = rotation(0.0, np.radians(20))  # k axis tilted 20 degrees from S
    origin = -directions @ (np.array([0.5, 0.5, 0.5]) * (np.array([60, 60, 30]) - 1) / 2)  # centred on 0
    volume = grid((30, 60, 60), directions=directions, origin=origin)
    circle = CircleRegion("c", (0.3, 0.1, 0.2), 6.0, plane="axial")
    k, j, i = np.nonzero(circle.mask(volume))
    assert len(set(k)) == 1
    assert len(k) * 0.25 == pytest.approx(np.pi * 9, rel=0.05)
    sagittal = CircleRegion("c", (0.3, 0.1, 0.2), 6.0, plane="sagittal")
    assert len(set(np.nonzero(sagittal.mask(volume))[2])) == 1  # a single i slice


def test_polygon_region_from_a_planar_closed_curve():
    volume = grid()
    square = [[-5.25, -5.25, 1.0], [5.25, -5.25, 1.0], [5.25, 5.25, 1.0], [-5.25, 5.25, 1.0]]
    k, j, i = np.nonzero(PolygonRegion("sq", square).mask(volume))
    assert len(k) == 21 * 21 and set(k) == {22}
    angle = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    disc = np.c_[6 * np.cos(angle) + 0.3, 6 * np.sin(angle) - 0.2, np.full(200, 3.0)]
    assert PolygonRegion("disc", disc).mask(volume).sum() * 0.25 == pytest.approx(np.pi * 36, rel=0.03)
    # A closed curve drawn on a coronal slice selects voxels of one j slice.
    coronal = np.c_[6 * np.cos(angle), np.full(200, 2.0), 4 * np.sin(angle)]
    assert set(np.nonzero(PolygonRegion("cor", coronal).mask(volume))[1]) == {34}
    with pytest.raises(ValueError, match="not planar"):
        PolygonRegion("bent", [[0, 0, 0], [10, 0, 0], [10, 10, 4], [0, 10, 0]])
    with pytest.raises(ValueError, match="collinear"):
        PolygonRegion("thin", [[0, 0, 0], [1, 1, 1], [2, 2, 2]])


def test_mask_region_and_statistics_with_known_values():
    array = np.zeros((4, 4, 4))
    array[1, 1, 1:4] = [1.0, 2.0, 3.0]
    volume = Volume(array, np.eye(4), "small")
    stats = region_statistics(volume, MaskRegion("m", lambda v: v.array > 0))
    assert (stats.mean, stats.sd, stats.voxels, stats.minimum, stats.maximum) == (2.0, 1.0, 3, 1.0, 3.0)
    with pytest.raises(ValueError, match="mask shape"):
        region_statistics(volume, MaskRegion("bad", lambda v: np.ones((2, 2, 2), bool)))


def test_statistics_of_gaussian_noise_match_its_sigma():
    rng = np.random.default_rng(3)
    sigma, mean = 12.0, 300.0
    volume = grid((50, 50, 50), origin=(0.0, 0.0, 0.0), array=rng.normal(mean, sigma, (50, 50, 50)))
    stats = region_statistics(volume, SphereRegion("s", (12.0, 12.0, 12.0), 16.0))
    n = stats.voxels
    assert n * 0.125 == pytest.approx(np.pi / 6 * 16**3, rel=0.01)
    assert stats.mean == pytest.approx(mean, abs=4 * sigma / np.sqrt(n))
    assert stats.sd == pytest.approx(sigma, abs=4 * sigma / np.sqrt(2 * (n - 1)))


def test_region_with_fewer_than_two_voxels_is_an_error():
    volume = grid()
    with pytest.raises(ValueError, match=r"region 'tiny' covers 1 voxel\(s\) of volume 'grid'"):
        region_statistics(volume, SphereRegion("tiny", (0.0, 0.0, 0.0), 0.6))
    with pytest.raises(ValueError, match="covers 0 voxel"):
        region_statistics(volume, BoxRegion("away", (500.0, 0.0, 0.0), (5.0, 5.0, 5.0)))
    with pytest.raises(ValueError, match="slice lies outside volume"):
        region_statistics(volume, CircleRegion("off", (0.0, 0.0, 90.0), 5.0))
    with pytest.raises(ValueError, match="diameter"):
        CircleRegion("neg", (0, 0, 0), -1)


def test_snr_formulas():
    assert snr.same_region_snr(300.0, 12.0) == 25.0
    assert snr.background_snr(300.0, 6.0) == 50.0
    assert snr.background_snr(300.0, 6.55, rayleigh=True) == pytest.approx(30.0)
    assert snr.pooled_cnr(100.0, 3.0, 60.0, 4.0) == pytest.approx(40.0 / np.sqrt(12.5))
    assert snr.pooled_cnr(60.0, 3.0, 100.0, 4.0) < 0  # signed: A - B, as in seed 000
    assert snr.background_cnr(60.0, 100.0, 8.0) == 5.0
    assert snr.contrast_ratio(150.0, 100.0) == 1.5
    with pytest.raises(ValueError, match="positive noise"):
        snr.same_region_snr(1.0, 0.0)
    with pytest.raises(ValueError, match="mean intensity is 0"):
        snr.contrast_ratio(1.0, 0.0)


def test_rayleigh_corrected_background_recovers_the_gaussian_sigma():
    rng = np.random.default_rng(11)
    sigma = 5.0
    magnitude = np.abs(rng.normal(0, sigma, 200000) + 1j * rng.normal(0, sigma, 200000))
    assert snr.noise_sigma(magnitude.std(ddof=1), rayleigh=True) == pytest.approx(sigma, rel=0.01)
    assert magnitude.mean() / 1.2533 == pytest.approx(sigma, rel=0.01)


def test_nemas_difference_image_snr_recovers_signal_over_sigma():
    rng = np.random.default_rng(5)
    signal, sigma = 200.0, 8.0
    a = signal + rng.normal(0, sigma, 20000)
    b = signal + rng.normal(0, sigma, 20000)
    value, mean, noise = snr.difference_image_snr(a, b)
    assert noise == pytest.approx(sigma, rel=0.02)
    assert value == pytest.approx(signal / sigma, rel=0.02)


def two_region_volume(name, brain=300.0, csf=900.0, background_sigma=5.0, sigma=10.0, seed=0, spacing=0.5):
    rng = np.random.default_rng(seed)
    shape = (int(20 / spacing),) * 3
    array = np.abs(rng.normal(0, background_sigma, shape) + 1j * rng.normal(0, background_sigma, shape))
    volume = Volume(array, make_ijk_to_ras((spacing,) * 3), name)
    centres = volume.ijk_to_ras_points(np.argwhere(np.ones(shape, bool))[:, ::-1]).reshape(shape + (3,))
    for value, x in ((brain, 6.0), (csf, 14.0)):
        inside = np.linalg.norm(centres - (x, 10.0, 10.0), axis=-1) <= 3.5
        volume.array[inside] = value + rng.normal(0, sigma, inside.sum())
    return volume


REGIONS = [
    CircleRegion("brain", (6.0, 10.0, 10.0), 5.0),
    CircleRegion("csf", (14.0, 10.0, 10.0), 5.0),
    BoxRegion("air", (10.0, 3.0, 10.0), (15.0, 4.0, 15.0)),
]


def test_measure_gives_one_row_per_volume_and_measurement_with_stated_formulas():
    volumes = [two_region_volume("DLR", spacing=0.5), two_region_volume("SR", spacing=1 / 3, seed=1)]
    line = LineSpec("csf line", np.array([[14.0, 3.0, 10.0], [14.0, 10.0, 10.0]]))  # air into CSF: an edge
    result = measure(
        volumes,
        lines=[line],
        regions=REGIONS,
        snrs=[SnrSpec("brain"), SnrSpec("csf", "air"), SnrSpec("csf", "air", rayleigh=True, name="SNR_R")],
        cnrs=[CnrSpec("csf", "brain"), CnrSpec("csf", "brain", "air")],
        contrast_ratios=[ContrastRatioSpec("csf", "brain")],
    )
    assert COLUMN_NAMES[:12] == ["volume", "measurement", "kind", "fwhm_mm", "erd_mm", "ers_per_mm", "mean",
                                 "sd", "voxels", "snr", "cnr", "contrast_ratio"]
    assert all(column.description for column in COLUMNS)
    assert len(result.rows) == 2 * 10
    rows = {(r["volume"], r["measurement"]): r for r in result.rows}
    for name, pixel_area in (("DLR", 0.25), ("SR", 1 / 9)):
        brain, csf, air = (rows[(name, region)] for region in ("brain", "csf", "air"))
        assert brain["voxels"] * pixel_area == pytest.approx(np.pi * 6.25, rel=0.06)
        assert brain["mean"] == pytest.approx(300.0, abs=5) and csf["mean"] == pytest.approx(900.0, abs=5)
        assert rows[(name, "SNR brain")]["snr"] == pytest.approx(brain["mean"] / brain["sd"])
        assert rows[(name, "SNR csf / air")]["snr"] == pytest.approx(csf["mean"] / air["sd"])
        assert rows[(name, "SNR_R")]["snr"] == pytest.approx(0.655 * csf["mean"] / air["sd"])
        assert rows[(name, "SNR_R")]["snr"] == pytest.approx(900.0 / 5.0, rel=0.05)  # Rayleigh background
        pooled = np.sqrt((csf["sd"] ** 2 + brain["sd"] ** 2) / 2)
        assert rows[(name, "CNR csf - brain")]["cnr"] == pytest.approx((csf["mean"] - brain["mean"]) / pooled)
        assert rows[(name, "CNR csf - brain / air")]["cnr"] == pytest.approx(
            (csf["mean"] - brain["mean"]) / air["sd"])
        assert rows[(name, "CR csf / brain")]["contrast_ratio"] == pytest.approx(csf["mean"] / brain["mean"])
        assert "0.655" in rows[(name, "SNR_R")]["method"]
        assert rows[(name, "csf line")]["polarity"] == "edge"
        assert np.isnan(rows[(name, "csf line")]["mean"])
    assert rows[("SR", "csf line")]["step_mm"] < rows[("DLR", "csf line")]["step_mm"]


def test_difference_snr_needs_repeats_on_one_grid():
    a = two_region_volume("A", seed=2)
    b = two_region_volume("B", seed=3)
    result = measure([a, b], regions=REGIONS[:1], difference_snrs=[DifferenceSnrSpec("A", "B", "brain")])
    row = result.rows[-1]
    assert row["kind"] == "difference_snr" and row["volume"] == "A - B"
    assert row["snr"] == pytest.approx(300.0 / 10.0, rel=0.25)  # ~100 voxels: statistical tolerance
    other = two_region_volume("C", spacing=1 / 3)
    with pytest.raises(ValueError, match="same voxel grid"):
        measure([a, other], regions=REGIONS[:1], difference_snrs=[DifferenceSnrSpec("A", "C", "brain")])


def test_a_failing_measurement_produces_no_rows():
    good = two_region_volume("good")
    small = Volume(np.ones((10, 10, 10)), make_ijk_to_ras((0.5, 0.5, 0.5)), "small")
    with pytest.raises(ValueError, match="small"):
        measure([good, small], regions=REGIONS)
    with pytest.raises(ValueError, match="unknown region 'gm'"):
        measure([good], regions=REGIONS, snrs=[SnrSpec("gm")])
    with pytest.raises(ValueError, match="unique"):
        measure([good, good], regions=REGIONS)
    with pytest.raises(ValueError, match="unique; repeated: brain"):
        measure([good], regions=REGIONS + [SphereRegion("brain", (6.0, 10.0, 10.0), 3.0)])
    constant = Volume(np.full((40, 40, 40), 7.0), make_ijk_to_ras((0.5, 0.5, 0.5)), "constant")
    with pytest.raises(ValueError, match="SNR brain on volume 'constant'.*positive noise"):
        measure([constant], regions=REGIONS, snrs=[SnrSpec("brain")])
    with pytest.raises(ValueError, match="flat"):
        measure([constant], lines=[LineSpec("l", np.array([[1.0, 1.0, 1.0], [5.0, 1.0, 1.0]]))])
    with pytest.raises(ValueError, match="non-empty 3D"):
        measure([Volume(np.zeros((0, 4, 4)), np.eye(4), "empty")], regions=REGIONS)


def test_rows_csv_is_written_atomically_in_column_order(tmp_path):
    result = measure([two_region_volume("DLR")], regions=REGIONS, snrs=[SnrSpec("brain")])
    path = tmp_path / "results.csv"
    path.write_text("old")
    write_rows_csv(result.rows, path)
    with open(path, newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == COLUMN_NAMES
    assert len(rows) == 1 + 4
    brain = dict(zip(rows[0], rows[1]))
    assert brain["measurement"] == "brain" and brain["fwhm_mm"] == "" and int(brain["voxels"]) > 50
    assert float(brain["mean"]) == pytest.approx(result.rows[0]["mean"], rel=1e-9)
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]
