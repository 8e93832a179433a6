"""Read and write scalar volumes: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd), and
folders holding a DICOM series (dicom_series.py).

Rejected with ValueError naming the file: missing files, unknown extensions, unreadable files, 2D or 4D images,
vector/RGB/complex voxels, zero voxels, and label maps. A constant image is accepted (its profiles will
report that they are flat). Label maps are recognised conservatively from header hints only, never from the
voxel values:
- a Slicer segmentation header (keys "Segmentation_*" or "Segment<N>_*", as in .seg.nrrd files), or a
  file name ending in .seg.nrrd / .seg.nii(.gz);
- a NIfTI intent code NIFTI_INTENT_LABEL (1002);
- an integer image whose file name ends with "label", "labels", "labelmap", "seg" or "segmentation"
  (after "-", "_" or "."; e.g. "brain-label.nrrd", the name Slicer gives saved label map volumes).
write_volume writes NIfTI/NRRD/MHA atomically (temporary name in the same folder, then os.replace).
"""

import os
import re

import numpy as np

from .atomic_files import atomic_path
from .volume import volume_from_sitk, volume_to_sitk

FILE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
WRITE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha")
_LABEL_NAME = re.compile(r"(^|[-_.])(label|labels|labelmap|seg|segmentation)$", re.IGNORECASE)
_SEGMENT_KEY = re.compile(r"^(Segmentation_|Segment\d+_)")
_NIFTI_INTENT_LABEL = 1002


def volume_extension(path) -> str:
    lower = os.fspath(path).lower()
    for extension in FILE_EXTENSIONS:
        if lower.endswith(extension):
            return extension
    return ""


def volume_stem(path) -> str:
    """File name without its volume extension (folder name for DICOM folders)."""
    base = os.path.basename(os.path.normpath(os.fspath(path)))
    extension = volume_extension(base)
    return base[: -len(extension)] if extension else base


def _header_keys(reader):
    return {key: reader.GetMetaData(key) for key in reader.GetMetaDataKeys()}


def _label_map_reason(path, header, pixel_id):
    import SimpleITK as sitk

    stem = volume_stem(path)
    if stem.lower().endswith(".seg") or any(_SEGMENT_KEY.match(key) for key in header):
        return "it is a Slicer segmentation"
    intent = header.get("intent_code", "").strip()
    if intent and intent.lstrip("-").isdigit() and int(intent) == _NIFTI_INTENT_LABEL:
        return "its NIfTI intent code is NIFTI_INTENT_LABEL"
    integer_types = {
        sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16,
        sitk.sitkUInt32, sitk.sitkInt32, sitk.sitkUInt64, sitk.sitkInt64,
    }
    if pixel_id in integer_types and _LABEL_NAME.search(stem):
        return "it is an integer image named like a label map"
    return None


def read_volume(path, series_uid=None, name=None):
    """Volume from a volume file or a DICOM series folder (series_uid chooses among several series)."""
    import SimpleITK as sitk

    path = os.fspath(path)
    if os.path.isdir(path):
        from .dicom_series import read_dicom_series

        return read_dicom_series(path, series_uid, name=name)
    if not os.path.exists(path):
        raise ValueError(f"volume file '{path}' does not exist")
    if not volume_extension(path):
        raise ValueError(
            f"volume file '{path}': unsupported format (use {', '.join(FILE_EXTENSIONS)} or a DICOM folder)"
        )
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        detail = str(error).strip().splitlines()[-1]
        if "size is zero" in detail:
            raise ValueError(f"volume file '{path}' is empty (an axis has zero voxels)") from None
        raise ValueError(f"cannot read volume file '{path}': {detail}") from None
    header = _header_keys(reader)
    size = reader.GetSize()
    reason = _label_map_reason(path, header, reader.GetPixelID())
    if reason:
        raise ValueError(f"volume file '{path}' looks like a label map ({reason}); load an intensity image")
    if reader.GetDimension() != 3:
        raise ValueError(f"volume file '{path}': expected a 3D volume, got a {reader.GetDimension()}D image {size}")
    if int(np.prod(size)) == 0:
        raise ValueError(f"volume file '{path}' is empty (size {size})")
    if reader.GetNumberOfComponents() != 1 or "complex" in sitk.GetPixelIDValueAsString(reader.GetPixelID()):
        raise ValueError(
            f"volume file '{path}': expected scalar voxels, got "
            f"{sitk.GetPixelIDValueAsString(reader.GetPixelID())} (vector/RGB/complex volumes are not supported)"
        )
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise ValueError(f"cannot read volume file '{path}': {str(error).strip().splitlines()[-1]}") from None
    volume = volume_from_sitk(image, name=name or volume_stem(path))
    volume.metadata.update(format=volume_extension(path).lstrip("."), path=os.path.abspath(path), header=header)
    return volume


def write_volume(volume, path):
    """Write a Volume to NIfTI/NRRD/MHA, atomically (the destination appears complete or not at all)."""
    import SimpleITK as sitk

    path = os.fspath(path)
    extension = volume_extension(path)
    if extension not in WRITE_EXTENSIONS:
        raise ValueError(f"cannot write '{path}': use one of {', '.join(WRITE_EXTENSIONS)}")
    array = np.asarray(volume.array)
    if array.ndim != 3 or array.size == 0:
        raise ValueError(f"volume '{volume.name}': only non-empty 3D scalar volumes can be written")
    image = volume_to_sitk(volume)
    with atomic_path(path, suffix=extension) as temporary:
        try:
            sitk.WriteImage(image, temporary, useCompression=extension in (".nii.gz", ".nrrd", ".mha"))
        except RuntimeError as error:
            raise ValueError(f"cannot write '{path}': {str(error).strip().splitlines()[-1]}") from None
