"""Derived DICOM series writer: tags of a proper derived series, and geometry/values that SimpleITK and pydicom
read back exactly as the NIfTI output of the same volume. Uses the bundled GE PD series as the source."""


import numpy as np
import pydicom
import pytest
from sample_series import SAMPLE, tree_checksums

from MRQualityMetricsLib.volume import Volume
from MRQualityMetricsLib.volume_io import read_volume, write_volume
from MRSuperResLib import dicom_export


@pytest.fixture(scope="module")
def sample():
    return read_volume(SAMPLE)


@pytest.fixture(scope="module")
def sample_headers():
    return dicom_export.read_series_headers(SAMPLE)  # the original files' headers are the templates


def upsampled(volume, factor=2, gain=1.0, offset=0.0, slices=None):
    """A volume on the output grid of an in-plane x`factor` enhancement (same origin, spacing / factor)."""
    array = volume.array[slices] if slices is not None else volume.array
    first = 0 if slices is None else slices.start
    array = np.repeat(np.repeat(array.astype(np.float32), factor, axis=1), factor, axis=2) * gain + offset
    matrix = volume.ijk_to_ras.copy()
    matrix[:3, 3] = volume.ijk_to_ras_points([0, 0, first])[0]
    matrix[:3, :2] /= factor
    return Volume(array=array, ijk_to_ras=matrix, name="enhanced")


def assert_same_physical_volume(a, b, atol):
    """Same values at the same RAS positions (index axes may be flipped or permuted)."""
    k, j, i = np.indices(b.array.shape).reshape(3, -1)
    ras = b.ijk_to_ras @ np.vstack([i, j, k, np.ones_like(i)])
    ijk_a = (np.linalg.inv(a.ijk_to_ras) @ ras)[:3]
    np.testing.assert_allclose(ijk_a, np.rint(ijk_a), atol=1e-3)
    i_a, j_a, k_a = np.rint(ijk_a).astype(int)
    np.testing.assert_allclose(a.array[k_a, j_a, i_a], b.array[k, j, i], atol=atol)


def test_derived_series_reads_back_like_the_nifti_output(sample, sample_headers, tmp_path):
    before = tree_checksums(SAMPLE)
    enhanced = upsampled(sample, gain=1.37)
    write_volume(enhanced, tmp_path / "enhanced.nii.gz")
    files = dicom_export.write_derived_series(enhanced, sample_headers, tmp_path / "series",
                                              derivation_description="MRSuperRes test")
    assert len(files) == sample.array.shape[0] and all(path.is_file() for path in files)

    nifti = read_volume(tmp_path / "enhanced.nii.gz")
    dicom = read_volume(tmp_path / "series")  # SimpleITK/GDCM, with the reader's geometry checks
    assert dicom.array.shape == nifti.array.shape == (20, 512, 512)
    np.testing.assert_allclose(dicom.ijk_to_ras, nifti.ijk_to_ras, atol=1e-4)
    slope = float(pydicom.dcmread(files[0], stop_before_pixels=True).RescaleSlope)
    assert slope == pytest.approx(enhanced.array.max() / 65535, rel=1e-6)
    np.testing.assert_allclose(dicom.array, nifti.array, atol=slope / 2 + 1e-6)
    # pydicom: the geometry built from the per-file tags is the NIfTI's too.
    headers = sorted((pydicom.dcmread(path, stop_before_pixels=True) for path in files), key=lambda d: d.InstanceNumber)
    orientation = np.array(headers[0].ImageOrientationPatient, dtype=float)
    row_spacing, column_spacing = (float(v) for v in headers[0].PixelSpacing)
    first, last = (np.array(d.ImagePositionPatient, dtype=float) for d in (headers[0], headers[-1]))
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, 0] = orientation[:3] / np.linalg.norm(orientation[:3]) * column_spacing
    ijk_to_lps[:3, 1] = orientation[3:] / np.linalg.norm(orientation[3:]) * row_spacing
    ijk_to_lps[:3, 2] = (last - first) / (len(headers) - 1)
    ijk_to_lps[:3, 3] = first
    np.testing.assert_allclose(np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_lps, nifti.ijk_to_ras, atol=1e-4)
    assert tree_checksums(SAMPLE) == before  # the source series is never modified


def test_derived_series_tags(sample, sample_headers, tmp_path):
    enhanced = upsampled(sample, slices=slice(8, 12))
    files = dicom_export.write_derived_series(
        enhanced, sample_headers, tmp_path / "series", description_suffix=" enhanced x2",
        derivation_description="MRSuperRes model m1: x2, denoise 1",
    )
    source = {float(h.SliceLocation): h for h in sample_headers}
    datasets = [pydicom.dcmread(path) for path in files]
    first = sample_headers[0]
    series_uids = {ds.SeriesInstanceUID for ds in datasets}
    sop_uids = [ds.SOPInstanceUID for ds in datasets]
    assert len(series_uids) == 1 and len(set(sop_uids)) == len(datasets)
    series_uid = series_uids.pop()
    for uid in [series_uid, *sop_uids]:
        assert pydicom.uid.UID(uid).is_valid and not uid.startswith("0.")  # the source's root is invalid
    for index, ds in enumerate(datasets):
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
        assert ds.SeriesDescription == "FSE PD AXIAL OBL enhanced x2"
        assert ds.SeriesNumber == int(first.SeriesNumber) + 1000
        assert ds.DerivationDescription == "MRSuperRes model m1: x2, denoise 1"
        for keyword in ("StudyInstanceUID", "PatientID", "PatientSex", "StudyDate", "FrameOfReferenceUID",
                        "Modality", "SOPClassUID"):
            assert ds.get(keyword) == first.get(keyword), keyword
        assert (ds.Rows, ds.Columns) == (512, 512)
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.859375 / 2] * 2)
        assert [float(v) for v in ds.ImageOrientationPatient] == pytest.approx(
            [float(v) for v in first.ImageOrientationPatient], abs=1e-9)
        assert ds.InstanceNumber == index + 1
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 16, 15, 0)
        assert not any(element.tag.is_private for element in ds)
        assert "SmallestImagePixelValue" not in ds and "PixelPaddingValue" not in ds
        # Same slice as a source image (within the source's 0.07 mm slice-spacing jitter, which the uniform
        # volume grid evens out): its position and SliceLocation, and a reference to it.
        template = source[min(source, key=lambda location: abs(location - float(ds.SliceLocation)))]
        assert float(ds.SliceLocation) == pytest.approx(float(template.SliceLocation), abs=0.1)
        assert [float(v) for v in ds.ImagePositionPatient] == pytest.approx(
            [float(v) for v in template.ImagePositionPatient], abs=0.1)
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == template.SOPInstanceUID
        expected = enhanced.array[index]
        np.testing.assert_allclose(ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept),
                                   expected, atol=float(ds.RescaleSlope) / 2 + 1e-6)


@pytest.mark.parametrize(("gain", "offset", "signed"), [(1.0, -400.0, True), (2.5e4, 0.0, False), (-3e-3, 0.0, True)])
def test_negative_huge_and_tiny_intensities_keep_their_values(sample, sample_headers, tmp_path, gain, offset,
                                                                signed):
    enhanced = upsampled(sample, gain=gain, offset=offset, slices=slice(10, 12))
    files = dicom_export.write_derived_series(enhanced, sample_headers, tmp_path / "series")
    peak = np.abs(enhanced.array).max()
    for index, path in enumerate(files):
        ds = pydicom.dcmread(path)
        assert ds.PixelRepresentation == int(signed)
        values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_allclose(values, enhanced.array[index], atol=peak / 32767 / 2 * 1.001)
        assert len(str(ds.RescaleSlope)) <= 16  # the DS limit


def test_oblique_left_handed_geometry_reads_back_at_the_same_positions(sample_headers, tmp_path):
    angle = np.deg2rad(25)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag([-1.0, 1.0, 1.0]) @ np.diag([0.5, 0.6, 3.0])  # left-handed, oblique
    matrix[:3, 3] = (20.0, -15.0, 40.0)
    array = np.random.default_rng(3).random((5, 12, 10)).astype(np.float32) * 800
    volume = Volume(array=array, ijk_to_ras=matrix, name="oblique")
    files = dicom_export.write_derived_series(volume, sample_headers, tmp_path / "series")
    read = read_volume(tmp_path / "series")
    assert np.linalg.det(read.ijk_to_ras[:3, :3]) > 0  # DICOM readers stack slices along the normal
    slope = float(pydicom.dcmread(files[0], stop_before_pixels=True).RescaleSlope)
    assert_same_physical_volume(volume, read, atol=slope / 2 + 1e-6)


def test_refuses_non_empty_folder_and_leaves_nothing_on_failure(sample, sample_headers, tmp_path):
    enhanced = upsampled(sample, slices=slice(0, 2))
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder"):
        dicom_export.write_derived_series(enhanced, sample_headers, occupied)
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(dicom_export.write_derived_series(enhanced, sample_headers, empty)) == 2  # an empty folder is fine

    broken = enhanced.with_array(enhanced.array.copy())
    broken.array[1, 5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dicom_export.write_derived_series(broken, sample_headers, tmp_path / "nan")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "occupied"]  # no partial or temporary folder


def test_multi_frame_sources_and_bad_folders_are_rejected(sample, sample_headers, tmp_path):
    multi = [h.copy() for h in sample_headers]
    multi[0].NumberOfFrames = 20
    with pytest.raises(ValueError, match="multi-frame"):
        dicom_export.write_derived_series(upsampled(sample, slices=slice(0, 2)), multi, tmp_path / "out")
    with pytest.raises(ValueError, match="no DICOM image series"):
        dicom_export.read_series_headers(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        dicom_export.read_series_headers(tmp_path / "missing")


def test_series_headers_are_chosen_by_uid(sample, tmp_path):
    first = dicom_export.write_derived_series(upsampled(sample, slices=slice(0, 2)),
                                              dicom_export.read_series_headers(SAMPLE), tmp_path / "a")
    second = dicom_export.write_derived_series(upsampled(sample, slices=slice(2, 5)),
                                               dicom_export.read_series_headers(SAMPLE), tmp_path / "b")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for path in first + second:
        (mixed / f"{path.parent.name}_{path.name}").write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="holds 2 DICOM series"):
        dicom_export.read_series_headers(mixed)
    uid = pydicom.dcmread(second[0], stop_before_pixels=True).SeriesInstanceUID
    assert len(dicom_export.read_series_headers(mixed, uid)) == 3
    with pytest.raises(ValueError, match="not found"):
        dicom_export.read_series_headers(mixed, "1.2.3")


def test_long_series_description_keeps_the_suffix():
    text = dicom_export.derived_series_description("D" * 80, " enhanced x3")
    assert len(text) == 64 and text.endswith(" enhanced x3")


def test_frames_of_an_enhanced_source_become_classic_templates(tmp_path):
    from enhanced_dicom import write_enhanced_copy

    from MRSuperResLib.dicom_frame_templates import MR_IMAGE, frame_templates

    def gradient_echo(dataset):
        dataset.EchoPulseSequence = "GRADIENT"
        dataset.MRAcquisitionType = "3D"

    path, _ = write_enhanced_copy(tmp_path / "mr.dcm", slices=(4, 5, 6), frame_order=(1, 2, 0), edit=gradient_echo)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    templates = frame_templates(str(path), header)
    assert [t.ReferencedFrameNumber for t in templates] == [1, 2, 3]  # in stored order
    first = header.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient
    np.testing.assert_allclose([float(v) for v in templates[0].ImagePositionPatient], [float(v) for v in first])
    assert all(t.ScanningSequence == "GR" and t.SequenceVariant == "NONE" and t.MRAcquisitionType == "3D"
               for t in templates)
    assert all("SharedFunctionalGroupsSequence" not in t and "NumberOfFrames" not in t for t in templates)
    assert templates[0].SOPClassUID == header.SOPClassUID != MR_IMAGE  # the source's class, for the reference

    header.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"  # multi-frame secondary capture
    with pytest.raises(ValueError, match=r"derived series from 1\.2\.840\.10008\.5\.1\.4\.1\.1\.7\.3"):
        frame_templates(str(path), header)
