"""Write an enhanced volume as a derived DICOM series of the study it came from (pydicom).

The new series keeps the patient, study and frame-of-reference tags of the source series and replaces what
describes the pixels: new Series/SOP Instance UIDs (``pydicom.uid.generate_uid``), ImageType DERIVED\\SECONDARY,
SeriesDescription with a suffix, a new SeriesNumber, DerivationDescription, Rows/Columns/PixelSpacing and a
per-slice ImagePositionPatient from the output geometry (ImageOrientationPatient as in the source), SliceLocation,
InstanceNumber, and 16-bit pixel data with one series-wide RescaleSlope (intercept 0, so zero stays zero).
Private tags are dropped: they may describe the original pixels. An enhanced (multi-frame) source is given frame by
frame (dicom_frame_templates.py); its derived images are classic images of the same modality, each referencing
the frame it came from (ReferencedFrameNumber in SourceImageSequence).

Geometry: slice k of the volume becomes one image; columns run along voxel axis i, rows along j, so
ImageOrientationPatient = (direction of i, direction of j) in LPS, PixelSpacing = (spacing j, spacing i) and
ImagePositionPatient = LPS position of voxel (0, 0, k).
"""

import copy
import datetime
import os
import shutil
from pathlib import Path

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# Tags that describe the source pixels or encoding and become wrong for the derived images.
_REMOVED_KEYWORDS = (
    "SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries", "LargestPixelValueInSeries",
    "PixelPaddingValue", "PixelPaddingRangeLimit", "WindowCenterWidthExplanation", "VOILUTSequence",
    "ModalityLUTSequence", "IconImageSequence", "PixelAspectRatio", "PlanarConfiguration", "PixelData",
    "FloatPixelData", "DoubleFloatPixelData", "SourceImageSequence", "ReferencedImageSequence",
    "DerivationCodeSequence", "LossyImageCompressionRatio", "LossyImageCompressionMethod",
)
# Retired geometry tags (ACR-NEMA) that some old files carry next to the current ones.
_REMOVED_TAGS = (0x00200030, 0x00200035, 0x00200050)


def read_series_headers(folder, series_uid=None):
    """Headers (no pixel data) of the DICOM image files of one series in folder, each with ``.filename``; the
    series is found as the DICOM reader finds it (MRQualityMetricsLib.dicom_series.choose_series)."""
    from MRQualityMetricsLib.dicom_series import choose_series

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    return [header for _, header in choose_series(folder, series_uid)[1]]


def headers_for_volume(volume, folder, series_uid=None):
    """Headers of the files a Volume was read from (``metadata["files"]`` of the DICOM reader), else of the series
    in folder; an enhanced file gives one classic-looking header per frame (dicom_frame_templates.py)."""
    import pydicom

    from MRQualityMetricsLib.dicom_frames import is_multiframe

    from .dicom_frame_templates import frame_templates

    files = volume.metadata.get("files") if isinstance(volume.metadata, dict) else None
    if files:
        sources = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
    else:
        sources = read_series_headers(folder, series_uid)
    headers = []
    for header in sources:
        headers += frame_templates(header.filename, header) if is_multiframe(header) else [header]
    return headers


def format_ds(value):
    """A decimal string of at most 16 characters (the DS limit)."""
    for digits in range(10, 3, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"cannot format {value} as a DICOM decimal string")


def pixel_encoding(array):
    """(stored dtype, pixel representation, rescale slope) that store array in 16 bits with intercept 0."""
    array = np.asarray(array)
    minimum = float(np.min(array)) if array.size else 0.0
    maximum = float(np.max(array)) if array.size else 0.0
    if not (np.isfinite(minimum) and np.isfinite(maximum)):
        raise ValueError("the volume contains NaN or infinite values; cannot write DICOM")
    if minimum >= 0:
        dtype, representation, largest = np.uint16, 0, 65535.0
        magnitude = maximum
    else:
        dtype, representation, largest = np.int16, 1, 32767.0
        magnitude = max(-minimum, maximum)
    slope = float(format_ds(magnitude / largest)) if magnitude > 0 else 1.0
    return dtype, representation, slope


def _slice_normal(dataset):
    orientation = np.array(dataset.ImageOrientationPatient, dtype=float)
    return np.cross(orientation[:3], orientation[3:])


def _geometry_lps(ijk_to_ras):
    ijk_to_lps = LPS_TO_RAS @ np.asarray(ijk_to_ras, dtype=float)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    if np.any(spacing <= 0):
        raise ValueError("the volume geometry has a zero voxel size")
    return ijk_to_lps, spacing, ijk_to_lps[:3, :3] / spacing


def _matches(dataset, keyword, values, tolerance):
    """True when the dataset's numeric multi-value tag equals values within tolerance (after normalising
    direction cosines, which scanners round)."""
    try:
        stored = np.array([float(v) for v in dataset.get(keyword)], dtype=float)
    except (TypeError, ValueError):
        return False
    if stored.shape != np.shape(values):
        return False
    if keyword == "ImageOrientationPatient":
        stored = np.r_[stored[:3] / np.linalg.norm(stored[:3]), stored[3:] / np.linalg.norm(stored[3:])]
    return bool(np.allclose(stored, values, atol=tolerance))


def _now():
    now = datetime.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")


def _save(dataset, path):
    try:
        dataset.save_as(path, enforce_file_format=True)  # pydicom >= 3
    except TypeError:  # pydicom 2.x
        dataset.is_little_endian, dataset.is_implicit_VR = True, False
        dataset.save_as(path, write_like_original=False)


def derived_series_description(source_description, suffix):
    """Source SeriesDescription + suffix, within the 64-character LO limit (the suffix is kept whole)."""
    return (str(source_description or "").strip()[: 64 - len(suffix)] + suffix).strip()


def write_derived_series(volume, source_datasets, output_folder, description_suffix=" enhanced x2",
                         derivation_description="", series_number=None):
    """Write volume (a Volume derived from the series of source_datasets) as a new series in output_folder.

    The folder is written under a temporary name next to it and renamed when complete; an existing
    output_folder must be empty. Returns the paths of the written files (slice order of volume k).
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from .dicom_frame_templates import CLASSIC_FOR_ENHANCED

    source_datasets = list(source_datasets)
    if not source_datasets:
        raise ValueError("no source DICOM datasets to derive the series from")
    if any(int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 for ds in source_datasets):
        raise ValueError("multi-frame (enhanced) DICOM sources must be given frame by frame "
                         "(headers_for_volume does it)")
    array = np.asarray(volume.array)
    if array.ndim != 3:
        raise ValueError(f"{volume.name}: expected a 3D volume, got shape {array.shape}")
    output_folder = Path(output_folder)
    if output_folder.exists() and (not output_folder.is_dir() or any(output_folder.iterdir())):
        raise ValueError(f"{output_folder}: exists and is not an empty folder; choose a new folder for the series")

    ijk_to_lps, spacing, directions = _geometry_lps(volume.ijk_to_ras)
    normal = np.cross(directions[:, 0], directions[:, 1])
    source_positions = np.array([np.dot(np.array(ds.ImagePositionPatient, dtype=float), _slice_normal(ds))
                                 for ds in source_datasets])
    stored_dtype, representation, slope = pixel_encoding(array)
    low, high = np.percentile(array, [1, 99.5]) if array.size else (0.0, 1.0)
    series_uid = generate_uid()
    date, time = _now()
    first = source_datasets[0]
    if series_number is None:
        series_number = int(getattr(first, "SeriesNumber", 0) or 0) + 1000

    temporary = output_folder.with_name(f".{output_folder.name}.partial-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    written = []
    try:
        for k in range(array.shape[0]):
            position = ijk_to_lps[:3, :3] @ np.array([0.0, 0.0, k]) + ijk_to_lps[:3, 3]
            projection = float(np.dot(position, normal))
            # The source image at the same place gives the per-slice tags (nearest along the slice normal).
            template = source_datasets[int(np.argmin(np.abs(source_positions - projection)))]
            ds = copy.deepcopy(template)
            ds.remove_private_tags()
            for tag in [t for t in ds.keys() if t.group == 0x0000] + list(_REMOVED_TAGS):
                if tag in ds:
                    del ds[tag]
            for keyword in _REMOVED_KEYWORDS:
                if keyword in ds:
                    delattr(ds, keyword)

            sop_uid = generate_uid()
            ds.SOPInstanceUID = sop_uid
            ds.SeriesInstanceUID = series_uid
            ds.ImageType = ["DERIVED", "SECONDARY"]
            ds.SeriesDescription = derived_series_description(getattr(first, "SeriesDescription", ""),
                                                              description_suffix)
            ds.SeriesNumber = int(series_number)
            ds.InstanceNumber = k + 1
            if derivation_description:
                ds.DerivationDescription = str(derivation_description)[:1024]
            reference = pydicom.Dataset()
            reference.ReferencedSOPClassUID = template.SOPClassUID
            reference.ReferencedSOPInstanceUID = template.SOPInstanceUID
            if "ReferencedFrameNumber" in template:  # a frame of an enhanced source: the image is classic
                reference.ReferencedFrameNumber = template.ReferencedFrameNumber
                del ds.ReferencedFrameNumber
                ds.SOPClassUID = CLASSIC_FOR_ENHANCED[str(template.SOPClassUID)]
            ds.SourceImageSequence = [reference]
            ds.SeriesDate = ds.ContentDate = ds.InstanceCreationDate = date
            ds.SeriesTime = ds.ContentTime = ds.InstanceCreationTime = time

            # Where the geometry matches the source image, its own values are kept verbatim (no rounding drift).
            orientation = np.r_[directions[:, 0], directions[:, 1]]
            if not _matches(template, "ImageOrientationPatient", orientation, 1e-5):
                ds.ImageOrientationPatient = [format_ds(v) for v in orientation]
            if not _matches(template, "ImagePositionPatient", position, 1e-4):
                ds.ImagePositionPatient = [format_ds(v) for v in position]
            ds.PixelSpacing = [format_ds(spacing[1]), format_ds(spacing[0])]
            if array.shape[0] > 1:
                ds.SpacingBetweenSlices = format_ds(spacing[2])
            if "SliceLocation" in template:
                # Keep the source's own SliceLocation convention: shift it by the displacement along the normal.
                template_projection = float(np.dot(np.array(template.ImagePositionPatient, dtype=float), normal))
                ds.SliceLocation = format_ds(float(template.SliceLocation) + projection - template_projection)
            else:
                ds.SliceLocation = format_ds(projection)

            ds.Rows, ds.Columns = int(array.shape[1]), int(array.shape[2])
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
            ds.PixelRepresentation = representation
            ds.RescaleSlope = format_ds(slope)
            ds.RescaleIntercept = "0"
            ds.WindowCenter = format_ds((low + high) / 2)
            ds.WindowWidth = format_ds(max(high - low, slope))
            limits = np.iinfo(stored_dtype)
            stored = np.clip(np.rint(array[k] / slope), limits.min, limits.max).astype(stored_dtype)
            ds.PixelData = stored.astype(stored.dtype.newbyteorder("<")).tobytes()
            ds["PixelData"].VR = "OW"

            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
            meta.MediaStorageSOPInstanceUID = sop_uid
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
            name = f"IMG{k + 1:04d}.dcm"
            file_dataset = FileDataset(name, ds, file_meta=meta, preamble=b"\0" * 128)
            _save(file_dataset, temporary / name)
            written.append(output_folder / name)
        if output_folder.exists():
            output_folder.rmdir()  # checked empty above
        os.replace(temporary, output_folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return written
