"""The bundled GE PD DICOM series for tests: edited copies of some slices, and checksums of test folders."""

from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "MRSuperRes/Resources/SampleData/GEBrainPD"


def copy_sample_slices(folder, indices, edit=None):
    """Write copies of the sample slices `indices` into `folder` (created); edit(dataset, position) may change tags
    first (position: 0, 1, ... in the order of `indices`)."""
    import pydicom

    folder = Path(folder)
    folder.mkdir()
    files = sorted(SAMPLE.glob("*.dcm"))
    for position, index in enumerate(indices):
        dataset = pydicom.dcmread(files[index])
        if edit is not None:
            edit(dataset, position)
        dataset.save_as(folder / files[index].name)
    return folder


def tree_checksums(folder):
    """SHA-256 of every file below `folder`, by relative path: proves a test left its inputs untouched."""
    from MRSuperResLib.model_catalog import sha256_of

    return {str(p.relative_to(folder)): sha256_of(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}
