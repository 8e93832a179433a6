"""`mrsuperres enhance`: every bad input or path ends with exit code 1 and a one-line reason, before the model
is loaded, leaving the input untouched and no output behind. (The runs with the model: test_cli_enhance.py.)"""

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from sample_series import SAMPLE, copy_sample_slices, tree_checksums

from MRSuperResLib import cli, cli_enhance


def run_cli(capsys, *argv):
    code = cli.main(["enhance", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_failure(code, err, *fragments):
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("mrsuperres enhance: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_image(path, array, spacing=(0.9, 0.9, 4.0)):
    image = sitk.GetImageFromArray(array, isVector=array.ndim == 4)
    image.SetSpacing(spacing[: image.GetDimension()])
    sitk.WriteImage(image, str(path))
    return path


def dicom_copy(tmp_path, indices=(9, 10, 11), edit=None, name="dicom"):
    return copy_sample_slices(tmp_path / name, indices, edit)


@pytest.fixture
def volume_file(tmp_path):
    return write_image(tmp_path / "t2.nii.gz", np.random.default_rng(0).random((4, 16, 16)).astype(np.float32))


def test_output_equal_to_input_is_refused(tmp_path, capsys, volume_file):
    before = tree_checksums(tmp_path)
    code, _, err = run_cli(capsys, volume_file, "--output", volume_file)
    assert_one_line_failure(code, err, "is the input")
    code, _, err = run_cli(capsys, volume_file, "--output", tmp_path / "." / "t2.nii.gz")
    assert_one_line_failure(code, err, "is the input")
    assert tree_checksums(tmp_path) == before


def test_output_inside_the_input_dicom_folder_is_refused(tmp_path, capsys):
    folder = dicom_copy(tmp_path)
    before = tree_checksums(folder)
    code, _, err = run_cli(capsys, folder, "--output", folder / "enhanced")
    assert_one_line_failure(code, err, "inside the input DICOM folder")
    assert tree_checksums(folder) == before


@pytest.mark.parametrize(
    ("make_input", "output_name", "extra", "fragment"),
    [
        (lambda tmp: tmp / "missing.nii.gz", "out.nii.gz", [], "does not exist"),
        (lambda tmp: write_image(tmp / "v.nii.gz", np.zeros((3, 8, 8), np.float32)), "out", [],
         "no volume file extension"),
        (lambda tmp: write_image(tmp / "v.nii.gz", np.zeros((3, 8, 8), np.float32)), "out.nhdr", [],
         "cannot write"),
        (lambda tmp: write_image(tmp / "v.nii.gz", np.zeros((3, 8, 8), np.float32)), "series", ["--output-format",
                                                                                             "dicom"], "DICOM input"),
        (lambda tmp: write_image(tmp / "v.nii.gz", np.zeros((3, 8, 8), np.float32)), "out.nii.gz",
         ["--series", "1.2.3"], "DICOM folder input only"),
        (lambda tmp: write_image(tmp / "v.nii.gz", np.zeros((3, 8, 8), np.float32)), "no/such/folder/out.nii.gz",
         [], "does not exist"),
        (lambda tmp: write_image(tmp / "v.nii.gz", np.ones((3, 8, 8), np.float32)), "out.nii.gz",
         ["--noise-map", "sometimes"], "neither off, auto nor an existing file"),
    ],
)
def test_bad_paths_and_options(tmp_path, capsys, make_input, output_name, extra, fragment):
    source = make_input(tmp_path)
    code, _, err = run_cli(capsys, source, "--output", tmp_path / output_name, *extra)
    assert_one_line_failure(code, err, fragment)
    assert not (tmp_path / output_name).exists()


@pytest.mark.parametrize(("shape", "spacing"), [((3, 8, 9), (0.9, 0.9, 4.0)), ((3, 8, 8), (0.9, 0.9, 3.0))])
def test_a_noise_map_off_the_input_grid_is_refused(tmp_path, capsys, shape, spacing):
    source = write_image(tmp_path / "v.nii.gz", np.ones((3, 8, 8), np.float32))
    noise_map = write_image(tmp_path / "g.nii.gz", np.ones(shape, np.float32), spacing)
    code, _, err = run_cli(capsys, source, "--output", tmp_path / "out.nii.gz", "--noise-map", noise_map)
    assert_one_line_failure(code, err, "does not lie on the input's grid")
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("garbage.nii.gz", b"this is not a NIfTI file at all" * 10, "cannot read"),
        ("truncated.nrrd", b"NRRD0004\ntype: float\ndimension: 3\nsizes: 64 64 64\nencoding: raw\n\n\x00\x00", "cannot read"),
        ("empty.mha", b"", "cannot read"),
    ],
)
def test_unreadable_files(tmp_path, capsys, name, content, fragment):
    source = tmp_path / name
    source.write_bytes(content)
    code, _, err = run_cli(capsys, source, "--output", tmp_path / "out.nii.gz")
    assert_one_line_failure(code, err, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no output, no temporary file


@pytest.mark.parametrize(
    ("name", "array", "fragment"),
    [
        ("cine.nii.gz", np.zeros((2, 3, 8, 8), np.float32), "4D"),  # 4D (time series)
        ("rgb.nrrd", np.zeros((3, 8, 8, 3), np.uint8), "vector/RGB"),
        ("brain-label.nrrd", np.zeros((3, 8, 8), np.uint8), "label map"),
        ("slice.nrrd", np.zeros((8, 8), np.float32), "2D"),
    ],
)
def test_volumes_that_are_not_scalar_3d_images(tmp_path, capsys, name, array, fragment):
    path = tmp_path / name
    if array.ndim == 4 and name.startswith("cine"):
        image = sitk.JoinSeries([sitk.GetImageFromArray(a) for a in array])  # a real 4D image
        sitk.WriteImage(image, str(path))
    else:
        write_image(path, array)
    before = tree_checksums(tmp_path)
    code, _, err = run_cli(capsys, path, "--output", tmp_path / "out.nii.gz")
    assert_one_line_failure(code, err, fragment)
    assert tree_checksums(tmp_path) == before


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_voxels(tmp_path, capsys, bad):
    array = np.ones((3, 8, 8), np.float32)
    array[1, 2, 3] = bad
    path = write_image(tmp_path / "nan.nrrd", array)  # NRRD keeps NaN/Inf (ITK's NIfTI IO turns them into 0)
    code, _, err = run_cli(capsys, path, "--output", tmp_path / "out.nii.gz")
    assert_one_line_failure(code, err, "1 NaN or infinite")


def test_dicom_folder_with_several_series_lists_them(tmp_path, capsys):
    folder = dicom_copy(tmp_path, indices=(9, 10, 11))

    def other_series(dataset, position):
        dataset.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1"
        dataset.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.2.{position}"
        dataset.SeriesDescription = "second"

    other = dicom_copy(tmp_path, indices=(3, 4), edit=other_series, name="other")
    for path in other.iterdir():
        shutil.copy(path, folder / f"b_{path.name}")
    code, _, err = run_cli(capsys, folder, "--output", tmp_path / "out.nii.gz")
    assert_one_line_failure(code, err, "2 DICOM series", "1.2.826.0.1.3680043.8.498.1",
                            "0.0.0.0.3.8811.2.20010413115754.12432")


def test_dicom_with_missing_or_contradicting_position_tags(tmp_path, capsys):
    def drop_position(dataset, position):
        if position == 1:
            del dataset.ImagePositionPatient

    folder = dicom_copy(tmp_path, edit=drop_position, name="missing")
    code, _, err = run_cli(capsys, folder, "--output", tmp_path / "a.nii.gz")
    assert_one_line_failure(code, err, "ImagePositionPatient")

    def tilt(dataset, position):
        if position == 2:
            dataset.ImageOrientationPatient = [1, 0, 0, 0, 0.8, 0.6]

    folder = dicom_copy(tmp_path, edit=tilt, name="contradicting")
    code, _, err = run_cli(capsys, folder, "--output", tmp_path / "b.nii.gz")
    assert_one_line_failure(code, err, "ImageOrientationPatient", "contradicting")


def test_dicom_output_into_a_non_empty_folder_is_refused_before_processing(tmp_path, capsys):
    folder = dicom_copy(tmp_path)
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("keep")
    code, _, err = run_cli(capsys, folder, "--output", target)
    assert_one_line_failure(code, err, "not an empty folder")
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_dicom_output_from_an_unsupported_multiframe_source_is_refused_before_processing(tmp_path, capsys,
                                                                                          monkeypatch):
    from enhanced_dicom import write_enhanced_copy

    from MRSuperResLib import inference

    def secondary_capture(dataset):
        dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"  # multi-frame grayscale word secondary capture

    path, _ = write_enhanced_copy(tmp_path / "sc" / "sc.dcm", slices=(8, 9), edit=secondary_capture)
    monkeypatch.setattr(inference, "model_for", lambda *args: pytest.fail("the model was loaded"))
    code, _, err = run_cli(capsys, path.parent, "--output", tmp_path / "series")
    assert_one_line_failure(code, err, "1.2.840.10008.5.1.4.1.1.7.3", "not supported", "NIfTI or NRRD")
    assert not (tmp_path / "series").exists()


@pytest.mark.parametrize("argv", [["--denoise", "1.5"], ["--denoise", "-0.1"], ["--scale", "4"],
                                  ["--batch-size", "0"], ["--device", "tpu"], ["--slice-axis", "x"],
                                  ["--acquired-matrix", "256"], ["--acquired-matrix", "0x64"]])
def test_out_of_range_options_are_usage_errors(tmp_path, capsys, volume_file, argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["enhance", str(volume_file), "--output", str(tmp_path / "o.nii.gz"), *argv])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_output_format_choice():
    assert cli_enhance.choose_output_format(SAMPLE, "x.nii.gz") == "file"
    assert cli_enhance.choose_output_format(SAMPLE, "series_folder") == "dicom"
    assert cli_enhance.choose_output_format(SAMPLE, "x.nrrd", "file") == "file"
    with pytest.raises(ValueError, match="folder, not to a file"):
        cli_enhance.choose_output_format(SAMPLE, "x.nii.gz", "dicom")


def test_writable_extensions_match_the_volume_writer():
    from MRQualityMetricsLib.volume_io import WRITE_EXTENSIONS

    assert set(cli_enhance.VOLUME_EXTENSIONS) == set(WRITE_EXTENSIONS)


def test_progress_bar_on_a_pipe_prints_every_ten_percent():
    import io

    stream = io.StringIO()
    bar = cli_enhance.ProgressBar(stream)
    for done in range(0, 41):
        bar(done, 40)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and lines[0].startswith("  enhancing: 0/40") and "40/40 slices (100 %)" in lines[-1]
