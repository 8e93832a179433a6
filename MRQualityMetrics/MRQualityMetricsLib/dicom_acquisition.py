"""The in-plane matrix an MR series was acquired with, as its DICOM header states it, in samples of the image grid.

Scanners often reconstruct on a finer grid than they acquire by zero-filling k-space (a "512" image from a 256
acquisition). The header says what was acquired:
- classic images: Acquisition Matrix (0018,1310) = frequency rows \\ frequency columns \\ phase rows \\ phase
  columns, one frequency and one phase value non-zero, with In-plane Phase Encoding Direction (0018,1312): ROW
  puts the phase steps along the rows, across the image's columns (axis i), COL down its rows (axis j), as
  dcm2niix reads them (a GE EPI: 64\\0\\0\\64 with COL; the GE and Siemens series used here: 0\\256\\256\\0
  with ROW);
- enhanced images: MR Acquisition Frequency Encoding Steps (0018,9058) and Phase Encoding Steps in-plane
  (0018,9231) with In-plane Phase Encoding Direction, in the MR FOV/Geometry functional group or at top level.
The phase steps cover Percent Phase Field of View (0018,0094) of the frequency field of view, which is taken as
the image's extent along the frequency axis; the samples are then counted over the image's own extent.
"""

import numpy as np

from .dicom_frames import planes_of


def _lookup(header, keyword):
    """keyword from the shared MR FOV/Geometry functional group of an enhanced image, else the top level."""
    shared = header.get("SharedFunctionalGroupsSequence")
    if shared:
        geometry = shared[0].get("MRFOVGeometrySequence")
        if geometry and keyword in geometry[0]:
            return geometry[0].get(keyword)
    return header.get(keyword)


def _positive(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def _encoding_steps(header):
    """(samples down the rows, samples across the columns, phase direction 'ROW'/'COL') or None."""
    direction = str(_lookup(header, "InPlanePhaseEncodingDirection") or "").strip().upper()
    matrix = header.get("AcquisitionMatrix")
    if matrix is not None and len(matrix) == 4:
        values = [int(v or 0) for v in matrix]
        frequency, phase = values[0] or values[1], values[2] or values[3]
        if direction not in ("ROW", "COL"):  # phase rows go with ROW, phase columns with COL
            direction = "ROW" if values[2] else "COL" if values[3] else ""
    else:
        frequency = _positive(_lookup(header, "MRAcquisitionFrequencyEncodingSteps"))
        phase = _positive(_lookup(header, "MRAcquisitionPhaseEncodingStepsInPlane"))
    if not frequency or not phase or direction not in ("ROW", "COL"):
        return None
    # Phase along ROW: the phase steps run across the columns (axis i), the frequency samples down the rows.
    return (frequency, phase, direction) if direction == "ROW" else (phase, frequency, direction)


def stated_acquisition_matrix(header, rows, columns, pixel_spacing):
    """(rows, columns) acquired, in samples over the image's extent, or None where the header does not say.

    pixel_spacing: (between rows, between columns) in mm. A value at or above the grid's size means that axis
    was not zero-filled (the grid's size is returned for it)."""
    steps = _encoding_steps(header)
    if steps is None:
        return None
    down, across, direction = steps
    extent_down, extent_across = rows * float(pixel_spacing[0]), columns * float(pixel_spacing[1])
    percent = _positive(_lookup(header, "PercentPhaseFieldOfView")) or 100.0
    if direction == "ROW":  # phase across the columns: its field of view is a percentage of the rows' extent
        across *= extent_across / (extent_down * percent / 100.0)
    else:
        down *= extent_down / (extent_across * percent / 100.0)
    # Scanner matrices are even; within a sample of the grid counts as the grid.
    acquired = []
    for samples, size in ((down, rows), (across, columns)):
        even = 2 * int(round(samples / 2))
        acquired.append(size if even >= size - 1 else even)
    return tuple(acquired)


def stated_matrix_of_file(path, header=None):
    """stated_acquisition_matrix of a DICOM image file (header: its dataset, if already read), or None where the
    file or its header cannot say."""
    import pydicom

    try:
        if header is None:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        spacing = planes_of(path, header)[0].pixel_spacing
        return stated_acquisition_matrix(header, int(header.Rows), int(header.Columns), spacing)
    except (OSError, ValueError, TypeError, AttributeError, pydicom.errors.InvalidDicomError):
        return None
