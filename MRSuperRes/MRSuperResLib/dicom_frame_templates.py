"""Classic single-frame DICOM templates for the frames of an enhanced (multi-frame) image.

A derived series is written as classic images, one per slice (dicom_export.py), whose per-slice tags come from the
source image at the same place. An enhanced source has one file for all slices, with each frame's geometry in the
functional groups; here every frame becomes a classic-looking header: the source's patient, study, frame of
reference and acquisition tags, the frame's ImageOrientationPatient / ImagePositionPatient / PixelSpacing /
SliceThickness, the classic SOP class of the same modality, and ReferencedFrameNumber, so that the derived image
can reference the frame it came from.
"""

import copy

from MRQualityMetricsLib.dicom_frames import planes_of

from .dicom_export import format_ds

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
# Enhanced and legacy-converted enhanced storage classes -> the classic class of their modality.
CLASSIC_FOR_ENHANCED = {
    "1.2.840.10008.5.1.4.1.1.4.1": MR_IMAGE,
    "1.2.840.10008.5.1.4.1.1.4.4": MR_IMAGE,
    "1.2.840.10008.5.1.4.1.1.2.1": CT_IMAGE,
    "1.2.840.10008.5.1.4.1.1.2.2": CT_IMAGE,
}
# What only describes the multi-frame encoding, or the frames' pixels, goes.
_MULTIFRAME_KEYWORDS = (
    "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "NumberOfFrames",
    "DimensionIndexSequence", "DimensionOrganizationSequence", "DimensionOrganizationType",
    "FrameIncrementPointer", "ConcatenationUID", "InConcatenationNumber", "InConcatenationTotalNumber",
    "ConcatenationFrameOffsetNumber", "RepresentativeFrameNumber",
)
# Classic MR images require ScanningSequence (type 1); enhanced ones describe the same with EchoPulseSequence.
_SCANNING_SEQUENCE = {"SPIN": ["SE"], "GRADIENT": ["GR"], "BOTH": ["SE", "GR"]}


def _classic_top(header):
    """The enhanced header without its multi-frame encoding, as a classic image of its modality."""
    top = copy.deepcopy(header)
    for keyword in _MULTIFRAME_KEYWORDS:
        if keyword in top:
            delattr(top, keyword)
    if str(header.get("Modality", "")) == "MR":
        if "ScanningSequence" not in top:
            top.ScanningSequence = _SCANNING_SEQUENCE.get(str(header.get("EchoPulseSequence", "")).upper(), ["RM"])
        if "SequenceVariant" not in top:
            top.SequenceVariant = ["NONE"]
    return top


def frame_templates(path, header):
    """Classic-looking headers, one per frame of the enhanced image at path (header: its dataset, no pixels)."""
    if str(header.get("SOPClassUID", "")) not in CLASSIC_FOR_ENHANCED:
        raise ValueError(f"DICOM file '{path}': derived series from {header.get('SOPClassUID')} multi-frame images "
                         "are not supported; write a NIfTI or NRRD file instead")
    top = _classic_top(header)
    templates = []
    for plane in planes_of(path, header):
        template = copy.deepcopy(top)
        template.ImageOrientationPatient = [format_ds(float(v)) for v in plane.orientation]
        template.ImagePositionPatient = [format_ds(float(v)) for v in plane.position]
        template.PixelSpacing = plane.stored_pixel_spacing
        if plane.slice_thickness:
            template.SliceThickness = plane.slice_thickness
        template.ReferencedFrameNumber = plane.frame + 1
        templates.append(template)
    return templates
