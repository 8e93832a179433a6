"""Agreement with ImageJ (the tool the seed studies measured with), on axis-aligned 2D images.

One ImageJ run (Testing/imagej/metrics_agreement.ijm, under xvfb-run) measures every case. Conventions verified here:
- getProfile() on makeLine(x1, y1, x2, y2) returns n = round(length) + 1 bilinear samples at equal steps from
  (x1, y1) to (x2, y2), where the integer coordinate x is the centre of pixel column x (no +0.5 offset for
  macro lines). Our profile sampled at those RAS positions gives the same values.
- makeOval(x, y, w, h) with an integer bounding box selects the pixels whose centres (x + 0.5, y + 0.5 in
  ImageJ's corner coordinates) lie inside the ellipse: exactly our CircleRegion centred at pixel index
  (x + w/2 - 0.5, y + h/2 - 0.5) with diameter w * sx = h * sy.
"""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from MRQualityMetricsLib.edge_metrics import sharpness_from_profile
from MRQualityMetricsLib.line_profile import interpolate_at_points, sample_line
from MRQualityMetricsLib.region_stats import region_statistics
from MRQualityMetricsLib.regions import CircleRegion
from MRQualityMetricsLib.volume import Volume, make_ijk_to_ras

MACRO = Path(__file__).resolve().parent / "imagej" / "metrics_agreement.ijm"
IMAGEJ_JAR = Path(os.environ.get("IMAGEJ_JAR", "/usr/share/java/ij.jar"))
JAVA = shutil.which("java")
XVFB_RUN = shutil.which("xvfb-run")  # ImageJ's Raw... importer builds menus, which needs a (virtual) display

TEXTURE_LINES = [(5, 10, 40, 10), (7.5, 3.25, 7.5, 50.75), (3.3, 4.1, 52.7, 41.9), (60, 2, 10, 55)]
RIDGE_LINES = [(10, 20, 50, 20), (12, 5.5, 48, 30.2)]
OVALS = [(10, 10, 6, 6), (20, 11, 7, 7), (30, 30, 8, 8), (5, 40, 9, 9), (40, 5, 10, 10)]
ANISOTROPIC_OVAL = (22, 45, 10, 8)  # a 5 mm circle on 0.5 x 0.625 mm pixels
RIDGE_SIGMA_PX = 4.0

pytestmark = pytest.mark.skipif(
    JAVA is None or not IMAGEJ_JAR.is_file(), reason="ImageJ (ij.jar) and java are not installed (make system-deps)"
)


def image_volume(array, spacing=(0.5, 0.5)):
    """A one-slice volume whose i/j axes are ImageJ's x/y pixel axes."""
    return Volume(array[np.newaxis].astype(np.float64), make_ijk_to_ras((*spacing, 1.0), origin=(-7.0, 3.0, 2.0)))


def pixel_to_ras(volume, xy):
    xy = np.atleast_2d(np.asarray(xy, float))
    return volume.ijk_to_ras_points(np.c_[xy, np.zeros(len(xy))])


@pytest.fixture(scope="module")
def imagej(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imagej")
    rng = np.random.default_rng(42)
    texture = rng.uniform(0, 1000, (56, 64)).astype(np.float32)
    x = np.arange(64)
    ridge = np.tile(100 + 500 * np.exp(-((x - 30.3) ** 2) / (2 * RIDGE_SIGMA_PX**2)), (48, 1)).astype(np.float32)
    texture.astype("<f4").tofile(folder / "texture.raw")
    ridge.astype("<f4").tofile(folder / "ridge.raw")
    cases = [f"image {folder / 'texture.raw'} 64 56"]
    cases += [f"line {' '.join(map(str, line))}" for line in TEXTURE_LINES]
    cases += [f"oval {' '.join(map(str, box))}" for box in OVALS + [ANISOTROPIC_OVAL]]
    cases += [f"image {folder / 'ridge.raw'} 64 48"]
    cases += [f"line {' '.join(map(str, line))}" for line in RIDGE_LINES]
    (folder / "cases.txt").write_text("\n".join(cases) + "\n")
    command = [JAVA, "-jar", str(IMAGEJ_JAR), "-batch", str(MACRO), str(folder / "cases.txt")]
    command = [XVFB_RUN, "-a"] + command if XVFB_RUN else command[:1] + ["-Djava.awt.headless=true"] + command[1:]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=180)
    results = []
    for line in completed.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] in ("LINE", "OVAL"):
            results.append((fields[0], [float(v) for v in fields[2:]]))
    expected = len(TEXTURE_LINES) + len(OVALS) + 1 + len(RIDGE_LINES)
    assert len(results) == expected, f"ImageJ output incomplete:\n{completed.stdout}\n{completed.stderr}"
    lines = [values for kind, values in results if kind == "LINE"]
    ovals = [values for kind, values in results if kind == "OVAL"]
    return dict(texture=texture, ridge=ridge, texture_profiles=lines[: len(TEXTURE_LINES)],
                ridge_profiles=lines[len(TEXTURE_LINES):], ovals=ovals)


def imagej_positions(line, count):
    start, end = np.array(line[:2], float), np.array(line[2:], float)
    return start + np.outer(np.arange(count) / (count - 1), end - start)


def test_profiles_match_imagej_sample_for_sample(imagej):
    volume = image_volume(imagej["texture"])
    for line, values in zip(TEXTURE_LINES, imagej["texture_profiles"]):
        count, profile = int(values[0]), np.array(values[1:])
        length = np.hypot(line[2] - line[0], line[3] - line[1])
        assert count == round(length) + 1
        # ImageJ-compatible mode: bilinear, like getProfile().
        ours = interpolate_at_points(volume, pixel_to_ras(volume, imagej_positions(line, count)), "linear")
        np.testing.assert_allclose(ours, profile, atol=1e-3, rtol=1e-6)


def test_fwhm_matches_imagej(imagej):
    volume = image_volume(imagej["ridge"])
    for line, values, tolerance in zip(RIDGE_LINES, imagej["ridge_profiles"], (1e-6, 0.03)):
        count, profile = int(values[0]), np.array(values[1:])
        step_mm = 0.5 * np.hypot(line[2] - line[0], line[3] - line[1]) / (count - 1)
        imagej_fwhm = sharpness_from_profile(np.arange(count) * step_mm, profile).fwhm_mm
        positions = pixel_to_ras(volume, imagej_positions(line, count))
        same_samples = interpolate_at_points(volume, positions, "linear")
        assert sharpness_from_profile(np.arange(count) * step_mm, same_samples).fwhm_mm == pytest.approx(
            imagej_fwhm, rel=1e-6)
        fine = sample_line(volume, positions[[0, -1]], interpolation="linear")  # 0.1-voxel steps
        assert sharpness_from_profile(fine.distance_mm, fine.intensity).fwhm_mm == pytest.approx(
            imagej_fwhm, rel=tolerance)
        # and both measure the ridge: FWHM 2.3548 sigma projected on the line
        cosine = abs(line[2] - line[0]) / np.hypot(line[2] - line[0], line[3] - line[1])
        assert imagej_fwhm * cosine == pytest.approx(2.3548 * RIDGE_SIGMA_PX * 0.5, rel=0.03)


def test_circles_match_imagej_ovals(imagej):
    cases = [(box, (0.5, 0.5)) for box in OVALS] + [(ANISOTROPIC_OVAL, (0.5, 0.625))]
    for (box, spacing), (count, mean, sd) in zip(cases, imagej["ovals"]):
        x, y, w, h = box
        volume = image_volume(imagej["texture"], spacing)
        assert w * spacing[0] == pytest.approx(h * spacing[1])
        centre = pixel_to_ras(volume, [x + w / 2 - 0.5, y + h / 2 - 0.5])[0]
        stats = region_statistics(volume, CircleRegion("oval", centre, w * spacing[0]))
        assert stats.voxels == int(count)
        assert stats.mean == pytest.approx(mean, rel=1e-7)
        assert stats.sd == pytest.approx(sd, rel=1e-6)
