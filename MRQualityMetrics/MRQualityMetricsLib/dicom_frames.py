"""The image planes of DICOM files: one per classic image, one per frame of an enhanced (multi-frame) image.

Enhanced MR/CT images (Siemens XA, Philips and others export them) store all slices of a series as frames of one
file, and their geometry and rescale in the Shared and Per-frame Functional Groups instead of the top-level
dataset. ``planes_of`` gives every plane with its own geometry so that both kinds pass the same checks, and
``frame_pixels`` decodes an enhanced file's frames in stored order with their rescale applied.
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class Plane:
    """One image plane: where it comes from (for messages and reading) and its geometry (LPS, mm)."""

    label: str
    path: str
    frame: int  # index among the file's frames; 0 for a classic image
    multiframe: bool
    orientation: np.ndarray  # ImageOrientationPatient: row direction, column direction
    position: np.ndarray  # ImagePositionPatient: centre of the first pixel
    rows: int
    columns: int
    stored_pixel_spacing: object  # PixelSpacing as stored (None when absent)
    slope: float
    intercept: float
    slice_thickness: str = ""

    @property
    def size(self):
        """(Rows, Columns, PixelSpacing as stored): what must agree between the planes of a series."""
        return self.rows, self.columns, str(self.stored_pixel_spacing)

    @property
    def pixel_spacing(self):
        """(between rows, between columns) in mm."""
        return tuple(_float_list(self.stored_pixel_spacing, "PixelSpacing", 2, self.label))


def is_multiframe(header):
    return "PerFrameFunctionalGroupsSequence" in header or int(header.get("NumberOfFrames", 1) or 1) > 1


def _float_list(value, keyword, count, label):
    if value is None:
        raise ValueError(f"{label} has no {keyword}; the slice geometry is unknown")
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{label} has an unreadable {keyword}: {value!r}") from None
    if len(numbers) != count or not np.all(np.isfinite(numbers)):
        raise ValueError(f"{label} has an invalid {keyword}: {value!r}")
    return np.array(numbers)


def _group_value(groups, sequence, keyword):
    """keyword inside the first item of groups' sequence (a functional group macro), else None."""
    if groups is None or sequence not in groups or not groups[sequence].value:
        return None
    return groups[sequence].value[0].get(keyword)


def _frame_value(header, frame_groups, sequence, keyword):
    """A frame's value: its own functional group first, then the shared one, then the top-level tag."""
    shared = header.SharedFunctionalGroupsSequence[0] if header.get("SharedFunctionalGroupsSequence") else None
    for groups in (frame_groups, shared):
        value = _group_value(groups, sequence, keyword)
        if value is not None:
            return value
    return header.get(keyword)


def _number(value, default):
    try:
        return float(value) if value is not None and value != "" else default
    except (TypeError, ValueError):
        return default


def planes_of(path, header):
    """[Plane] of one DICOM image file: one for a classic image, one per frame of an enhanced image."""
    size = (header.get("Rows"), header.get("Columns"))
    if not is_multiframe(header):
        label = f"DICOM file '{path}'"
        return [Plane(
            label, path, 0, False,
            _float_list(header.get("ImageOrientationPatient"), "ImageOrientationPatient", 6, label),
            _float_list(header.get("ImagePositionPatient"), "ImagePositionPatient", 3, label),
            *size, header.get("PixelSpacing"),
            _number(header.get("RescaleSlope"), 1.0), _number(header.get("RescaleIntercept"), 0.0),
            str(header.get("SliceThickness", "")),
        )]
    frames = header.get("PerFrameFunctionalGroupsSequence")
    count = int(header.get("NumberOfFrames", 1) or 1)
    if not frames or len(frames) != count:
        raise ValueError(
            f"enhanced DICOM file '{path}' has {len(frames) if frames else 0} per-frame functional groups for "
            f"{count} frames; the slice geometry is unknown"
        )
    return [_frame_plane(header, path, index, groups, size) for index, groups in enumerate(frames)]


def _frame_plane(header, path, index, groups, size):
    label = f"frame {index + 1} of DICOM file '{path}'"
    orientation = _frame_value(header, groups, "PlaneOrientationSequence", "ImageOrientationPatient")
    position = _frame_value(header, groups, "PlanePositionSequence", "ImagePositionPatient")
    spacing = _frame_value(header, groups, "PixelMeasuresSequence", "PixelSpacing")
    slope = _frame_value(header, groups, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _frame_value(header, groups, "PixelValueTransformationSequence", "RescaleIntercept")
    thickness = _frame_value(header, groups, "PixelMeasuresSequence", "SliceThickness")
    return Plane(
        label, path, index, True,
        _float_list(orientation, "ImageOrientationPatient", 6, label),
        _float_list(position, "ImagePositionPatient", 3, label),
        *size, spacing, _number(slope, 1.0), _number(intercept, 0.0),
        "" if thickness is None else str(thickness),
    )


def frame_pixels(path, planes):
    """Frames of an enhanced file [frame, row, column] in stored order, with each frame's rescale applied.

    GDCM (SimpleITK) decodes every transfer syntax but applies one rescale to all frames, so it reads files whose
    frames share one; frames with different rescales are decoded by pydicom and rescaled here.
    """
    import SimpleITK as sitk

    rescales = {(plane.slope, plane.intercept) for plane in planes}
    if len(rescales) == 1:
        try:
            frames = sitk.GetArrayFromImage(sitk.ReadImage(path))
        except RuntimeError as error:
            raise ValueError(f"cannot read the frames of DICOM file '{path}': {error}") from None
        return frames.reshape(len(planes), *frames.shape[-2:])
    import pydicom

    try:
        stored = pydicom.dcmread(path).pixel_array
    except Exception as error:  # pydicom raises several kinds for undecodable pixel data
        raise ValueError(f"cannot decode the frames of DICOM file '{path}' (their rescales differ, which only "
                         f"pydicom's decoders handle here): {error}") from None
    slopes = np.array([plane.slope for plane in planes], dtype=np.float32)[:, None, None]
    intercepts = np.array([plane.intercept for plane in planes], dtype=np.float32)[:, None, None]
    return stored.reshape(len(planes), *stored.shape[-2:]) * slopes + intercepts
