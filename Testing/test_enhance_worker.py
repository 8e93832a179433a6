"""worker.py, the script the Slicer module runs with PythonSlicer: run here as a real subprocess with plain Python.
Protocol: PROGRESS i/N lines, one ERROR: line and exit code 2 for bad input, the result file only when complete."""

import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from MRQualityMetricsLib.volume import volume_from_sitk
from MRSuperResLib import inference, model_catalog, worker_process

# Not the CPU's default model, so a worker that ignored --model would be caught.
QUALITY_MODEL = model_catalog.get_model(None, "cuda").id


def image_geometry(image):
    return volume_from_sitk(image).ijk_to_ras


def run_worker(*argv, timeout=120):
    return subprocess.run([sys.executable, str(worker_process.WORKER_SCRIPT), *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout)


def write(path, array, vector=False):
    sitk.WriteImage(sitk.GetImageFromArray(array, isVector=vector), str(path))
    return path


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda tmp: tmp / "missing.nrrd", "cannot read input volume"),
        (lambda tmp: write(tmp / "rgb.nrrd", np.zeros((3, 8, 8, 3), np.uint8), vector=True), "vector/RGB"),
        (lambda tmp: write(tmp / "slice.nrrd", np.zeros((8, 8), np.float32)), "expected a 3D volume"),
    ],
)
def test_bad_input_gives_one_error_line_and_exit_code_2(tmp_path, make, fragment):
    source = make(tmp_path)
    result = run_worker("--input", source, "--output", tmp_path / "out.nrrd")
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and fragment in errors[0]
    assert not (tmp_path / "out.nrrd").exists()
    assert not list(tmp_path.glob(".out*"))  # no partial file


def test_output_equal_to_input_is_refused(tmp_path):
    source = write(tmp_path / "in.nrrd", np.ones((3, 8, 8), np.float32))
    before = source.read_bytes()
    result = run_worker("--input", source, "--output", source)
    assert result.returncode == 2 and "ERROR: the output file must differ" in result.stdout
    assert source.read_bytes() == before


def test_invalid_settings_are_usage_errors(tmp_path):
    source = write(tmp_path / "in.nrrd", np.ones((3, 8, 8), np.float32))
    result = run_worker("--input", source, "--output", tmp_path / "o.nrrd", "--scale", "5")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_worker_enhances_and_reports_progress(tmp_path):
    array = (np.random.default_rng(2).random((5, 24, 20)) * 300 + 100).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.9, 0.8, 5.0))
    image.SetOrigin((-10.0, 20.0, 3.0))
    sitk.WriteImage(image, str(tmp_path / "in.nrrd"))
    result = run_worker("--input", tmp_path / "in.nrrd", "--output", tmp_path / "out.nrrd", "--scale", "2",
                        "--denoise", "0.5", "--device", "cpu", "--batch-size", "2", "--model", QUALITY_MODEL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"MODEL {QUALITY_MODEL}" in result.stdout.splitlines()
    progress = [worker_process.parse_progress_line(line) for line in result.stdout.splitlines()]
    progress = [p for p in progress if p is not None]
    # Batches of 2 slices; a slice is final once the Wiener step, 6 slices behind the network, has passed it.
    assert progress == [(0, 5), (0, 5), (5, 5)]
    out = sitk.ReadImage(str(tmp_path / "out.nrrd"))
    assert out.GetSize() == (40, 48, 5)
    np.testing.assert_allclose(out.GetSpacing(), (0.45, 0.4, 5.0))
    np.testing.assert_allclose(out.GetOrigin(), (-10.0, 20.0, 3.0))
    # The settings reach the network: the in-process result with the same model and strength, not another.
    enhanced = sitk.GetArrayFromImage(out)
    same, _ = inference.enhance(array, image_geometry(image), scale=2, denoise=0.5, device="cpu", model_id=QUALITY_MODEL)
    full, _ = inference.enhance(array, image_geometry(image), scale=2, denoise=1.0, device="cpu", model_id=QUALITY_MODEL)
    fast, _ = inference.enhance(array, image_geometry(image), scale=2, denoise=0.5, device="cpu")
    np.testing.assert_allclose(enhanced, same, atol=1e-3 * same.max())
    for other in (full, fast):
        assert np.abs(enhanced - other).max() > 0.01 * same.max()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nrrd", "out.nrrd"]


def test_worker_restores_a_zero_filled_volume_from_the_stated_matrix(tmp_path):
    """--stated-matrix (what the Slicer module reads from the DICOM header) reaches the detection: at SNR 10 the
    spectrum alone misses this zero-filling, the stated 128 x 128 is confirmed and used."""
    from sample_series import zero_filled_slices

    image = sitk.GetImageFromArray(zero_filled_slices(range(7, 10), (128, 128), 10.0).astype(np.float32))
    image.SetSpacing((0.86, 0.86, 7.0))
    sitk.WriteImage(image, str(tmp_path / "in.nrrd"))
    result = run_worker("--input", tmp_path / "in.nrrd", "--output", tmp_path / "out.nrrd", "--scale", "1",
                        "--device", "cpu", "--stated-matrix", "128x128")
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("WARNING: ")]
    assert any("from 128x128 (the DICOM header's acquisition matrix" in line for line in warnings), result.stdout
    assert sitk.ReadImage(str(tmp_path / "out.nrrd")).GetSize() == (256, 256, 3)
