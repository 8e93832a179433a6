"""Four more real scanners for `mrsuperres evaluate`: the first volume of the real EPI brain scans that
`mrsuperres fetch-data` brings to data/dev (dipy 1.12.1 test files, nibabel 5.4.2's example4d), as 3D NIfTI truths.

They are T2-weighted EPI (b0 of diffusion series, fMRI) at 2-4 mm pixels, with their own noise and anatomy at the
finest scale of the grid, unlike the smooth templates (docs/evaluation/real-scans.md). Never used for training.

    python scripts/real_epi_truths.py --output data/dev/real-epi
    mrsuperres evaluate --volumes data/dev/real-epi/*.nii.gz --scale 1 2 3 --max-slices 8 --output real-epi-eval

Needs nibabel (in the "eval" extra): SimpleITK refuses S0_10slices, whose test-file header is sheared.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "MRQualityMetrics")]

from MRQualityMetricsLib.volume import Volume  # noqa: E402
from MRQualityMetricsLib.volume_io import write_volume  # noqa: E402

# name: (file under data/dev, in-plane and slice spacing in mm to use instead of the header's, or None to keep it)
SCANS = {
    "dipyAniso": ("dipy/aniso_vox.nii.gz", None),  # 4 x 4 x 5 mm
    "dipyPiesno": ("dipy/test_piesno.nii.gz", None),  # 96 x 96 x 14, 1 mm in its header
    # Stanford HARDI b0 (2 mm isotropic): dipy's test header shears the slices (53 mm apart along a skewed axis).
    "dipyS0": ("dipy/S0_10slices.nii.gz", (2.0, 2.0, 2.0)),
    "nibabelEPI": ("nibabel/example4d.nii.gz", None),  # 2 x 2 x 2.2 mm fMRI
}


def truth_volume(path: Path, name: str, spacing=None) -> Volume:
    """The first 3D volume of a NIfTI file as a Volume ([k, j, i] array, RAS geometry), optionally axis-aligned
    with the given spacing at the header's origin."""
    try:
        import nibabel
    except ImportError:
        raise SystemExit("real_epi_truths.py needs nibabel: pip install nibabel") from None
    image = nibabel.load(str(path))
    array = np.asarray(image.dataobj, dtype=np.float32)
    while array.ndim > 3:
        array = array[..., 0]
    ijk_to_ras = np.array(image.affine, dtype=float)
    if spacing is not None:
        ijk_to_ras[:3, :3] = np.diag(spacing)
    return Volume(array=np.ascontiguousarray(array.transpose(2, 1, 0)), ijk_to_ras=ijk_to_ras, name=name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=ROOT / "data" / "dev", help="folder of `mrsuperres fetch-data`'s real scans")
    parser.add_argument("--output", type=Path, required=True, help="folder for the 3D NIfTI truths")
    args = parser.parse_args(argv)
    missing = [str(args.dev / file) for file, _ in SCANS.values() if not (args.dev / file).is_file()]
    if missing:
        parser.error(f"not found: {', '.join(missing)} (run `mrsuperres fetch-data` first)")
    args.output.mkdir(parents=True, exist_ok=True)
    for name, (file, spacing) in SCANS.items():
        volume = truth_volume(args.dev / file, name, spacing)
        write_volume(volume, args.output / f"{name}.nii.gz")
        print(f"wrote {args.output / name}.nii.gz  {volume.array.shape[::-1]} (i x j x k)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
