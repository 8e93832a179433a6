"""Volume files, DICOM series and Slicer markups files for the quality metrics."""

import json
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from MRQualityMetricsLib.dicom_series import read_dicom_series
from MRQualityMetricsLib.markups_io import curve_points, read_markups_file
from MRQualityMetricsLib.measurement import LineSpec
from MRQualityMetricsLib.region_stats import region_statistics
from MRQualityMetricsLib.regions import BoxRegion, CircleRegion, PolygonRegion
from MRQualityMetricsLib.volume import LPS_TO_RAS, Volume, make_ijk_to_ras
from MRQualityMetricsLib.volume_io import read_volume, write_volume

ROOT = Path(__file__).resolve().parents[1]
GE_DICOM = ROOT / "MRSuperRes" / "Resources" / "SampleData" / "GEBrainPD"
MARKUPS = Path(__file__).resolve().parent / "Data" / "metrics"
SLICER = json.loads((MARKUPS / "slicer_reference.json").read_text())


def oblique_volume(dtype=np.int16):
    angle = np.radians(25)
    directions = np.array([[np.cos(angle), 0, np.sin(angle)], [0, -1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    assert np.linalg.det(directions) < 0  # left-handed
    array = (np.arange(5 * 6 * 7) - 40).reshape(5, 6, 7).astype(dtype)
    return Volume(array, make_ijk_to_ras((0.8, 0.6, 2.5), directions, (10.0, -20.0, 5.0)), "oblique")


@pytest.mark.parametrize("extension", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_volume_round_trip_keeps_values_and_geometry(tmp_path, extension):
    volume = oblique_volume()
    path = tmp_path / f"t1{extension}"
    write_volume(volume, path)
    loaded = read_volume(path)
    assert loaded.name == "t1"
    assert loaded.array.dtype == np.int16
    np.testing.assert_array_equal(loaded.array, volume.array)
    np.testing.assert_allclose(loaded.ijk_to_ras, volume.ijk_to_ras, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left


def test_write_volume_errors_leave_nothing_behind(tmp_path):
    volume = oblique_volume()
    with pytest.raises(ValueError, match="does not exist"):
        write_volume(volume, tmp_path / "missing" / "a.nrrd")
    with pytest.raises(ValueError, match="use one of"):
        write_volume(volume, tmp_path / "a.png")
    with pytest.raises(ValueError, match="non-empty 3D"):
        write_volume(Volume(np.zeros((0, 3, 3)), np.eye(4), "e"), tmp_path / "a.nrrd")
    assert list(tmp_path.iterdir()) == []


def _write(image, path):
    sitk.WriteImage(image, str(path))
    return path


def test_read_volume_rejects_unusable_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_volume(tmp_path / "none.nii.gz")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(ValueError, match="unsupported format"):
        read_volume(tmp_path / "image.png")
    (tmp_path / "garbage.nii").write_bytes(b"not a nifti file at all" * 20)
    with pytest.raises(ValueError, match="cannot read volume file .*garbage.nii"):
        read_volume(tmp_path / "garbage.nii")
    four = _write(sitk.JoinSeries([sitk.Image([3, 3, 3], sitk.sitkFloat32)] * 2), tmp_path / "four.nii.gz")
    with pytest.raises(ValueError, match="expected a 3D volume, got a 4D"):
        read_volume(four)
    flat = _write(sitk.Image([3, 3], sitk.sitkFloat32), tmp_path / "flat.nrrd")
    with pytest.raises(ValueError, match="got a 2D"):
        read_volume(flat)
    for name, pixel in (("vector.nrrd", sitk.sitkVectorFloat32), ("rgb.nii.gz", sitk.sitkVectorUInt8)):
        path = _write(sitk.Image([3, 3, 3], pixel, 3), tmp_path / name)
        with pytest.raises(ValueError, match="vector/RGB"):
            read_volume(path)
    empty = tmp_path / "empty.nrrd"
    empty.write_text("NRRD0004\ntype: float\ndimension: 3\nsizes: 0 4 4\nencoding: raw\n\n")
    with pytest.raises(ValueError, match="empty"):
        read_volume(empty)


def test_label_maps_are_recognised_from_header_hints(tmp_path):
    labels = sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="label map.*named like a label map"):
        read_volume(_write(labels, tmp_path / "brain-label.nrrd"))
    segmentation = sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8))
    segmentation.SetMetaData("Segment0_ID", "Segment_1")
    with pytest.raises(ValueError, match="Slicer segmentation"):
        read_volume(_write(segmentation, tmp_path / "tumour.nrrd"))
    path = _write(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.int16)), tmp_path / "intent.nii")
    with open(path, "r+b") as stream:  # NIfTI-1 header: intent_code is a short at byte 68
        stream.seek(68)
        stream.write(struct.pack("<h", 1002))
    with pytest.raises(ValueError, match="NIFTI_INTENT_LABEL"):
        read_volume(path)
    # Conservative: a float image named "label" and an integer image with other names are accepted.
    assert read_volume(_write(sitk.Image([3, 3, 3], sitk.sitkFloat32), tmp_path / "x-label.nrrd")).name == "x-label"
    assert read_volume(_write(labels, tmp_path / "t2_segmented_by_hand.nrrd")).array.dtype == np.uint8


def test_bundled_ge_dicom_series_reads_with_oblique_geometry():
    volume = read_volume(GE_DICOM)
    assert volume.array.shape == (20, 256, 256)
    np.testing.assert_allclose(volume.spacing, [0.859375, 0.859375, 7.0], atol=0.01)
    assert volume.metadata["modality"] == "MR"
    assert volume.metadata["series_description"] == "FSE PD AXIAL OBL"
    assert len(volume.metadata["files"]) == 20
    # The first sorted file's ImagePositionPatient (LPS) is voxel (0, 0, 0) in RAS.
    import pydicom

    first = pydicom.dcmread(volume.metadata["files"][0], stop_before_pixels=True)
    expected = (LPS_TO_RAS[:3, :3] @ np.array(first.ImagePositionPatient, float))
    np.testing.assert_allclose(volume.origin, expected, atol=1e-3)
    tilt = np.degrees(np.arccos(abs(volume.directions[2, 2])))
    assert tilt == pytest.approx(7.71, abs=0.05)  # oblique slices


def _copy_series(tmp_path, count=20, name="series"):
    folder = tmp_path / name
    folder.mkdir()
    # brain_001.dcm carries 2.5 MB of trailing bytes that GDCM parses slowly; the others are quick to read.
    for path in sorted(GE_DICOM.glob("*.dcm"))[1 : count + 1]:
        shutil.copy(path, folder / path.name)
    return folder


def _edit(path, **changes):
    import pydicom

    dataset = pydicom.dcmread(path)
    for tag in [tag for tag in dataset.keys() if tag.group == 0]:  # old command-group elements block saving
        del dataset[tag]
    for keyword, value in changes.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    dataset.save_as(path)


def test_dicom_folder_with_two_series_needs_a_series_uid(tmp_path):
    folder = _copy_series(tmp_path, 10)
    for path in sorted(folder.glob("*.dcm"))[5:]:
        _edit(path, SeriesInstanceUID="1.2.3.4.5", SeriesDescription="second")
    with pytest.raises(ValueError, match=r"2 DICOM series.*1\.2\.3\.4\.5 \('second', 5 files\)"):
        read_volume(folder)
    assert read_volume(folder, series_uid="1.2.3.4.5").array.shape[0] == 5
    with pytest.raises(ValueError, match="'9.9' not found"):
        read_volume(folder, series_uid="9.9")


def test_series_in_subfolders_are_found_as_exported_studies_nest_them(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    first = _copy_series(study, 3, "1")
    (first / ".thumbs").mkdir()  # hidden folders are skipped
    assert read_volume(tmp_path / "study").array.shape[0] == 3  # one series, one level down
    second = _copy_series(study, 4, "2")
    for path in second.glob("*.dcm"):
        _edit(path, SeriesInstanceUID="1.2.3.9", SeriesDescription="second")
    with pytest.raises(ValueError, match=r"2 DICOM series.*1\.2\.3\.9 \('second', 4 files\)"):
        read_volume(study)
    assert read_volume(study, series_uid="1.2.3.9").array.shape[0] == 4
    assert read_volume(first).array.shape[0] == 3
    deep = tmp_path / "a" / "b" / "c" / "d" / "e"
    deep.mkdir(parents=True)
    _copy_series(deep, 2, "series")
    with pytest.raises(ValueError, match="no DICOM image series found"):
        read_volume(tmp_path / "a")  # five levels down: not searched
    assert read_volume(tmp_path / "a" / "b").array.shape[0] == 2  # four levels down


def test_dicom_geometry_problems_are_named(tmp_path):
    folder = _copy_series(tmp_path, 6)
    files = sorted(folder.glob("*.dcm"))
    _edit(files[2], ImagePositionPatient=None)
    with pytest.raises(ValueError, match=f"{files[2].name}' has no ImagePositionPatient"):
        read_dicom_series(folder)
    shutil.copy(GE_DICOM / files[2].name, files[2])
    _edit(files[3], ImageOrientationPatient=[1, 0, 0, 0, 1, 0])
    with pytest.raises(ValueError, match=f"{files[3].name}' has ImageOrientationPatient.*contradicting"):
        read_dicom_series(folder)
    shutil.copy(GE_DICOM / files[3].name, files[3])
    files[4].unlink()
    with pytest.raises(ValueError, match="non-uniform slice spacing"):
        read_dicom_series(folder)


def test_non_mr_dicom_series_warns(tmp_path):
    folder = _copy_series(tmp_path, 3)
    for path in folder.glob("*.dcm"):
        _edit(path, Modality="CT")
    with pytest.warns(UserWarning, match="modality 'CT', not MR"):
        volume = read_volume(folder)
    assert volume.metadata["modality"] == "CT"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_volume(_copy_series(tmp_path, 3, "mr"))  # an MR series does not warn


def test_slicer_markups_files_map_to_lines_and_regions():
    line = read_markups_file(MARKUPS / "line_slicer.mrk.json")
    assert len(line) == 1 and isinstance(line[0], LineSpec) and line[0].name == "line_slicer"
    np.testing.assert_allclose(line[0].points_ras, [[-2.0, 10.5, 3.0], [1.5, 11.0, 2.5]])  # saved as LPS

    curve = read_markups_file(MARKUPS / "curve_slicer.mrk.json")[0]
    np.testing.assert_allclose(curve.points_ras, SLICER["curve_points_ras"], atol=1e-4)  # Slicer's own points
    closed = read_markups_file(MARKUPS / "closed_curve_slicer.mrk.json")[0]
    assert isinstance(closed, PolygonRegion)
    np.testing.assert_allclose(closed.points_ras, SLICER["closed_curve_points_ras"][:-1], atol=1e-4)

    roi = read_markups_file(MARKUPS / "roi_slicer.mrk.json")[0]
    assert isinstance(roi, BoxRegion)
    np.testing.assert_allclose(roi.center_ras, SLICER["roi_center_ras"])
    np.testing.assert_allclose(roi.axes_ras, SLICER["roi_axes_ras_columns"], atol=1e-9)
    np.testing.assert_allclose(roi.size_mm, SLICER["roi_size_mm"])
    volume = Volume(np.zeros((60, 60, 60)), make_ijk_to_ras((0.25, 0.25, 0.25), origin=(-3.5, -10.5, -0.5)), "v")
    assert region_statistics(volume, roi).voxels * 0.25**3 == pytest.approx(8 * 5 * 3, rel=0.03)

    points = read_markups_file(MARKUPS / "points_slicer.mrk.json", point_diameter_mm=4.0, plane="coronal")
    assert [(p.name, p.plane, p.diameter_mm) for p in points] == [("F-1", "coronal", 4.0), ("F-2", "coronal", 4.0)]
    assert isinstance(points[0], CircleRegion)
    np.testing.assert_allclose(points[1].center_ras, [-4.0, 5.0, 6.0])
    with pytest.raises(ValueError, match="needs a diameter"):
        read_markups_file(MARKUPS / "points_slicer.mrk.json")
    with pytest.raises(ValueError, match=r"plane_slicer.mrk.json'.*type 'Plane' is not supported"):
        read_markups_file(MARKUPS / "plane_slicer.mrk.json")


def _markups(tmp_path, markup, name="m.mrk.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"@schema": "https://x/markups-schema-v1.0.3.json#", "markups": [markup]}))
    return path


def _points(*positions):
    return [{"label": f"p{i}", "position": list(p), "positionStatus": "defined"} for i, p in enumerate(positions)]


def test_markups_coordinate_systems_curve_types_and_errors(tmp_path):
    ras = _markups(tmp_path, {"type": "Line", "coordinateSystem": "RAS", "controlPoints": _points((1, 2, 3), (4, 5, 6))})
    np.testing.assert_allclose(read_markups_file(ras)[0].points_ras, [[1, 2, 3], [4, 5, 6]])
    micrometres = _markups(tmp_path, {"type": "Line", "coordinateUnits": "um",
                                      "controlPoints": _points((1000, 0, 0), (0, 2000, 0))})
    np.testing.assert_allclose(read_markups_file(micrometres)[0].points_ras, [[-1, 0, 0], [0, -2, 0]])
    linear = _markups(tmp_path, {"type": "Curve", "coordinateSystem": "RAS", "curveType": "linear",
                                 "controlPoints": _points((0, 0, 0), (10, 0, 0), (10, 5, 0))})
    points = read_markups_file(linear)[0].points_ras
    assert len(points) == 21
    np.testing.assert_allclose(points[5], [5, 0, 0])
    skipped = _markups(tmp_path, {"type": "Line", "controlPoints": _points((0, 0, 0), (1, 1, 1)) + [
        {"label": "x", "positionStatus": "undefined"}]})
    assert len(read_markups_file(skipped)[0].points_ras) == 2

    bad_json = tmp_path / "bad.mrk.json"
    bad_json.write_text('{"markups": [ {"type": "Line", }')
    with pytest.raises(ValueError, match=r"bad.mrk.json': malformed JSON .* line 1"):
        read_markups_file(bad_json)
    not_markups = tmp_path / "other.json"
    not_markups.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="other.json': not a Slicer markups file"):
        read_markups_file(not_markups)
    with pytest.raises(ValueError, match="does not exist"):
        read_markups_file(tmp_path / "none.mrk.json")
    cases = [
        ({"type": "Angle", "controlPoints": []}, "type 'Angle' is not supported"),
        ({"type": "Line", "controlPoints": _points((0, 0, 0), (1, 1, 1), (2, 2, 2))}, "exactly 2"),
        ({"type": "Line", "controlPoints": [{"position": [0, "a", 0]}, {"position": [1, 1, 1]}]}, "must be numbers"),
        ({"type": "Line", "coordinateSystem": "XYZ", "controlPoints": []}, "unknown coordinateSystem"),
        ({"type": "ROI", "center": [0, 0, 0], "size": [1, 1]}, "ROI size must be a list of 3"),
        ({"type": "ROI", "center": [0, 0, 0], "size": [1, 1, 1], "insideOut": True}, "inside-out"),
        ({"type": "ClosedCurve", "controlPoints": _points((0, 0, 0), (1, 0, 0))}, "at least 3"),
        ({"type": "ClosedCurve", "controlPoints": _points((0, 0, 0), (9, 0, 0), (9, 9, 5), (0, 9, 0), (4, 4, -6))},
         "not planar"),
    ]
    for markup, message in cases:
        with pytest.raises(ValueError, match=f"m.mrk.json': .*{message}"):
            read_markups_file(_markups(tmp_path, markup))


def test_curve_points_follow_slicer_sampling():
    control = np.array([[0.0, 0, 0], [10, 0, 0], [10, 10, 0]])
    open_curve = curve_points(control)
    assert len(open_curve) == 21
    np.testing.assert_allclose(open_curve[[0, 10, 20]], control, atol=1e-12)  # passes through the points
    # Zero end derivatives (vtkParametricSpline's default constraint): the curve starts slowly.
    step = np.linalg.norm(np.diff(open_curve, axis=0), axis=1)
    assert step[0] < 0.5 * step[4]
    closed = curve_points(control, closed=True)
    assert len(closed) == 31
    np.testing.assert_allclose(closed[-1], closed[0], atol=1e-12)
