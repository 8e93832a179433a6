"""Analytic phantoms for tests and evaluation, with exact partial-volume (anti-aliased) edges.

Images are built from indicator functions in physical millimetres, averaged over a sub-voxel grid, so an edge
at a non-integer position is represented by the area fraction of each voxel it cuts (its 50 % level lies
exactly at the edge). All 2D images are [rows, cols]; 3D volumes are [k, j, i] with an IJK-to-RAS matrix.
"""

import math
from dataclasses import dataclass

import numpy as np

from MRQualityMetricsLib.volume import make_ijk_to_ras

_SUBSAMPLES = 4


def box_profile(n: int, low: float, high: float) -> np.ndarray:
    """1D fraction of each voxel [x - 0.5, x + 0.5] inside [low, high] (voxel-index units)."""
    x = np.arange(n, dtype=float)
    return np.clip(np.minimum(x + 0.5, high) - np.maximum(x - 0.5, low), 0.0, 1.0)


def supersampled(shape, spacing_mm, indicator, subsamples: int = _SUBSAMPLES) -> np.ndarray:
    """Mean of indicator(row_mm, col_mm) over subsamples x subsamples points per pixel of a 2D grid.

    Pixel (r, c) is centred at (r * spacing[0], c * spacing[1]) mm.
    """
    rows, cols = shape
    offsets = (np.arange(subsamples) + 0.5) / subsamples - 0.5
    row_mm = ((np.arange(rows)[:, None] + offsets[None, :]) * spacing_mm[0]).ravel()
    col_mm = ((np.arange(cols)[:, None] + offsets[None, :]) * spacing_mm[1]).ravel()
    values = indicator(row_mm[:, None], col_mm[None, :]).astype(np.float64)
    return values.reshape(rows, subsamples, cols, subsamples).mean(axis=(1, 3))


def disk(center_mm, radius_mm):
    return lambda r, c: (r - center_mm[0]) ** 2 + (c - center_mm[1]) ** 2 <= radius_mm**2


def square(center_mm, half_side_mm):
    return lambda r, c: (np.abs(r - center_mm[0]) <= half_side_mm) & (np.abs(c - center_mm[1]) <= half_side_mm)


def stack(image2d, slices: int) -> np.ndarray:
    return np.repeat(np.asarray(image2d, dtype=np.float32)[None], slices, axis=0)


def flat_shapes(shape=(128, 128), spacing_mm=(1.0, 1.0), level: float = 100.0) -> np.ndarray:
    """Piecewise-flat 2D phantom: a large disk with smaller brighter/darker disks and squares inside."""
    rows, cols = shape
    height, width = rows * spacing_mm[0], cols * spacing_mm[1]
    centre = (height / 2, width / 2)
    size = min(height, width)
    image = 0.6 * level * supersampled(shape, spacing_mm, disk(centre, 0.42 * size))
    inserts = [
        (disk((centre[0] - 0.18 * size, centre[1] - 0.15 * size), 0.09 * size), 0.4 * level),
        (disk((centre[0] + 0.17 * size, centre[1] + 0.12 * size), 0.06 * size), -0.4 * level),
        (square((centre[0] + 0.12 * size, centre[1] - 0.2 * size), 0.07 * size), 0.3 * level),
        (square((centre[0] - 0.15 * size, centre[1] + 0.17 * size), 0.05 * size), -0.3 * level),
    ]
    for indicator, delta in inserts:
        image += delta * supersampled(shape, spacing_mm, indicator)
    return image


@dataclass
class SharpnessPhantom:
    """A thin bright strip on a flat disk; profiles across the strip give FWHM and ERD."""

    image: np.ndarray  # 2D [rows, cols]
    center_mm: tuple  # (row_mm, col_mm) of the strip centre
    normal: tuple  # unit (row, col) direction across the strip
    width_mm: float
    level: float  # strip intensity; the disk is level / 2


def sharpness_phantom(shape, spacing_mm, level=100.0, width_mm=None, angle_degrees=12.0) -> SharpnessPhantom:
    """Strip of width `width_mm` (default 2 pixels) through the disk centre, tilted by `angle_degrees`.

    The strip (level) lies on a disk at level / 2, so a profile across it is a peak between two flat sides.
    """
    rows, cols = shape
    pixel = float(max(spacing_mm))
    width_mm = 2 * pixel if width_mm is None else float(width_mm)
    centre = ((rows - 1) / 2 * spacing_mm[0] + 0.3 * spacing_mm[0], (cols - 1) / 2 * spacing_mm[1] + 0.2 * spacing_mm[1])
    angle = math.radians(angle_degrees)
    normal = (math.sin(angle), math.cos(angle))
    radius = 0.42 * min(rows * spacing_mm[0], cols * spacing_mm[1])

    def strip(r, c):
        return np.abs((r - centre[0]) * normal[0] + (c - centre[1]) * normal[1]) <= width_mm / 2

    background = supersampled(shape, spacing_mm, disk(centre, radius))
    inside = supersampled(shape, spacing_mm, lambda r, c: strip(r, c) & disk(centre, radius)(r, c))
    image = level * (0.5 * background + 0.5 * inside)
    return SharpnessPhantom(image=image, center_mm=centre, normal=normal, width_mm=width_mm, level=float(level))


def lesion_phantom(shape_kji=(9, 96, 96), spacing_mm=(1.0, 1.0, 1.0), level=100.0, contrast=0.5, diameter_mm=3.0,
                   per_side=1, separation_mm=None):
    """3D flat disk (cylinder) at level/2 with per_side x per_side spheres of `diameter_mm` in the middle slice.

    Sphere intensity: level/2 * (1 + contrast). spacing_mm is (i, j, k). Lesion centres sit a quarter voxel off
    the grid, `separation_mm` apart (default: a quarter of the in-plane field of view).
    Returns (array [k, j, i], ijk_to_ras, list of centre voxels (i, j, k) as floats).
    """
    slices, rows, cols = shape_kji
    si, sj, sk = spacing_mm
    base = 0.5 * level
    cylinder = supersampled((rows, cols), (sj, si), disk(((rows - 1) / 2 * sj, (cols - 1) / 2 * si), 0.4 * min(rows * sj, cols * si)))
    volume = stack(base * cylinder, slices).astype(np.float64)
    separation = 0.25 * min(rows * sj, cols * si) if separation_mm is None else separation_mm
    steps = np.arange(per_side) - (per_side - 1) / 2
    centres = [np.array([(cols - 1) / 2 + 0.25 + a * separation / si, (rows - 1) / 2 + 0.25 + b * separation / sj,
                         (slices - 1) / 2]) for b in steps for a in steps]
    radius = diameter_mm / 2
    offsets = (np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES - 0.5
    reach = int(math.ceil(radius / min(spacing_mm))) + 1
    for centre in centres:
        ci, cj, ck = np.round(centre).astype(int)
        # Sphere occupancy by supersampling in 3D over a small neighbourhood only.
        for k in range(max(0, ck - reach), min(slices, ck + reach + 1)):
            for j in range(max(0, cj - reach), min(rows, cj + reach + 1)):
                for i in range(max(0, ci - reach), min(cols, ci + reach + 1)):
                    dz = (k + offsets[:, None, None] - centre[2]) * sk
                    dy = (j + offsets[None, :, None] - centre[1]) * sj
                    dx = (i + offsets[None, None, :] - centre[0]) * si
                    volume[k, j, i] += base * contrast * np.mean(dx**2 + dy**2 + dz**2 <= radius**2)
    return volume.astype(np.float32), make_ijk_to_ras(spacing_mm), centres


def rayleigh_noise(shape, sigma=1.0, seed=0) -> np.ndarray:
    """Magnitude of complex Gaussian noise (the background of a magnitude image)."""
    rng = np.random.default_rng(seed)
    return np.hypot(rng.normal(0, sigma, shape), rng.normal(0, sigma, shape)).astype(np.float32)
