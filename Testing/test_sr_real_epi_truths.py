"""scripts/real_epi_truths.py: the real EPI scans' first volumes as 3D NIfTI truths for `mrsuperres evaluate`."""

import sys
from pathlib import Path

import nibabel  # in the "eval" extra, which `make test` installs
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import real_epi_truths  # noqa: E402

from MRQualityMetricsLib.volume_io import read_volume  # noqa: E402


def _write_dev_scans(folder: Path) -> dict:
    """Small stand-ins for the four fetched files, each with a distinct array [i, j, k(, t)] and header affine."""
    rng = np.random.default_rng(4)
    sheared = np.diag([2.0, 2.0, 2.0, 1.0])
    sheared[1, 2] = 53.0  # the dipy test header's skewed slice axis
    headers = {
        "dipy/aniso_vox.nii.gz": ((10, 12, 5), np.diag([4.0, 4.0, 5.0, 1.0])),
        "dipy/test_piesno.nii.gz": ((9, 9, 4, 3), np.eye(4)),
        "dipy/S0_10slices.nii.gz": ((8, 11, 6), sheared),
        "nibabel/example4d.nii.gz": ((7, 8, 3, 2), np.diag([-2.0, 2.0, 2.2, 1.0])),
    }
    arrays = {}
    for file, (shape, affine) in headers.items():
        affine = affine.copy()
        affine[:3, 3] = (-10.0, 5.0, 20.0)
        data = rng.uniform(0, 1000, size=shape).astype(np.float32)
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        nibabel.save(nibabel.Nifti1Image(data, affine), str(folder / file))
        arrays[file] = (data, affine)
    return arrays


def test_first_volumes_become_3d_truths_with_the_stated_spacing(tmp_path):
    dev, output = tmp_path / "dev", tmp_path / "truths"
    arrays = _write_dev_scans(dev)
    assert real_epi_truths.main(["--dev", str(dev), "--output", str(output)]) == 0
    assert sorted(path.name for path in output.iterdir()) == sorted(f"{name}.nii.gz" for name in real_epi_truths.SCANS)
    for name, (file, spacing) in real_epi_truths.SCANS.items():
        data, affine = arrays[file]
        first = data[..., 0] if data.ndim == 4 else data
        volume = read_volume(output / f"{name}.nii.gz")
        np.testing.assert_allclose(volume.array, first.transpose(2, 1, 0))  # [k, j, i]
        # Voxel (i, j, k) lands where the header put it, or on the given axis-aligned spacing (the sheared file).
        expected = affine.copy() if spacing is None else np.diag([*spacing, 1.0])
        expected[:3, 3] = affine[:3, 3]
        corner = np.array([2.0, 3.0, 1.0, 1.0])
        np.testing.assert_allclose(volume.ijk_to_ras @ corner, expected @ corner, atol=1e-4)


def test_missing_scans_are_named(tmp_path, capsys):
    (tmp_path / "dipy").mkdir()
    with pytest.raises(SystemExit):
        real_epi_truths.main(["--dev", str(tmp_path), "--output", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert "aniso_vox.nii.gz" in error and "example4d.nii.gz" in error and "mrsuperres fetch-data" in error
    assert not (tmp_path / "out").exists()
