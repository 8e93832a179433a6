"""Regions of interest defined in world RAS millimetres, rasterised on each volume's own voxel grid.

Inclusion rule, for every region: a voxel belongs to the region when its centre (integer IJK index mapped by
the volume's IJK-to-RAS matrix) lies inside the region's shape; boundary points count as inside (1e-6 mm
tolerance). The same markup therefore selects the matching anatomy on volumes of any resolution and orientation.

- BoxRegion: markups ROI box, any orientation: |axis_n . (x - centre)| <= size_n / 2 for the three axes.
- SphereRegion: |x - centre| <= diameter / 2.
- CircleRegion (ImageJ oval ROI on one slice): the slice axis is the voxel axis (i, j or k) most aligned with
  the plane normal (axial: S, coronal: A, sagittal: R); the slice is the one nearest the centre
  (round half up of the centre's continuous index along that axis). A voxel of that slice is inside when the
  physical distance, within the slice, between its centre and the centre projected onto the slice along the
  slice axis is <= diameter / 2. On an axis-aligned image this is exactly ImageJ's oval mask for an oval whose
  integer bounding box is (x, y, w, h) = (ci + 0.5 - w/2, cj + 0.5 - h/2, d/sx, d/sy), ci, cj being the
  centre's pixel indices (ImageJ pixel corners are integers, pixel centres at +0.5; ImageJ 1.53 rounds oval
  bounding boxes to whole pixels, so only circles whose box falls on whole pixels can be reproduced there).
- PolygonRegion (planar closed curve): like the circle, one slice (the one nearest the centroid along the voxel
  axis most aligned with the curve's plane normal); inside = voxel centre inside the curve projected onto that
  slice along the slice axis (even-odd rule). Curves deviating from their best-fit plane by more than 1 % of
  their size are rejected.
- MaskRegion: any voxel mask computed per volume (e.g. a segment rasterised on the volume's grid).
"""

import numpy as np

_EPS_MM = 1e-6
PLANE_NORMALS = {"axial": (0.0, 0.0, 1.0), "coronal": (0.0, 1.0, 0.0), "sagittal": (1.0, 0.0, 0.0)}


def _vector3(value, what, name):
    vector = np.asarray(value, dtype=float).reshape(-1)
    if vector.shape != (3,) or not np.all(np.isfinite(vector)):
        raise ValueError(f"region '{name}': {what} must be 3 finite numbers, got {value!r}")
    return vector


def _positive(value, what, name):
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"region '{name}': {what} must be a positive number of mm, got {value}")
    return value


def _block_slices(volume, corners_ras):
    """Array slices [k, j, i] of the voxel block containing the RAS points (clipped to the volume)."""
    ijk = volume.ras_to_ijk_points(corners_ras)
    low = np.floor(ijk.min(axis=0) - 1e-6).astype(int)
    high = np.ceil(ijk.max(axis=0) + 1e-6).astype(int) + 1
    size = np.asarray(volume.shape_ijk)
    low, high = np.clip(low, 0, size), np.clip(high, 0, size)
    return tuple(slice(low[axis], high[axis]) for axis in (2, 1, 0))


def _block_centres_ras(volume, slices):
    """RAS coordinates (shape block + (3,)) of the voxel centres of an array block."""
    k, j, i = np.meshgrid(*[np.arange(s.start, s.stop) for s in slices], indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).astype(float)
    return ijk @ volume.ijk_to_ras[:3, :3].T + volume.ijk_to_ras[:3, 3]


def slice_axis_for_normal(volume, normal_ras) -> int:
    """Index (0=i, 1=j, 2=k) of the voxel axis most aligned with a RAS direction."""
    alignment = np.abs(volume.directions.T @ (np.asarray(normal_ras, float) / np.linalg.norm(normal_ras)))
    return int(np.argmax(alignment))


class Region:
    """A named region; subclasses implement block_mask(volume) -> (array slices, boolean mask of that block)."""

    name: str

    def block_mask(self, volume):
        raise NotImplementedError

    def mask(self, volume) -> np.ndarray:
        slices, block = self.block_mask(volume)
        full = np.zeros(np.asarray(volume.array).shape, dtype=bool)
        full[slices] = block
        return full


class BoxRegion(Region):
    def __init__(self, name, center_ras, size_mm, axes_ras=None):  # axes_ras None: RAS-aligned box
        self.name = name
        self.center_ras = _vector3(center_ras, "centre", name)
        size = np.asarray(size_mm, dtype=float).reshape(-1)
        if size.shape != (3,) or not np.all(np.isfinite(size)) or np.any(size <= 0):
            raise ValueError(f"region '{name}': box size must be 3 positive numbers of mm, got {size_mm!r}")
        self.size_mm = size
        axes = np.eye(3) if axes_ras is None else np.asarray(axes_ras, dtype=float)
        if axes.shape != (3, 3) or not np.all(np.isfinite(axes)):
            raise ValueError(f"region '{name}': box axes must be a 3x3 matrix (columns = axes)")
        axes = axes / np.linalg.norm(axes, axis=0)
        if not np.allclose(axes.T @ axes, np.eye(3), atol=1e-4):
            raise ValueError(f"region '{name}': box axes must be orthogonal")
        self.axes_ras = axes

    def corners_ras(self):
        signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T
        return self.center_ras + (signs * self.size_mm / 2) @ self.axes_ras.T

    def block_mask(self, volume):
        slices = _block_slices(volume, self.corners_ras())
        local = (_block_centres_ras(volume, slices) - self.center_ras) @ self.axes_ras
        return slices, np.all(np.abs(local) <= self.size_mm / 2 + _EPS_MM, axis=-1)


class SphereRegion(Region):
    def __init__(self, name, center_ras, diameter_mm):
        self.name = name
        self.center_ras = _vector3(center_ras, "centre", name)
        self.diameter_mm = _positive(diameter_mm, "diameter", name)

    def block_mask(self, volume):
        radius = self.diameter_mm / 2
        slices = _block_slices(volume, BoxRegion("", self.center_ras, [self.diameter_mm] * 3).corners_ras())
        distance = np.linalg.norm(_block_centres_ras(volume, slices) - self.center_ras, axis=-1)
        return slices, distance <= radius + _EPS_MM


def _single_slice(volume, axis, index_along_axis, name):
    """Array slices selecting one voxel slice (axis 0=i, 1=j, 2=k), or ValueError if outside the volume."""
    index = int(np.floor(index_along_axis + 0.5))
    if not 0 <= index < volume.shape_ijk[axis]:
        raise ValueError(f"region '{name}': its slice lies outside volume '{volume.name}'")
    slices = [slice(0, n) for n in np.asarray(volume.array).shape]
    slices[2 - axis] = slice(index, index + 1)
    return slices


def _in_slice_offsets(volume, slices, axis, point_ijk):
    """RAS offsets, within the slice, from the point (projected along the slice axis) to each voxel centre."""
    k, j, i = np.meshgrid(*[np.arange(s.start, s.stop) for s in slices], indexing="ij")
    delta = np.stack([i, j, k], axis=-1).astype(float) - point_ijk
    delta[..., axis] = 0.0
    return delta @ volume.ijk_to_ras[:3, :3].T


class CircleRegion(Region):
    def __init__(self, name, center_ras, diameter_mm, plane="axial"):
        self.name = name
        self.center_ras = _vector3(center_ras, "centre", name)
        self.diameter_mm = _positive(diameter_mm, "diameter", name)
        if plane not in PLANE_NORMALS:
            raise ValueError(f"region '{name}': plane must be one of {sorted(PLANE_NORMALS)}, got '{plane}'")
        self.plane = plane

    def block_mask(self, volume):
        axis = slice_axis_for_normal(volume, PLANE_NORMALS[self.plane])
        centre_ijk = volume.ras_to_ijk_points(self.center_ras)[0]
        slices = _single_slice(volume, axis, centre_ijk[axis], self.name)
        # Restrict the in-plane extent to the circle's bounding box (plus a voxel) for speed; the pseudo-inverse
        # gives the largest index offset a point within the radius can have, even for sheared axes.
        in_plane = [a for a in (0, 1, 2) if a != axis]
        unmix = np.linalg.pinv(volume.ijk_to_ras[:3, in_plane])
        for row, other in zip(unmix, in_plane):
            reach = self.diameter_mm / 2 * np.linalg.norm(row) + 1
            low = max(0, int(np.floor(centre_ijk[other] - reach)))
            high = min(volume.shape_ijk[other], int(np.ceil(centre_ijk[other] + reach)) + 1)
            slices[2 - other] = slice(low, max(low, high))
        slices = tuple(slices)
        offsets = _in_slice_offsets(volume, slices, axis, centre_ijk)
        return slices, np.linalg.norm(offsets, axis=-1) <= self.diameter_mm / 2 + _EPS_MM


def _points_in_polygon(points, polygon):
    """Even-odd rule for 2D points (m, 2) against a closed polygon (n, 2)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return np.count_nonzero(straddles & (x < x_cross), axis=1) % 2 == 1


class PolygonRegion(Region):
    def __init__(self, name, points_ras):
        self.name = name
        points = np.asarray(points_ras, dtype=float)
        if points.ndim != 2 or points.shape[1] != 3 or not np.all(np.isfinite(points)):
            raise ValueError(f"region '{name}': closed curve points must be an (n, 3) array of finite numbers")
        if len(points) > 1 and np.allclose(points[0], points[-1]):
            points = points[:-1]  # a closed polyline may repeat its first point
        if len(points) < 3:
            raise ValueError(f"region '{name}': a closed curve needs at least 3 distinct points")
        centred = points - points.mean(axis=0)
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        extent = float(np.ptp(points, axis=0).max())
        if singular[1] <= 1e-9 * max(extent, 1.0):
            raise ValueError(f"region '{name}': the closed curve encloses no area (its points are collinear)")
        deviation = float(np.abs(centred @ vt[2]).max())
        if deviation > 0.01 * extent:
            raise ValueError(
                f"region '{name}': the closed curve is not planar (points deviate {deviation:.2f} mm "
                "from their best-fit plane)"
            )
        self.points_ras = points
        self.normal_ras = vt[2]

    def block_mask(self, volume):
        axis = slice_axis_for_normal(volume, self.normal_ras)
        points_ijk = volume.ras_to_ijk_points(self.points_ras)
        slices = _single_slice(volume, axis, points_ijk[:, axis].mean(), self.name)
        in_plane = [a for a in (0, 1, 2) if a != axis]
        for other in in_plane:
            low = max(0, int(np.floor(points_ijk[:, other].min())))
            high = min(volume.shape_ijk[other], int(np.ceil(points_ijk[:, other].max())) + 1)
            slices[2 - other] = slice(low, max(low, high))
        slices = tuple(slices)
        k, j, i = np.meshgrid(*[np.arange(s.start, s.stop) for s in slices], indexing="ij")
        centres = np.stack([i, j, k], axis=-1).reshape(-1, 3)[:, in_plane].astype(float)
        inside = _points_in_polygon(centres, points_ijk[:, in_plane])
        return slices, inside.reshape(k.shape)


class MaskRegion(Region):
    def __init__(self, name, mask_function):
        if not callable(mask_function):
            raise ValueError(f"region '{name}': mask_function must be callable (volume -> boolean array)")
        self.name = name
        self.mask_function = mask_function

    def block_mask(self, volume):
        mask = np.asarray(self.mask_function(volume))
        shape = np.asarray(volume.array).shape
        if mask.shape != shape:
            raise ValueError(
                f"region '{self.name}': mask shape {mask.shape} does not match volume "
                f"'{volume.name}' shape {shape}"
            )
        return tuple(slice(0, n) for n in shape), mask.astype(bool)
