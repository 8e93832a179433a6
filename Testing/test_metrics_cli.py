"""`mrqualitymetrics measure` and `study` end to end: files in, CSV/PNG out, one-line errors, no partial output."""

import csv
import json
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest

from MRQualityMetricsLib.cli import main
from MRQualityMetricsLib.measurement import COLUMN_NAMES
from MRQualityMetricsLib.profile_export import PROFILE_COLUMNS
from MRQualityMetricsLib.study_stats import STUDY_COLUMNS
from MRQualityMetricsLib.volume import Volume, make_ijk_to_ras
from MRQualityMetricsLib.volume_io import write_volume

SIGMA = 2.0  # mm, Gaussian sheet across R at R = 0
FWHM = 2 * np.sqrt(2 * np.log(2)) * SIGMA


def phantom(spacing, seed):
    """Sheet exp(-R^2 / 2 s^2) * 400 + 100, a noisy disc of 300 +- 10 at (8, 8, 0), air (Rayleigh, sigma 5)."""
    rng = np.random.default_rng(seed)
    counts = np.round(np.array([30.0, 30.0, 10.0]) / spacing).astype(int) + 1
    origin = -np.array([15.0, 15.0, 5.0])
    matrix = make_ijk_to_ras(spacing, np.diag([1.0, 1.0, 1.0]), origin)
    k, j, i = np.meshgrid(*[np.arange(n) for n in counts[::-1]], indexing="ij")
    ras = np.stack([i, j, k], axis=-1) @ matrix[:3, :3].T + matrix[:3, 3]
    array = 100 + 400 * np.exp(-ras[..., 0] ** 2 / (2 * SIGMA**2))
    disc = np.linalg.norm(ras[..., :2] - (8.0, 8.0), axis=-1) <= 3.0
    array[disc] = 300 + rng.normal(0, 10, disc.sum())
    air = ras[..., 1] < -10
    array[air] = np.abs(rng.normal(0, 5, air.sum()) + 1j * rng.normal(0, 5, air.sum()))
    return Volume(array.astype(np.float32), matrix, "phantom")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    write_volume(phantom(np.array([0.5, 0.5, 1.0]), 1), folder / "DLR.nii.gz")
    write_volume(phantom(np.array([1 / 3, 1 / 3, 1.0]), 2), folder / "SR.nrrd")
    line = {"type": "Line", "coordinateSystem": "LPS", "controlPoints": [
        {"label": "a", "position": [10.0, 0.0, 0.0]}, {"label": "b", "position": [-10.0, 0.0, 0.0]}]}
    (folder / "septum.mrk.json").write_text(json.dumps({"markups": [line]}))
    roi = {"type": "ROI", "coordinateSystem": "RAS", "center": [0.0, -12.5, 0.0], "size": [20.0, 4.0, 4.0],
           "orientation": [1, 0, 0, 0, 1, 0, 0, 0, 1]}
    (folder / "air.mrk.json").write_text(json.dumps({"markups": [roi]}))
    return folder


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def test_entry_point_is_the_cli_main():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "mrqualitymetrics"]
    assert script.value == "MRQualityMetricsLib.cli:main"


def test_measure_writes_results_profiles_and_plot(files, tmp_path, capsys):
    output = tmp_path / "results.csv"
    arguments = [
        "measure", str(files / "DLR.nii.gz"), str(files / "SR.nrrd"),
        "--line", str(files / "septum.mrk.json"), "--roi", str(files / "air.mrk.json"),
        "--circle", "disc=8,8,0,4", "--snr", "disc", "--snr", "disc:air", "--cnr", "disc:air",
        "--contrast-ratio", "disc:air", "--rayleigh",
        "--output", str(output), "--profiles", str(tmp_path / "profiles.csv"), "--plot", str(tmp_path / "p.png"),
    ]
    assert main(arguments) == 0
    assert "wrote 14 rows" in capsys.readouterr().out
    with open(output, newline="") as stream:
        assert next(csv.reader(stream)) == COLUMN_NAMES
    rows = {(row["volume"], row["measurement"]): row for row in read_csv(output)}
    for volume, pixel_area in (("DLR", 0.25), ("SR", 1 / 9)):
        line = rows[(volume, "septum")]
        assert float(line["fwhm_mm"]) == pytest.approx(FWHM, rel=0.01)
        assert line["polarity"] == "peak"
        disc = rows[(volume, "disc")]
        assert int(disc["voxels"]) * pixel_area == pytest.approx(np.pi * 4, rel=0.1)
        assert float(disc["mean"]) == pytest.approx(300, abs=6)
        assert float(rows[(volume, "SNR disc / air")]["snr"]) == pytest.approx(300 / 5, rel=0.1)  # Rayleigh
        assert rows[(volume, "CNR disc - air")]["method"].startswith("CNR = (SI_A - SI_B) / sqrt")
        assert "0.655" in rows[(volume, "SNR disc / air")]["method"]
        assert float(rows[(volume, "CR disc / air")]["contrast_ratio"]) == pytest.approx(
            float(disc["mean"]) / float(rows[(volume, "air")]["mean"]))
    profiles = read_csv(tmp_path / "profiles.csv")
    assert list(profiles[0]) == PROFILE_COLUMNS
    assert {(p["volume"], p["line"]) for p in profiles} == {("DLR", "septum"), ("SR", "septum")}
    # The line was saved in LPS: R goes from -10 to +10.
    first = profiles[0]
    assert float(first["r_mm"]) == pytest.approx(-10.0) and float(first["distance_mm"]) == 0.0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "profiles.csv", "results.csv"]


def test_failure_is_one_line_and_leaves_outputs_untouched(files, tmp_path):
    output = tmp_path / "results.csv"
    output.write_text("previous results\n")
    command = [sys.executable, "-m", "MRQualityMetricsLib.cli", "measure", str(files / "DLR.nii.gz"),
               "--line", str(files / "septum.mrk.json"), "--circle", "far=200,0,0,5",
               "--output", str(output), "--profiles", str(tmp_path / "profiles.csv")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mrqualitymetrics: error: ")
    assert "far" in lines[0] and "DLR" in lines[0]
    assert output.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["measure", "{DLR}", "--output", "{out}"], "nothing to measure"),
        (["measure", "{DLR}", "--circle", "c=1,2,3", "--output", "{out}"], "NAME=R,A,S,DIAMETER_MM"),
        (["measure", "{DLR}", "--circle", "c=0,0,0,4", "--snr", "c:x", "--output", "{out}"], "unknown region 'x'"),
        (["measure", "{DLR}", "--roi", "{septum}", "--output", "{out}"], "holds a line"),
        (["measure", "{DLR}", "--line", "{air}", "--output", "{out}"], "holds a region"),
        (["measure", "{missing}", "--circle", "c=0,0,0,4", "--output", "{out}"], "does not exist"),
        (["measure", "{DLR}", "--circle", "c=0,0,0,4"], "required: --output"),
        (["study", "{septum}", "--output", "{out}"], "missing column"),
        (["measure", "{DLR}", "--line", "{septum}", "--step-mm", "0", "--output", "{out}"], "positive"),
    ],
)
def test_errors_exit_1_without_output(files, tmp_path, capsys, arguments, message):
    paths = {"DLR": files / "DLR.nii.gz", "out": tmp_path / "out.csv", "septum": files / "septum.mrk.json",
             "air": files / "air.mrk.json", "missing": tmp_path / "missing.nii"}
    assert main([a.format(**paths) for a in arguments]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("mrqualitymetrics: error: ") and message in error and "\n" not in error
    assert not (tmp_path / "out.csv").exists()


def test_study_command(tmp_path):
    cases = tmp_path / "CASES.csv"
    lines = ["case,reconstruction,metric,value"]
    for index, (a, b) in enumerate(zip([1.2, 1.0, 1.5, 0.9], [1.9, 1.6, 2.4, 1.5])):
        lines += [f"p{index},SR,FWHM,{a}", f"p{index},DLR,FWHM,{b}"]
    cases.write_text("\n".join(lines) + "\n")
    assert main(["study", str(cases), "--output", str(tmp_path / "summary.csv"), "--reconstructions", "SR,DLR"]) == 0
    (row,) = read_csv(tmp_path / "summary.csv")
    assert list(row) == STUDY_COLUMNS
    assert float(row["mean_difference"]) == pytest.approx(-0.7)
    assert float(row["ci95_high"]) < 0 < 0.05 > float(row["p_paired_t"])
