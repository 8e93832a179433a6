"""A scalar volume with its physical geometry, independent of Slicer and of file formats.

Conventions shared by every library in this extension:
- ``array`` is indexed [k, j, i] (slice, row, column), like ``slicer.util.arrayFromVolume`` and
  ``SimpleITK.GetArrayFromImage``.
- ``ijk_to_ras`` maps homogeneous voxel indices (i, j, k, 1) to RAS millimetres, like
  ``vtkMRMLVolumeNode.GetIJKToRASMatrix``. Voxel centres sit at integer indices.
"""

from dataclasses import dataclass, field

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Volume:
    array: np.ndarray
    ijk_to_ras: np.ndarray
    name: str = "volume"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        self.ijk_to_ras = np.asarray(self.ijk_to_ras, dtype=float)
        if self.ijk_to_ras.shape != (4, 4):
            raise ValueError(f"{self.name}: IJK-to-RAS must be a 4x4 matrix, got shape {self.ijk_to_ras.shape}")

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size (i, j, k) in mm."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def directions(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit RAS directions of the i, j, k axes."""
        return self.ijk_to_ras[:3, :3] / self.spacing

    @property
    def origin(self) -> np.ndarray:
        """RAS position of voxel (0, 0, 0)."""
        return self.ijk_to_ras[:3, 3].copy()

    @property
    def shape_ijk(self) -> tuple:
        return tuple(reversed(self.array.shape[-3:]))

    @property
    def ras_to_ijk(self) -> np.ndarray:
        return np.linalg.inv(self.ijk_to_ras)

    def ras_to_ijk_points(self, points_ras) -> np.ndarray:
        points = np.atleast_2d(np.asarray(points_ras, dtype=float))
        homogeneous = np.c_[points, np.ones(len(points))]
        return (homogeneous @ self.ras_to_ijk.T)[:, :3]

    def ijk_to_ras_points(self, points_ijk) -> np.ndarray:
        points = np.atleast_2d(np.asarray(points_ijk, dtype=float))
        homogeneous = np.c_[points, np.ones(len(points))]
        return (homogeneous @ self.ijk_to_ras.T)[:, :3]

    def with_array(self, array, ijk_to_ras=None, name=None) -> "Volume":
        """A new volume sharing this one's metadata; the input is never modified."""
        return Volume(
            array=array,
            ijk_to_ras=self.ijk_to_ras.copy() if ijk_to_ras is None else ijk_to_ras,
            name=self.name if name is None else name,
            metadata=dict(self.metadata),
        )


def make_ijk_to_ras(spacing, directions=None, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Build an IJK-to-RAS matrix from spacing (i, j, k), direction columns and origin (RAS)."""
    directions = np.eye(3) if directions is None else np.asarray(directions, dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = directions * np.asarray(spacing, dtype=float)
    matrix[:3, 3] = origin
    return matrix


def volume_from_sitk(image, name="volume") -> Volume:
    """Convert a SimpleITK image (LPS physical space) to a Volume (RAS)."""
    import SimpleITK as sitk

    if image.GetDimension() != 3:
        raise ValueError(f"{name}: expected a 3D volume, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"{name}: expected a scalar volume, got {image.GetNumberOfComponentsPerPixel()} components per voxel "
            "(vector/RGB volumes are not supported)"
        )
    directions_lps = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    ijk_to_lps = make_ijk_to_ras(image.GetSpacing(), directions_lps, image.GetOrigin())
    return Volume(array=sitk.GetArrayFromImage(image), ijk_to_ras=LPS_TO_RAS @ ijk_to_lps, name=name)


def volume_to_sitk(volume: Volume):
    """Convert a Volume to a SimpleITK image (LPS physical space)."""
    import SimpleITK as sitk

    ijk_to_lps = LPS_TO_RAS @ volume.ijk_to_ras
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((ijk_to_lps[:3, :3] / spacing).flatten().tolist())
    image.SetOrigin(ijk_to_lps[:3, 3].tolist())
    return image
