"""The acquired in-plane matrix a DICOM header states (MRQualityMetricsLib.dicom_acquisition)."""

import pydicom
import pytest
from sample_series import SAMPLE

from MRQualityMetricsLib.dicom_acquisition import stated_acquisition_matrix
from MRQualityMetricsLib.volume_io import read_volume


def _header(**keywords):
    header = pydicom.Dataset()
    for keyword, value in keywords.items():
        setattr(header, keyword, value)
    return header


@pytest.mark.parametrize("matrix, direction, expected", [
    ([0, 512, 512, 0], "ROW", (512, 512)),  # acquired on its grid
    ([0, 256, 256, 0], "ROW", (256, 256)),  # the GE series' own tags, zero-filled to 512
    ([0, 256, 192, 0], "ROW", (256, 192)),  # phase along ROW: 192 steps across the columns
    ([256, 0, 0, 192], "COL", (192, 256)),  # phase along COL: 192 steps down the rows
    ([256, 0, 0, 192], "", (192, 256)),  # no direction: phase columns go with COL
    ([0, 320, 224, 0], "ROW", (320, 224)),
    ([0, 512, 511, 0], "ROW", (512, 512)),  # within a sample of the grid counts as the grid
])
def test_acquisition_matrix_on_a_512_grid(matrix, direction, expected):
    header = _header(AcquisitionMatrix=matrix, InPlanePhaseEncodingDirection=direction)
    assert stated_acquisition_matrix(header, 512, 512, (0.47, 0.47)) == expected


def test_percent_phase_field_of_view_counts_samples_over_the_image():
    # 256 frequency samples down 240 mm, 144 phase steps over 75 % of it (180 mm) across a 240 mm wide grid:
    # 192 samples over the image's width.
    header = _header(AcquisitionMatrix=[0, 256, 144, 0], InPlanePhaseEncodingDirection="ROW",
                     PercentPhaseFieldOfView=75)
    assert stated_acquisition_matrix(header, 512, 512, (240 / 512, 240 / 512)) == (256, 192)
    # A rectangular grid that covers just the phase field of view was not zero-filled along it.
    header.AcquisitionMatrix = [0, 256, 192, 0]
    assert stated_acquisition_matrix(header, 256, 192, (240 / 256, 240 / 256)) == (256, 192)


def test_enhanced_images_state_steps_in_their_mr_fov_geometry_group():
    geometry = _header(InPlanePhaseEncodingDirection="COL", MRAcquisitionFrequencyEncodingSteps=320,
                       MRAcquisitionPhaseEncodingStepsInPlane=256, PercentPhaseFieldOfView=100)
    header = _header(SharedFunctionalGroupsSequence=[_header(MRFOVGeometrySequence=[geometry])])
    assert stated_acquisition_matrix(header, 640, 640, (0.4, 0.4)) == (256, 320)
    # pydicom-data's emri_small keeps them at top level, for a 64 x 64 grid: taken as measured.
    top = _header(InPlanePhaseEncodingDirection="ROW", MRAcquisitionFrequencyEncodingSteps=256,
                  MRAcquisitionPhaseEncodingStepsInPlane=256)
    assert stated_acquisition_matrix(top, 64, 64, (3.75, 3.75)) == (64, 64)


@pytest.mark.parametrize("header", [
    _header(),
    _header(AcquisitionMatrix=[0, 0, 0, 0]),
    _header(AcquisitionMatrix=[0, 256, 0, 0], InPlanePhaseEncodingDirection="ROW"),
    _header(MRAcquisitionFrequencyEncodingSteps=256, MRAcquisitionPhaseEncodingStepsInPlane=192),  # no direction
])
def test_headers_that_do_not_say_give_none(header):
    assert stated_acquisition_matrix(header, 256, 256, (1.0, 1.0)) is None


def test_dicom_volumes_carry_the_stated_matrix():
    assert read_volume(SAMPLE).metadata["acquisition_matrix"] == (256, 256)
