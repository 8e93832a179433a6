"""DICOM as other scanners write it: enhanced (multi-frame) series, whose frames carry their geometry and rescale in
the functional groups, and Siemens mosaics, which are named as such."""

import numpy as np
import pydicom
import pytest
from enhanced_dicom import write_enhanced_copy
from sample_series import SAMPLE, copy_sample_slices

from MRQualityMetricsLib.dicom_series import read_dicom_series
from MRQualityMetricsLib.volume_io import read_volume

SHUFFLED = [3, 1, 2, 0] + list(range(19, 3, -1))


@pytest.fixture(scope="module")
def classic():
    return read_volume(SAMPLE)


def _item(**keywords):
    item = pydicom.Dataset()
    for keyword, value in keywords.items():
        setattr(item, keyword, value)
    return item


@pytest.mark.parametrize("orientation_per_frame", [False, True])
def test_enhanced_copy_reads_like_the_classic_series(tmp_path, classic, orientation_per_frame):
    path, _ = write_enhanced_copy(tmp_path / "enhanced" / "mr.dcm", frame_order=SHUFFLED, slope=2.0, intercept=-5.0,
                                  orientation_per_frame=orientation_per_frame)
    volume = read_dicom_series(path.parent)
    np.testing.assert_array_equal(volume.array, classic.array.astype(np.int64) * 2 - 5)  # sorted, rescaled
    np.testing.assert_allclose(volume.ijk_to_ras, classic.ijk_to_ras, atol=1e-5)
    assert volume.metadata["multiframe"] is True and volume.metadata["files"] == [str(path)]
    assert volume.metadata["slice_thickness"] == "5.00000"  # from the Pixel Measures functional group
    assert classic.metadata["multiframe"] is False


def test_frames_with_their_own_rescale(tmp_path, classic):
    def per_frame_rescale(dataset):
        del dataset.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence
        for number, frame in enumerate(dataset.PerFrameFunctionalGroupsSequence):
            frame.PixelValueTransformationSequence = [_item(RescaleSlope=1 + SHUFFLED[number] % 3,
                                                            RescaleIntercept=0, RescaleType="US")]

    path, _ = write_enhanced_copy(tmp_path / "enhanced" / "mr.dcm", frame_order=SHUFFLED, edit=per_frame_rescale)
    volume = read_dicom_series(path.parent)
    slopes = 1 + np.arange(20) % 3
    np.testing.assert_allclose(volume.array, classic.array * slopes[:, None, None])


def test_two_stacks_of_one_series_in_two_enhanced_files(tmp_path, classic):
    first, _ = write_enhanced_copy(tmp_path / "enhanced" / "a.dcm", slices=range(0, 10))
    series = pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID

    def same_series(dataset):
        dataset.SeriesInstanceUID = series

    write_enhanced_copy(tmp_path / "enhanced" / "b.dcm", slices=range(10, 20), frame_order=range(9, -1, -1),
                        edit=same_series)
    volume = read_dicom_series(tmp_path / "enhanced")
    np.testing.assert_array_equal(volume.array, classic.array)
    assert len(volume.metadata["files"]) == 2


def test_enhanced_geometry_problems_are_named(tmp_path):
    def without_groups(dataset):
        del dataset.PerFrameFunctionalGroupsSequence  # as in pydicom-data's anonymised emri_small.dcm

    path, _ = write_enhanced_copy(tmp_path / "a" / "mr.dcm", slices=range(3), edit=without_groups)
    with pytest.raises(ValueError, match=r"'.*mr\.dcm' has 0 per-frame functional groups for 3 frames"):
        read_dicom_series(path.parent)

    def third_frame_unplaced(dataset):
        del dataset.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence

    path, _ = write_enhanced_copy(tmp_path / "b" / "mr.dcm", slices=range(4), edit=third_frame_unplaced)
    with pytest.raises(ValueError, match=r"frame 3 of DICOM file '.*mr\.dcm' has no ImagePositionPatient"):
        read_dicom_series(path.parent)

    def two_echoes(dataset):  # frames 3 and 4 repeat the position of frames 1 and 2
        for number in (2, 3):
            frames = dataset.PerFrameFunctionalGroupsSequence
            frames[number].PlanePositionSequence = frames[number - 2].PlanePositionSequence

    path, _ = write_enhanced_copy(tmp_path / "c" / "mr.dcm", slices=range(4), edit=two_echoes)
    with pytest.raises(ValueError, match=r"frame \d of DICOM file .* and frame \d of DICOM file .* lie at the same "
                                         r"slice position \(several echoes"):
        read_dicom_series(path.parent)


def _mixed_series(folder, edit=None):
    """Classic images of the sample's slices 0 and 1 and an enhanced file of its slices 2 to 4, one series."""
    folder = copy_sample_slices(folder, (0, 1))
    path, _ = write_enhanced_copy(folder / "enhanced.dcm", slices=range(2, 5), frame_order=(2, 0, 1), edit=edit)
    series = pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID
    for classic_path in folder.glob("brain_*.dcm"):
        dataset = pydicom.dcmread(classic_path)
        dataset.SeriesInstanceUID = series
        dataset.save_as(classic_path)
    return folder


def test_classic_and_enhanced_images_of_one_series_stack_together(tmp_path):
    volume = read_dicom_series(_mixed_series(tmp_path / "mixed"))
    expected = read_dicom_series(copy_sample_slices(tmp_path / "classic", range(5)))
    np.testing.assert_array_equal(volume.array, expected.array)
    np.testing.assert_allclose(volume.ijk_to_ras, expected.ijk_to_ras, atol=1e-5)


def test_classic_and_enhanced_planes_must_agree(tmp_path):
    def rotated(dataset):
        dataset.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient = [
            1, 0, 0, 0, 1, 0]

    folder = _mixed_series(tmp_path / "mixed", edit=rotated)
    with pytest.raises(ValueError, match=r"frame 1 of DICOM file '.*enhanced\.dcm' has ImageOrientationPatient "
                                         r".*contradicting .* of DICOM file '.*brain_00"):
        read_dicom_series(folder)


def test_siemens_mosaic_images_are_named_as_such(tmp_path):
    def mosaic(dataset, position):
        dataset.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE", "ND", "MOSAIC"]

    folder = copy_sample_slices(tmp_path / "mosaic", (3, 4), edit=mosaic)
    with pytest.raises(ValueError, match=r"brain_004\.dcm' is a Siemens mosaic .* dcm2niix"):
        read_dicom_series(folder)
