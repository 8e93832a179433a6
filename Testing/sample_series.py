"""The bundled GE PD DICOM series for tests: edited copies of some slices (also as a scanner would zero-fill them
from a smaller matrix), and checksums of test folders."""

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


def zero_filled_slices(indices, acquired, snr, seed=1):
    """The sample's slices `indices` (in name order, which is position order) acquired on an `acquired` (rows,
    columns) matrix with noise at `snr` and zero-filled back onto their 256 x 256 grid by the scanner model of
    degradation.acquire: int16 [slice, row, column]."""
    import numpy as np
    import pydicom
    import torch

    from MRSuperResLib.degradation import acquire, sigma_for_snr

    files = sorted(SAMPLE.glob("*.dcm"))
    truth = torch.from_numpy(np.stack([pydicom.dcmread(files[i]).pixel_array for i in indices]).astype(np.float32))
    image = acquire(truth, acquired, sigma_for_snr(truth, snr), recon_shape=tuple(truth.shape[1:]),
                    generator=torch.Generator().manual_seed(seed))
    return np.clip(np.rint(image.numpy()), 0, 32767).astype(np.int16)


def copy_zero_filled_slices(folder, indices, acquired, snr, acquisition_matrix):
    """copy_sample_slices whose pixels are zero_filled_slices and whose header states `acquisition_matrix`
    (0018,1310), e.g. [0, 128, 128, 0]: a series the scanner zero-filled, as it arrives from the scanner."""
    pixels = zero_filled_slices(indices, acquired, snr)

    def edit(dataset, position):
        dataset.PixelData = pixels[position].tobytes()
        dataset.AcquisitionMatrix = acquisition_matrix

    return copy_sample_slices(folder, indices, edit=edit)


def tree_checksums(folder):
    """SHA-256 of every file below `folder`, by relative path: proves a test left its inputs untouched."""
    from MRSuperResLib.model_catalog import sha256_of

    return {str(p.relative_to(folder)): sha256_of(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}
