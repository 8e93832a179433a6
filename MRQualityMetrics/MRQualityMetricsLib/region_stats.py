"""Region statistics: mean, SD with n - 1 (as ImageJ), voxel count, minimum and maximum."""

from dataclasses import dataclass

import numpy as np


@dataclass
class RegionStats:
    mean: float
    sd: float  # sample standard deviation, ddof = 1
    voxels: int
    minimum: float
    maximum: float


def region_values(volume, region) -> np.ndarray:
    """float64 intensities of the voxels whose centres lie inside the region (see regions.py)."""
    slices, block = region.block_mask(volume)
    return np.asarray(volume.array)[slices][block].astype(np.float64)


def statistics_of_values(values, name="region", volume_name="volume") -> RegionStats:
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        raise ValueError(
            f"region '{name}' covers {values.size} voxel(s) of volume '{volume_name}'; at least 2 are needed "
            "for a standard deviation (enlarge the region or check that it lies inside the volume)"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"region '{name}' contains non-finite voxel values in volume '{volume_name}'")
    return RegionStats(
        mean=float(values.mean()),
        sd=float(values.std(ddof=1)),
        voxels=int(values.size),
        minimum=float(values.min()),
        maximum=float(values.max()),
    )


def region_statistics(volume, region) -> RegionStats:
    return statistics_of_values(region_values(volume, region), region.name, volume.name)
