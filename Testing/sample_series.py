"""Copies of slices of the bundled GE PD DICOM series, for tests that need a small or edited series."""

from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "MRSuperRes/Resources/SampleData/GEBrainPD"


def copy_sample_slices(folder, indices, edit=None):
    """Write copies of the sample slices `indices` into `folder` (created), optionally edited by edit(dataset).

    The empty (0000,0000) element of the sample files is dropped (pydicom cannot write it); pixels and
    geometry are unchanged.
    """
    import pydicom

    folder = Path(folder)
    folder.mkdir()
    files = sorted(SAMPLE.glob("*.dcm"))
    for index in indices:
        dataset = pydicom.dcmread(files[index])
        for tag in [t for t in dataset.keys() if t.group == 0]:
            del dataset[tag]
        if edit is not None:
            edit(dataset)
        dataset.save_as(folder / files[index].name)
    return folder
