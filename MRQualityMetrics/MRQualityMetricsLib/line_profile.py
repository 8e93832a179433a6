"""Intensity profiles along a line or polyline given in world RAS millimetres.

Sampling rules (identical for every volume, whatever its resolution or orientation):
- The polyline is resampled at equal physical steps along its length, both end points included. The step is
  the largest value <= ``step_mm`` that divides the length into whole steps; by default ``step_mm`` is
  0.1 x the smallest voxel spacing of the volume, so every volume is sampled at <= 0.1 voxel.
- Each sample position is mapped to continuous voxel indices with the volume's RAS-to-IJK matrix, so oblique
  and left-handed IJK-to-RAS matrices and anisotropic spacing need no special handling.
- Values come from interpolation on a float64 copy of the voxels (integer images are never rounded):
  "quintic" (the default: 5th-order B-spline, an interpolating spline close to band-limited sinc
  interpolation, so a Gaussian of sigma = 1 voxel keeps its FWHM within ~1.5 % and sigma >= 1.2 voxels within
  0.2 %), "cubic" (3rd-order B-spline) or "linear" (trilinear; bilinear within a slice is what ImageJ's Plot
  Profile does, and it widens one-voxel structures by 4-10 %). The splines pass through the voxel values, so
  at voxel centres all three agree with ImageJ.
- Inside rule: a voxel covers its centre +- 0.5 voxel, so a point is inside when every continuous index lies
  in [-0.5, n - 0.5]. In the outer half-voxel the edge voxel value is used (no extrapolation).
ImageJ equivalence (verified against ImageJ 1.53t in Testing/test_metrics_imagej.py): getProfile() of
makeLine(x1, y1, x2, y2) holds round(length) + 1 bilinear samples at equal steps, where the coordinate x = i is
the centre of pixel column i; sampling our volume at the same points gives the same values.
"""

from dataclasses import dataclass

import numpy as np

INTERPOLATION_ORDERS = {"linear": 1, "cubic": 3, "quintic": 5}
DEFAULT_INTERPOLATION = "quintic"
DEFAULT_STEP_FRACTION = 0.1
_INSIDE_TOLERANCE = 1e-6  # voxels; absorbs rounding when a point sits exactly on the outer boundary


@dataclass
class Profile:
    distance_mm: np.ndarray  # (n,) from the first point, along the (poly)line
    intensity: np.ndarray  # (n,) float64
    points_ras: np.ndarray  # (n, 3)


def _as_polyline(points_ras, name):
    points = np.asarray(points_ras, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 2:
        raise ValueError(f"line '{name}': expected at least 2 points of 3 coordinates, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"line '{name}': point coordinates must be finite numbers")
    return points


def polyline_length(points_ras) -> float:
    points = np.asarray(points_ras, dtype=float)
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def resample_polyline(points_ras, step_mm):
    """Points at equal arc-length steps (<= step_mm) along a polyline; returns (distances, points)."""
    points = np.asarray(points_ras, dtype=float)
    cumulative = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    length = cumulative[-1]
    steps = max(1, int(np.ceil(length / step_mm - 1e-9)))
    distances = np.linspace(0.0, length, steps + 1)
    # Drop zero-length segments so that np.interp sees strictly increasing abscissae.
    keep = np.r_[True, np.diff(cumulative) > 0]
    resampled = np.column_stack([np.interp(distances, cumulative[keep], points[keep, axis]) for axis in range(3)])
    return distances, resampled


def _outside_mask(volume, ijk):
    upper = np.asarray(volume.shape_ijk, dtype=float) - 0.5
    return np.any((ijk < -0.5 - _INSIDE_TOLERANCE) | (ijk > upper + _INSIDE_TOLERANCE), axis=1)


def _format_ras(point):
    return "(" + ", ".join(f"{value:.2f}" for value in point) + ") RAS"


def check_points_inside(volume, points_ras, distances, name="line"):
    """ValueError naming the line, volume and offending part when samples fall outside the volume."""
    outside = _outside_mask(volume, volume.ras_to_ijk_points(points_ras))
    if not outside.any():
        return
    where = []
    if outside[0]:
        where.append(f"start point {_format_ras(points_ras[0])}")
    if outside[-1]:
        where.append(f"end point {_format_ras(points_ras[-1])}")
    if where:
        detail = " and ".join(where) + (" lies" if len(where) == 1 else " lie")
    else:
        first, last = distances[outside][[0, -1]]
        detail = f"part of it (from {first:.2f} to {last:.2f} mm along the line) lies"
    raise ValueError(f"line '{name}': {detail} outside volume '{volume.name}'")


def interpolate_at_points(volume, points_ras, interpolation=DEFAULT_INTERPOLATION):
    """Interpolated float64 intensities at RAS points (no bounds check; edge values beyond the edge)."""
    from scipy import ndimage

    if interpolation not in INTERPOLATION_ORDERS:
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATION_ORDERS)}, got '{interpolation}'")
    order = INTERPOLATION_ORDERS[interpolation]
    array = np.asarray(volume.array)
    if array.ndim != 3:
        raise ValueError(f"volume '{volume.name}': expected a 3D scalar array, got shape {array.shape}")
    ijk = volume.ras_to_ijk_points(points_ras)
    kji = ijk[:, ::-1]
    # Work on the sub-block the samples touch to keep large volumes cheap. The B-spline prefilter is global,
    # but its boundary influence decays as 0.268^n (cubic) or 0.431^n (quintic): 12/20 extra voxels make
    # cropping invisible.
    margin = {1: 2, 3: 12, 5: 20}[order]
    low = np.maximum(np.floor(kji.min(axis=0)).astype(int) - margin, 0)
    high = np.minimum(np.ceil(kji.max(axis=0)).astype(int) + margin + 1, array.shape)
    block = array[low[0] : high[0], low[1] : high[1], low[2] : high[2]].astype(np.float64)
    coordinates = (kji - low).T
    return ndimage.map_coordinates(block, coordinates, order=order, mode="nearest", prefilter=order > 1)


def sample_line(volume, points_ras, step_mm=None, name="line", interpolation=DEFAULT_INTERPOLATION) -> Profile:
    """Sample a line (2 points) or polyline (its interpolated points) at equal physical steps."""
    points = _as_polyline(points_ras, name)
    length = polyline_length(points)
    if length <= 0:
        raise ValueError(f"line '{name}': has zero length (its points coincide)")
    if step_mm is None:
        step_mm = DEFAULT_STEP_FRACTION * float(np.min(volume.spacing))
    if not np.isfinite(step_mm) or step_mm <= 0:
        raise ValueError(f"line '{name}': sampling step must be a positive number of mm, got {step_mm}")
    distances, samples = resample_polyline(points, step_mm)
    check_points_inside(volume, samples, distances, name)
    intensity = interpolate_at_points(volume, samples, interpolation)
    return Profile(distance_mm=distances, intensity=intensity, points_ras=samples)
