"""`mrsuperres enhance` with the shipped model on small crops of the bundled GE PD sample (CPU): output geometry,
DICOM and NIfTI outputs that agree, warnings, intensity handling, corrupt weights and cancel (Ctrl+C)."""

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from enhanced_dicom import write_enhanced_copy
from sample_series import copy_sample_slices, tree_checksums

from MRQualityMetricsLib.volume import Volume
from MRQualityMetricsLib.volume_io import read_volume, write_volume
from MRSuperResLib import baselines, cli, inference, model_catalog

CPU_MODEL = model_catalog.get_model(None, "cpu").id  # the fast model the catalogue picks for CPUs


@pytest.fixture(scope="module")
def crop(tmp_path_factory):
    """Three middle slices of the sample as DICOM copies and as a NIfTI file, with the Volume read from them."""
    root = tmp_path_factory.mktemp("crop")
    folder = copy_sample_slices(root / "dicom", (11, 12, 13))
    volume = read_volume(folder)
    write_volume(volume, root / "pd.nii.gz")
    return folder, root / "pd.nii.gz", volume


def run_cli(capsys, *argv):
    code = cli.main(["enhance", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expected_geometry(ijk_to_ras, scale=2):
    matrix = np.array(ijk_to_ras, dtype=float)
    matrix[:3, :2] /= scale  # slice axis k (largest spacing): i and j are refined, voxel 0 stays in place
    return matrix


def test_nifti_in_nifti_out(crop, tmp_path, capsys):
    _, nifti, volume = crop
    before = tree_checksums(nifti.parent)
    code, out, err = run_cli(capsys, nifti, "--output", tmp_path / "pd_x2.nii.gz", "--device", "cpu")
    assert code == 0, err
    result = read_volume(tmp_path / "pd_x2.nii.gz")
    assert result.array.shape == (3, 512, 512) and result.array.dtype == np.float32
    np.testing.assert_allclose(result.ijk_to_ras, expected_geometry(volume.ijk_to_ras), atol=1e-4)
    assert np.all(np.isfinite(result.array)) and result.array.min() >= 0
    assert result.array.mean() == pytest.approx(volume.array.mean(), rel=0.05)  # intensities are preserved
    assert "pd_x2.nii.gz: volume 512x512x3 voxels" in out and CPU_MODEL in out
    assert "enhancing" in err
    assert tree_checksums(nifti.parent) == before  # input untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pd_x2.nii.gz"]  # no temporary files left


def test_model_and_denoise_strength_reach_the_network(crop, tmp_path, capsys):
    _, nifti, volume = crop
    quality = model_catalog.get_model(None, "cuda").id  # not the CPU default: an ignored --model is caught
    code, _, err = run_cli(capsys, nifti, "--output", tmp_path / "d0.nii.gz", "--device", "cpu", "--denoise", "0",
                           "--model", quality, "--quiet")
    assert code == 0, err
    result = read_volume(tmp_path / "d0.nii.gz").array
    same, _ = inference.enhance(volume.array, volume.ijk_to_ras, denoise=0.0, device="cpu", model_id=quality)
    np.testing.assert_allclose(result, same, atol=1e-3 * same.max())
    for denoise, model_id in ((1.0, quality), (0.0, CPU_MODEL)):
        other, _ = inference.enhance(volume.array, volume.ijk_to_ras, denoise=denoise, device="cpu", model_id=model_id)
        assert np.abs(result - other).max() > 0.01 * same.max()


@pytest.mark.parametrize("given", ["auto", "file"])
def test_a_noise_map_reaches_enhance(crop, tmp_path, capsys, given):
    _, nifti, volume = crop
    rows = np.linspace(0.5, 2.0, volume.array.shape[1], dtype=np.float32)
    field = np.ascontiguousarray(np.broadcast_to(rows[None, :, None], volume.array.shape))
    noise_map = field
    if given == "file":
        write_volume(volume.with_array(field), tmp_path / "g.nrrd")
        given = tmp_path / "g.nrrd"
    else:
        noise_map = "auto"
    code, _, err = run_cli(capsys, nifti, "--output", tmp_path / "mapped.nii.gz", "--device", "cpu", "--scale", "1",
                           "--noise-map", given, "--quiet")
    assert code == 0, err
    result = read_volume(tmp_path / "mapped.nii.gz").array
    same, _ = inference.enhance(volume.array, volume.ijk_to_ras, scale=1, device="cpu", noise_map=noise_map)
    one_level, _ = inference.enhance(volume.array, volume.ijk_to_ras, scale=1, device="cpu")
    np.testing.assert_allclose(result, same, atol=1e-3 * same.max())
    assert np.abs(result - one_level).max() > 0.01 * same.max()


def test_network_only_skips_the_data_consistency_step_and_says_so(crop, tmp_path, capsys):
    folder, _, volume = crop
    code, _, err = run_cli(capsys, folder, "--output", tmp_path / "series", "--device", "cpu", "--network-only",
                           "--scale", "1", "--quiet")
    assert code == 0, err
    result = read_volume(tmp_path / "series").array
    header = pydicom.dcmread(sorted((tmp_path / "series").iterdir())[0], stop_before_pixels=True)
    assert "network only" in header.DerivationDescription
    network, _ = inference.enhance(volume.array, volume.ijk_to_ras, scale=1, device="cpu", data_consistency=False)
    full, _ = inference.enhance(volume.array, volume.ijk_to_ras, scale=1, device="cpu")
    np.testing.assert_allclose(result, network, atol=float(header.RescaleSlope) / 2 + 1e-3 * network.max())
    assert np.abs(result - full).max() > 0.01 * full.max()


def test_dicom_series_out_matches_the_nifti_out(crop, tmp_path, capsys):
    folder, _, volume = crop
    before = tree_checksums(folder)
    code, _, err = run_cli(capsys, folder, "--output", tmp_path / "x2.nii", "--device", "cpu", "--quiet")
    assert code == 0 and err == ""
    code, out, err = run_cli(capsys, folder, "--output", tmp_path / "series", "--device", "cpu", "--quiet")
    assert (code, out, err) == (0, "", "")
    nifti, dicom = read_volume(tmp_path / "x2.nii"), read_volume(tmp_path / "series")
    assert dicom.array.shape == nifti.array.shape == (3, 512, 512)
    np.testing.assert_allclose(dicom.ijk_to_ras, nifti.ijk_to_ras, atol=1e-4)
    np.testing.assert_allclose(nifti.ijk_to_ras, expected_geometry(volume.ijk_to_ras), atol=1e-4)
    header = pydicom.dcmread(sorted((tmp_path / "series").iterdir())[0], stop_before_pixels=True)
    np.testing.assert_allclose(dicom.array, nifti.array, atol=float(header.RescaleSlope) / 2 + 1e-4)
    assert header.SeriesDescription.endswith(" enhanced x2")
    assert CPU_MODEL in header.DerivationDescription and "x2" in header.DerivationDescription
    assert tree_checksums(folder) == before


def test_enhanced_multiframe_dicom_in_matches_the_classic_series_and_gives_a_classic_series_out(crop, tmp_path, capsys):
    folder, _, _ = crop
    path, _ = write_enhanced_copy(tmp_path / "enhanced" / "mr.dcm", slices=(11, 12, 13), frame_order=(2, 0, 1))
    before = tree_checksums(path.parent)
    for source, output in ((folder, "classic.nii.gz"), (path.parent, "enhanced.nii.gz")):
        code, out, err = run_cli(capsys, source, "--output", tmp_path / output, "--device", "cpu", "--quiet")
        assert (code, out, err) == (0, "", "")
    classic, enhanced = read_volume(tmp_path / "classic.nii.gz"), read_volume(tmp_path / "enhanced.nii.gz")
    np.testing.assert_allclose(enhanced.ijk_to_ras, classic.ijk_to_ras, atol=1e-3)  # ITK: spacing of 2 slices
    np.testing.assert_allclose(enhanced.array, classic.array, atol=1e-3 * classic.array.max())
    # A derived series of an enhanced source: classic MR images, each referencing the frame it came from.
    code, out, err = run_cli(capsys, path.parent, "--output", tmp_path / "series", "--device", "cpu", "--quiet")
    assert (code, out, err) == (0, "", "")
    dicom = read_volume(tmp_path / "series")
    np.testing.assert_allclose(dicom.ijk_to_ras, enhanced.ijk_to_ras, atol=1e-4)
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in dicom.metadata["files"]]
    np.testing.assert_allclose(dicom.array, enhanced.array, atol=float(headers[0].RescaleSlope) / 2 + 1e-4)
    source = pydicom.dcmread(path, stop_before_pixels=True)
    assert {h.SOPClassUID for h in headers} == {"1.2.840.10008.5.1.4.1.1.4"}  # MR Image Storage
    assert [h.SourceImageSequence[0].ReferencedFrameNumber for h in headers] == [2, 3, 1]  # frames stored 2, 0, 1
    assert {h.SourceImageSequence[0].ReferencedSOPInstanceUID for h in headers} == {source.SOPInstanceUID}
    assert {h.SourceImageSequence[0].ReferencedSOPClassUID for h in headers} == {source.SOPClassUID}
    assert all("PerFrameFunctionalGroupsSequence" not in h and "ReferencedFrameNumber" not in h for h in headers)
    assert headers[0].ScanningSequence and headers[0].StudyInstanceUID == source.StudyInstanceUID
    assert tree_checksums(path.parent) == before


def test_non_mr_dicom_is_enhanced_with_a_warning(tmp_path, capsys):
    def as_ct(dataset, position):
        dataset.Modality = "CT"

    folder = copy_sample_slices(tmp_path / "ct", (12, 13), edit=as_ct)
    code, _, err = run_cli(capsys, folder, "--output", tmp_path / "out.nii.gz", "--device", "cpu", "--scale", "1")
    assert code == 0
    assert "mrsuperres enhance: warning:" in err and "modality 'CT', not MR" in err
    assert read_volume(tmp_path / "out.nii.gz").array.shape == (2, 256, 256)


def oblique_left_handed(volume):
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag([1.0, -1.0, 1.0]) @ np.diag(volume.spacing)  # determinant < 0
    matrix[:3, 3] = (-40.0, 25.0, 10.0)
    return Volume(array=volume.array, ijk_to_ras=matrix, name="oblique")


def test_oblique_left_handed_geometry_is_kept(crop, tmp_path, capsys):
    _, _, volume = crop
    oblique = oblique_left_handed(volume)
    write_volume(oblique, tmp_path / "oblique.nrrd")
    code, _, err = run_cli(capsys, tmp_path / "oblique.nrrd", "--output", tmp_path / "out.nrrd", "--device", "cpu",
                           "--scale", "3")
    assert code == 0, err
    result = read_volume(tmp_path / "out.nrrd")
    assert result.array.shape == (3, 768, 768)
    np.testing.assert_allclose(result.ijk_to_ras, expected_geometry(oblique.ijk_to_ras, 3), atol=1e-4)
    assert np.linalg.det(result.ijk_to_ras[:3, :3]) < 0
    # The same image content as the axial crop: the result follows the zero-filled interpolation closely.
    zero_filled, _ = baselines.zero_fill(volume.array, oblique.ijk_to_ras, scale=3)
    assert np.corrcoef(result.array.ravel(), zero_filled.ravel())[0, 1] > 0.99


def test_huge_and_tiny_intensities_scale_the_result(crop, tmp_path, capsys):
    _, _, volume = crop
    outputs = {}
    for name, gain in (("plain", 1.0), ("huge", 1e6), ("tiny", 1e-6)):
        write_volume(volume.with_array(volume.array.astype(np.float32) * gain), tmp_path / f"{name}.nrrd")
        code, _, err = run_cli(capsys, tmp_path / f"{name}.nrrd", "--output", tmp_path / f"{name}_x2.nrrd",
                               "--device", "cpu", "--quiet")
        assert code == 0, err
        outputs[name] = read_volume(tmp_path / f"{name}_x2.nrrd").array
    plain = outputs["plain"]
    for name, gain in (("huge", 1e6), ("tiny", 1e-6)):
        assert np.all(np.isfinite(outputs[name]))
        np.testing.assert_allclose(outputs[name] / gain, plain, atol=1e-3 * plain.max())


def test_negative_intensities_give_a_finite_faithful_result(crop, tmp_path, capsys):
    _, _, volume = crop
    shifted = volume.with_array(volume.array.astype(np.float32) - 400.0)  # e.g. an offset-corrected export
    write_volume(shifted, tmp_path / "shifted.nrrd")
    code, _, err = run_cli(capsys, tmp_path / "shifted.nrrd", "--output", tmp_path / "out.nrrd", "--device", "cpu")
    assert code == 0, err
    result = read_volume(tmp_path / "out.nrrd").array
    assert np.all(np.isfinite(result)) and result.min() < 0
    zero_filled, _ = baselines.zero_fill(shifted.array, shifted.ijk_to_ras, scale=2)
    assert np.corrcoef(result.ravel(), zero_filled.ravel())[0, 1] > 0.99
    assert abs(result.mean() - shifted.array.mean()) < 0.05 * np.ptp(shifted.array)


def test_corrupt_weights_fail_with_a_checksum_error_and_no_output(crop, tmp_path, capsys, monkeypatch):
    _, nifti, _ = crop
    models = tmp_path / "models"
    shutil.copytree(model_catalog.DEFAULT_MODELS_DIR, models)
    weights = models / model_catalog.get_model(CPU_MODEL).file.name
    weights.chmod(0o644)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    weights.write_bytes(bytes(data))
    monkeypatch.setenv("MRSUPERRES_MODELS_DIR", str(models))
    code, _, err = run_cli(capsys, nifti, "--output", tmp_path / "out.nii.gz", "--device", "cpu")
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("mrsuperres enhance: error: checksum mismatch") and str(weights) in lines[-1]
    assert not (tmp_path / "out.nii.gz").exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_ctrl_c_mid_run_exits_130_and_leaves_no_output(tmp_path):
    folder = copy_sample_slices(tmp_path / "dicom", range(4, 16))
    output = tmp_path / "out" / "enhanced.nii.gz"
    output.parent.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "MRSuperResLib.cli", "enhance", str(folder), "--output", str(output),
         "--scale", "3", "--device", "cpu", "--batch-size", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell's background job ignores SIGINT, and a child inherits that: give it back the default, as a
        # terminal's foreground process has it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in process.stderr:  # the first progress report: the network is running
            if "enhancing:" in line:
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and "mrsuperres: cancelled" in err
    assert list(output.parent.iterdir()) == []  # neither the output nor a temporary file
