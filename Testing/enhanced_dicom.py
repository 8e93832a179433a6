"""Enhanced MR (multi-frame) copies of the bundled GE series for tests: one file whose frames carry their geometry
in the functional groups, as Siemens XA and Philips scanners export."""

from pathlib import Path

import numpy as np
from sample_series import SAMPLE

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


def _item(**keywords):
    import pydicom

    item = pydicom.Dataset()
    for keyword, value in keywords.items():
        setattr(item, keyword, value)
    return item


def write_enhanced_copy(path, slices=None, frame_order=None, slope=1.0, intercept=0.0, orientation_per_frame=False,
                        edit=None):
    """Write the GE series (or the slices listed, counted along the normal) as one Enhanced MR file at path;
    frame_order lists those slices, 0, 1, ..., in the order the frames are stored; edit(dataset) may change the
    file before it is saved. Returns (file path, source pixels [slice, row, column] in slice order)."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sources = sorted((pydicom.dcmread(p) for p in sorted(SAMPLE.glob("*.dcm"))),
                     key=lambda ds: float(ds.SliceLocation))
    if slices is not None:
        sources = [sources[index] for index in slices]
    order = list(range(len(sources))) if frame_order is None else list(frame_order)
    first = sources[0]
    ds = pydicom.Dataset()
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "FrameOfReferenceUID", "Modality",
                    "Manufacturer", "SeriesDescription", "MagneticFieldStrength", "StudyDate"):
        if keyword in first:
            setattr(ds, keyword, first.data_element(keyword).value)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID = ENHANCED_MR, generate_uid(), generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = 7, 1
    ds.Rows, ds.Columns, ds.NumberOfFrames = first.Rows, first.Columns, len(order)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    measures = _item(PixelSpacing=first.PixelSpacing, SliceThickness=first.SliceThickness)
    orientation = _item(ImageOrientationPatient=first.ImageOrientationPatient)
    shared = _item(PixelMeasuresSequence=[measures],
                   PixelValueTransformationSequence=[_item(RescaleSlope=slope, RescaleIntercept=intercept,
                                                           RescaleType="US")])
    if not orientation_per_frame:
        shared.PlaneOrientationSequence = [orientation]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for index in order:
        frame = _item(PlanePositionSequence=[_item(ImagePositionPatient=sources[index].ImagePositionPatient)],
                      FrameContentSequence=[_item(InStackPositionNumber=index + 1, StackID="1")])
        if orientation_per_frame:
            frame.PlaneOrientationSequence = [orientation]
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    pixels = np.stack([src.pixel_array for src in sources]).astype(np.uint16)
    ds.PixelData = pixels[order].tobytes()
    if edit is not None:
        edit(ds)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ENHANCED_MR, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FileDataset(str(path), ds, file_meta=meta, preamble=b"\0" * 128).save_as(path, enforce_file_format=True)
    return path, pixels
