"""`mrsuperres demo`: the README's main command, run for real on the bundled sample (CPU, fast model)."""

import csv
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest

from MRQualityMetricsLib.volume_io import read_volume
from MRSuperResLib import cli, cli_demo, model_catalog


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo") / "out"
    (output / "enhanced_x2_dicom").mkdir(parents=True)
    (output / "enhanced_x2_dicom" / "stale.dcm").write_text("from an earlier run")  # replaced as a whole
    code = cli.main(["demo", "--output", str(output), "--device", "cpu"])
    return code, output


def test_demo_writes_every_output(demo_run):
    code, output = demo_run
    assert code == 0
    names = sorted(p.name for p in output.iterdir())
    assert names == ["comparison.png", "enhanced_x2.nii.gz", "enhanced_x2_dicom", "metrics.csv", "original.nii.gz",
                     "zero_filled_x2.nii.gz"]  # no temporary or stale folders
    png = (output / "comparison.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") > 1000


def test_demo_outputs_agree_with_each_other(demo_run):
    _, output = demo_run
    original = read_volume(output / "original.nii.gz")
    enhanced = read_volume(output / "enhanced_x2.nii.gz")
    series = read_volume(output / "enhanced_x2_dicom")
    assert original.array.shape == (20, 256, 256) and enhanced.array.shape == (20, 512, 512)
    np.testing.assert_allclose(series.ijk_to_ras, enhanced.ijk_to_ras, atol=1e-4)
    files = sorted((output / "enhanced_x2_dicom").iterdir())
    assert len(files) == 20
    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    np.testing.assert_allclose(series.array, enhanced.array, atol=float(header.RescaleSlope) / 2 + 1e-4)
    assert header.StudyInstanceUID == "0.0.0.0.2.8811.20010413115754.12432"  # same study as the sample
    assert model_catalog.get_model(None, "cpu").id in header.DerivationDescription  # the fast model on a CPU


def test_metrics_table_measures_the_same_line_and_regions_on_every_volume(demo_run):
    _, output = demo_run
    with open(output / "metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    volumes = ["original", "zero-filled x2", "enhanced x2"]
    assert sorted({row["volume"] for row in rows}) == sorted(volumes)
    by_key = {(row["volume"], row["measurement"]): row for row in rows}
    for volume in volumes:
        for measurement in ("falx", "white matter", "ventricle", "background"):
            assert (volume, measurement) in by_key
        falx = by_key[(volume, "falx")]
        assert falx["polarity"] == "trough" and 0.5 < float(falx["fwhm_mm"]) < 3.0
        # Same regions at each resolution: about four times as many voxel centres inside after x2 in-plane.
        ratio = int(by_key[(volume, "white matter")]["voxels"]) / int(by_key[("original", "white matter")]["voxels"])
        assert ratio == pytest.approx(1 if volume == "original" else 4, abs=0.5)
        snr = [row for row in rows if row["volume"] == volume and row["kind"] == "snr"]
        assert len(snr) == 2 and all(math.isfinite(float(row["snr"])) and float(row["snr"]) > 5 for row in snr)
    # Zero-filling only interpolates: the mean white-matter signal does not move.
    assert float(by_key[("zero-filled x2", "white matter")]["mean"]) == pytest.approx(
        float(by_key[("original", "white matter")]["mean"]), rel=0.01)


def test_demo_regions_and_line_lie_in_the_demo_slice(demo_run):
    volume = read_volume(demo_run[1] / "original.nii.gz")  # the sample, as the demo read it
    line, regions, _, _ = cli_demo.measurement_specs(volume)
    k = volume.ras_to_ijk_points(line.points_ras)[:, 2]
    np.testing.assert_allclose(k, cli_demo.SLICE_INDEX, atol=0.01)
    for region in regions:
        slices = np.nonzero(region.mask(volume).any(axis=(1, 2)))[0]
        assert slices.tolist() == [cli_demo.SLICE_INDEX], region.name
    background = volume.array[regions[2].mask(volume)]
    assert background.mean() < 0.1 * volume.array[regions[0].mask(volume)].mean()  # air, not tissue
    assert np.count_nonzero(background == 0) < 0.05 * background.size  # inside the acquired field of view


def test_replace_folder_swaps_complete_outputs(tmp_path):
    final = tmp_path / "series"
    final.mkdir()
    (final / "old.dcm").write_text("old")
    new = tmp_path / ".series.new"
    new.mkdir()
    (new / "IMG0001.dcm").write_text("new")
    cli_demo._replace_folder(new, final)
    assert [p.name for p in tmp_path.iterdir()] == ["series"] and [p.name for p in final.iterdir()] == ["IMG0001.dcm"]


def test_summary_table_lists_every_volume():
    rows = []
    for name, fwhm in (("a", 1.0), ("b", 2.0)):
        rows.append({"volume": name, "measurement": "falx", "kind": "line", "fwhm_mm": fwhm, "erd_mm": 0.5})
        for region, sd in (("white matter", 10.0), ("background", 2.0)):
            rows.append({"volume": name, "measurement": region, "kind": "region", "mean": 100.0, "sd": sd})
        rows.append({"volume": name, "measurement": "SNR wm", "kind": "snr", "snr": 50.0 * fwhm})
    text = cli_demo.summary_table(rows, ["a", "b"])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b"]
    assert lines[1].split()[-2:] == ["1.00", "2.00"] and lines[-1].split()[-2:] == ["50.0", "100.0"]
    assert Path(cli_demo.SAMPLE_FOLDER).is_dir()
