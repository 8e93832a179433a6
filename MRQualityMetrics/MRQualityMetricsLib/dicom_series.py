"""Read one DICOM image series from a folder into a Volume, with the geometry checks a measurement needs.

- Series are found by SeriesInstanceUID among the DICOM image files in the folder and up to 4 levels of
  subfolders (pydicom headers; GDCM's own scan is much slower on some files) and the pixels are read by
  SimpleITK's ImageSeriesReader (GDCM).
  Enhanced (multi-frame) files contribute one plane per frame, with the geometry and rescale of its functional
  groups (dicom_frames.py); their frames are stacked here in slice order.
  Several series and no series_uid -> ValueError listing every UID with its description and file count; an
  unknown series_uid -> the same list.
- Every image (or frame) must carry ImagePositionPatient and ImageOrientationPatient; orientations must agree,
  images must be distinct positions along the slice normal (no gantry tilt / shear) with uniform spacing (gaps within
  10 % of the median, so rounded positions pass but a missing slice does not) and equal size/pixel spacing.
  Any violation -> ValueError naming the file or the problem.
- Modality other than MR -> warnings.warn (measurements still run).
- Volume.metadata keeps: files (sorted along the normal), multiframe, series_instance_uid, series_description,
  modality, manufacturer, magnetic_field_strength, slice_thickness, study_instance_uid, format="DICOM", and
  acquisition_matrix: the (rows, columns) acquired as the header states them (dicom_acquisition.py), or None.
Rescale slope/intercept are applied (by GDCM, or per frame for enhanced frames whose rescales differ), so values
are in stored physical units.
"""

import os
import warnings

import numpy as np

from .dicom_acquisition import stated_acquisition_matrix
from .dicom_frames import frame_pixels, planes_of
from .volume import volume_from_sitk

_ORIENTATION_TOLERANCE = 1e-4
_SPACING_TOLERANCE = 0.10
_MAX_DEPTH = 4  # subfolder levels searched for a series: enough for DICOMDIR-style exports, not a whole disk


def _files_below(folder):
    """Paths of the files in a folder and its subfolders down to _MAX_DEPTH levels (as exported studies nest them:
    patient/study/series), in a stable order; hidden files and folders are left out."""
    top = os.path.normpath(folder).count(os.sep)
    for root, folders, files in os.walk(folder):
        depth = os.path.normpath(root).count(os.sep) - top
        folders[:] = [] if depth >= _MAX_DEPTH else sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(root, name)


def _image_headers(folder):
    """{series UID: [(path, header)]} of the DICOM images (files with Rows/Columns) in a folder and below."""
    import pydicom

    series = {}
    for path in _files_below(folder):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError):
            continue  # not DICOM (README, thumbnails, ...)
        if "Rows" not in header or "Columns" not in header:
            continue  # DICOMDIR, structured reports and other non-image objects
        uid = str(header.get("SeriesInstanceUID", ""))
        if not uid:
            raise ValueError(f"DICOM file '{path}' has no SeriesInstanceUID")
        series.setdefault(uid, []).append((path, header))
    return series


def list_series(folder):
    """[(series UID, description, number of files)] of the DICOM image series in a folder."""
    return [
        (uid, str(items[0][1].get("SeriesDescription", "")), len(items))
        for uid, items in _image_headers(folder).items()
    ]


def _series_listing(series):
    return "; ".join(f"{uid} ('{description}', {count} files)" for uid, description, count in series)


def choose_series(folder, series_uid=None):
    """(UID, [(path, header)]) of the requested or only series in a folder (and its subfolders); ValueError
    listing the series when there are several and none is named, or the named one is missing."""
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


def _sorted_checked_planes(items):
    """The image planes of [(path, header)] (one per classic image or enhanced frame), validated and sorted
    along the slice normal."""
    for path, header in items:
        if "MOSAIC" in [str(value).upper() for value in header.get("ImageType", [])]:
            raise ValueError(f"DICOM file '{path}' is a Siemens mosaic (several slices tiled in one image), which "
                             "this reader does not unpack; convert the series to NIfTI first (e.g. with dcm2niix)")
    planes = [plane for path, header in items for plane in planes_of(path, header)]
    first = planes[0]
    normal = np.cross(first.orientation[:3], first.orientation[3:])
    if np.linalg.norm(normal) < 0.5:
        raise ValueError(f"{first.label} has a degenerate ImageOrientationPatient {first.orientation.tolist()}")
    normal /= np.linalg.norm(normal)
    for plane in planes:
        if not np.allclose(plane.orientation, first.orientation, atol=_ORIENTATION_TOLERANCE):
            raise ValueError(
                f"{plane.label} has ImageOrientationPatient {plane.orientation.tolist()}, contradicting "
                f"{first.orientation.tolist()} of {first.label} (mixed orientations in one series)"
            )
        for name, value, expected in zip(("Rows", "Columns", "PixelSpacing"), plane.size, first.size):
            if str(value) != str(expected):
                raise ValueError(f"{plane.label} has a different {name} from {first.label}")
    along = np.array([plane.position @ normal for plane in planes])
    order = np.argsort(along, kind="stable")
    planes, along = [planes[i] for i in order], along[order]
    if len(planes) > 1:
        gaps = np.diff(along)
        if np.any(gaps < 1e-3):
            index = int(np.argmin(gaps))
            raise ValueError(
                f"{planes[index].label} and {planes[index + 1].label} lie at the same slice position "
                "(several echoes, phases or duplicates in one series)"
            )
        median = float(np.median(gaps))
        if np.any(np.abs(gaps - median) > _SPACING_TOLERANCE * median):
            raise ValueError(
                f"DICOM series has non-uniform slice spacing (gaps {gaps.min():.3f} to {gaps.max():.3f} mm; "
                "missing slices?)"
            )
        positions = np.array([plane.position for plane in planes])
        offsets = positions - positions[0] - np.outer(along - along[0], normal)
        # In-plane drift of more than 1 % of the stack height (about 0.6 degrees of tilt) is not rounding.
        if np.abs(offsets).max() > 0.01 * (along[-1] - along[0]) + 0.01:
            raise ValueError(
                "DICOM slice positions do not follow the slice normal (gantry tilt or sheared geometry), "
                "which this reader does not support"
            )
    return planes


def _read_classic_series(files, uid, folder):
    """SimpleITK image of classic single-frame files sorted along the normal (GDCM applies the rescale)."""
    import SimpleITK as sitk

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
    return image


def _read_planes(planes):
    """SimpleITK image stacking sorted planes, some of them frames of enhanced files, with their geometry."""
    import SimpleITK as sitk

    pixels = {}
    for path in dict.fromkeys(plane.path for plane in planes):
        file_planes = sorted((plane for plane in planes if plane.path == path), key=lambda plane: plane.frame)
        if file_planes[0].multiframe:
            pixels[path] = frame_pixels(path, file_planes)
        else:
            pixels[path] = sitk.GetArrayFromImage(sitk.ReadImage(path)).reshape(1, file_planes[0].rows,
                                                                                 file_planes[0].columns)
    image = sitk.GetImageFromArray(np.stack([pixels[plane.path][plane.frame] for plane in planes]))
    first, last = planes[0], planes[-1]
    row, column = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row, column)
    normal /= np.linalg.norm(normal)
    row_spacing, column_spacing = first.pixel_spacing
    slice_spacing = float((last.position - first.position) @ normal) / max(len(planes) - 1, 1) or 1.0
    image.SetSpacing((column_spacing, row_spacing, slice_spacing))
    image.SetDirection(np.column_stack([row, column, normal]).ravel().tolist())
    image.SetOrigin(first.position.tolist())
    return image


def read_dicom_series(folder, series_uid=None, name=None):
    """Volume (RAS) of one DICOM series in a folder; see the module docstring for the checks."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"DICOM folder '{folder}' does not exist")
    uid, items = choose_series(folder, series_uid)
    planes = _sorted_checked_planes(items)
    files = list(dict.fromkeys(plane.path for plane in planes))
    first = dict(items)[planes[0].path]
    modality = str(first.get("Modality", ""))
    if modality != "MR":
        warnings.warn(
            f"DICOM series {uid} in '{folder}' has modality '{modality or 'unknown'}', not MR; "
            "the MRI quality metrics may not be meaningful",
            stacklevel=2,
        )
    if any(plane.multiframe for plane in planes):
        image = _read_planes(planes)
    else:
        image = _read_classic_series(files, uid, folder)
    description = str(first.get("SeriesDescription", ""))
    volume = volume_from_sitk(image, name=name or description or os.path.basename(os.path.normpath(folder)))
    volume.metadata.update(
        format="DICOM",
        files=files,
        multiframe=any(plane.multiframe for plane in planes),
        series_instance_uid=uid,
        series_description=description,
        study_instance_uid=str(first.get("StudyInstanceUID", "")),
        modality=modality,
        manufacturer=str(first.get("Manufacturer", "")),
        magnetic_field_strength=str(first.get("MagneticFieldStrength", "")),
        slice_thickness=str(planes[0].slice_thickness or first.get("SliceThickness", "")),
        acquisition_matrix=_stated_matrix(first, planes[0]),
    )
    return volume


def _stated_matrix(header, plane):
    """The acquired matrix the header states (dicom_acquisition.py) for the grid of its first plane, or None."""
    try:
        return stated_acquisition_matrix(header, plane.rows, plane.columns, plane.pixel_spacing)
    except ValueError:  # no usable PixelSpacing
        return None

