"""Read one DICOM image series from a folder into a Volume, with the geometry checks a measurement needs.

- Series are found by SeriesInstanceUID among the DICOM image files directly in the folder (pydicom headers;
  GDCM's own scan is much slower on some files) and the pixels are read by SimpleITK's ImageSeriesReader (GDCM).
  Several series and no series_uid -> ValueError listing every UID with its description and file count; an
  unknown series_uid -> the same list.
- Every image must carry ImagePositionPatient and ImageOrientationPatient; orientations must agree, images
  must be distinct positions along the slice normal (no gantry tilt / shear) with uniform spacing (gaps within
  10 % of the median, so rounded positions pass but a missing slice does not) and equal size/pixel spacing.
  Any violation -> ValueError naming the file or the problem.
- Modality other than MR -> warnings.warn (measurements still run).
- Volume.metadata keeps: files (sorted along the normal), series_instance_uid, series_description, modality,
  manufacturer, magnetic_field_strength, slice_thickness, study_instance_uid, format="DICOM".
Rescale slope/intercept are applied by GDCM, so values are in stored physical units.
"""

import os
import warnings

import numpy as np

from .volume import volume_from_sitk

_ORIENTATION_TOLERANCE = 1e-4
_SPACING_TOLERANCE = 0.10


def _image_headers(folder):
    """{series UID: [(path, header)]} of the DICOM images (files with Rows/Columns) directly in a folder."""
    import pydicom

    series = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file():
            continue
        try:
            header = pydicom.dcmread(entry.path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError):
            continue  # not DICOM (README, thumbnails, ...)
        if "Rows" not in header or "Columns" not in header:
            continue  # DICOMDIR, structured reports and other non-image objects
        uid = str(header.get("SeriesInstanceUID", ""))
        if not uid:
            raise ValueError(f"DICOM file '{entry.path}' has no SeriesInstanceUID")
        series.setdefault(uid, []).append((entry.path, header))
    return series


def list_series(folder):
    """[(series UID, description, number of files)] of the DICOM image series in a folder."""
    return [
        (uid, str(items[0][1].get("SeriesDescription", "")), len(items))
        for uid, items in _image_headers(folder).items()
    ]


def _series_listing(series):
    return "; ".join(f"{uid} ('{description}', {count} files)" for uid, description, count in series)


def _choose_series(folder, series_uid):
    """(UID, [(path, header)]) of the requested or only series."""
    headers = _image_headers(folder)
    series = [(uid, str(items[0][1].get("SeriesDescription", "")), len(items)) for uid, items in headers.items()]
    if not series:
        raise ValueError(f"no DICOM image series found in folder '{folder}'")
    if series_uid is None:
        if len(series) > 1:
            raise ValueError(
                f"folder '{folder}' holds {len(series)} DICOM series; choose one by series UID: "
                + _series_listing(series)
            )
        series_uid = series[0][0]
    if series_uid not in headers:
        raise ValueError(f"series UID '{series_uid}' not found in folder '{folder}'; available: {_series_listing(series)}")
    return series_uid, headers[series_uid]


def _float_list(header, keyword, count, path):
    value = header.get(keyword)
    if value is None:
        raise ValueError(f"DICOM file '{path}' has no {keyword}; the slice geometry is unknown")
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"DICOM file '{path}' has an unreadable {keyword}: {value!r}") from None
    if len(numbers) != count or not np.all(np.isfinite(numbers)):
        raise ValueError(f"DICOM file '{path}' has an invalid {keyword}: {value!r}")
    return np.array(numbers)


def _sorted_checked_files(items):
    """Validate the per-file geometry of [(path, header)]; return (files sorted along the normal, first header)."""
    files = [path for path, _ in items]
    headers = [header for _, header in items]
    orientation = _float_list(headers[0], "ImageOrientationPatient", 6, files[0])
    row, column = orientation[:3], orientation[3:]
    normal = np.cross(row, column)
    if np.linalg.norm(normal) < 0.5:
        raise ValueError(f"DICOM file '{files[0]}' has a degenerate ImageOrientationPatient {orientation.tolist()}")
    normal /= np.linalg.norm(normal)
    positions = []
    for path, header in zip(files, headers):
        other = _float_list(header, "ImageOrientationPatient", 6, path)
        if not np.allclose(other, orientation, atol=_ORIENTATION_TOLERANCE):
            raise ValueError(
                f"DICOM file '{path}' has ImageOrientationPatient {other.tolist()}, contradicting "
                f"{orientation.tolist()} of '{files[0]}' (mixed orientations in one series)"
            )
        positions.append(_float_list(header, "ImagePositionPatient", 3, path))
        for keyword in ("Rows", "Columns", "PixelSpacing"):
            if str(header.get(keyword)) != str(headers[0].get(keyword)):
                raise ValueError(f"DICOM file '{path}' has a different {keyword} from '{files[0]}'")
    positions = np.array(positions)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    files = [files[i] for i in order]
    positions, along = positions[order], along[order]
    if len(files) > 1:
        gaps = np.diff(along)
        if np.any(gaps < 1e-3):
            index = int(np.argmin(gaps))
            raise ValueError(
                f"DICOM files '{files[index]}' and '{files[index + 1]}' lie at the same slice position "
                "(several echoes, phases or duplicates in one series)"
            )
        median = float(np.median(gaps))
        if np.any(np.abs(gaps - median) > _SPACING_TOLERANCE * median):
            raise ValueError(
                f"DICOM series has non-uniform slice spacing (gaps {gaps.min():.3f} to {gaps.max():.3f} mm; "
                "missing slices?)"
            )
        offsets = positions - positions[0] - np.outer(along - along[0], normal)
        # In-plane drift of more than 1 % of the stack height (about 0.6 degrees of tilt) is not rounding.
        if np.abs(offsets).max() > 0.01 * (along[-1] - along[0]) + 0.01:
            raise ValueError(
                "DICOM slice positions do not follow the slice normal (gantry tilt or sheared geometry), "
                "which this reader does not support"
            )
    return files, headers[order[0]]


def read_dicom_series(folder, series_uid=None, name=None):
    """Volume (RAS) of one DICOM series in a folder; see the module docstring for the checks."""
    import SimpleITK as sitk

    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"DICOM folder '{folder}' does not exist")
    uid, items = _choose_series(folder, series_uid)
    files, first = _sorted_checked_files(items)
    modality = str(first.get("Modality", ""))
    if modality != "MR":
        warnings.warn(
            f"DICOM series {uid} in '{folder}' has modality '{modality or 'unknown'}', not MR; "
            "the MRI quality metrics may not be meaningful",
            stacklevel=2,
        )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # spacing was validated above; ITK's warning is noise
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise ValueError(f"cannot read DICOM series {uid} in '{folder}': {error}") from None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)
    if image.GetDimension() == 2:  # a single-image series
        image = sitk.JoinSeries([image])
    description = str(first.get("SeriesDescription", ""))
    volume = volume_from_sitk(image, name=name or description or os.path.basename(os.path.normpath(folder)))
    volume.metadata.update(
        format="DICOM",
        files=files,
        series_instance_uid=uid,
        series_description=description,
        study_instance_uid=str(first.get("StudyInstanceUID", "")),
        modality=modality,
        manufacturer=str(first.get("Manufacturer", "")),
        magnetic_field_strength=str(first.get("MagneticFieldStrength", "")),
        slice_thickness=str(first.get("SliceThickness", "")),
    )
    return volume
