"""Tests of MRSuperResLib.evaluate: classical methods, and the shipped model with and without data consistency."""

import argparse
import csv
import math

import numpy as np
import pytest

from MRQualityMetricsLib.volume import Volume, make_ijk_to_ras
from MRQualityMetricsLib.volume_io import read_volume, write_volume
from MRSuperResLib import cli_evaluate, cli_simulate, evaluate, phantoms

CLASSICAL = ("zero_fill", "bspline", "nlm")


def _head_volume(slices=6, size=72, spacing=(1.5, 1.5, 3.0)):
    """A head-like phantom: flat shapes with a bright rim, thick slices along k."""
    image = phantoms.flat_shapes((size, size), spacing[:2], level=100.0)
    ring = phantoms.supersampled((size, size), spacing[:2], phantoms.disk((size * 0.75, size * 0.75), size * 0.66))
    image = image + 30.0 * (ring - phantoms.supersampled((size, size), spacing[:2],
                                                          phantoms.disk((size * 0.75, size * 0.75), size * 0.6)))
    return Volume(array=phantoms.stack(image, slices), ijk_to_ras=make_ijk_to_ras(spacing, origin=(-50, 20, 3)),
                  name="head phantom")


def _config(tmp_path, **overrides):
    options = {"volumes": [_head_volume()], "snrs": (10.0, 40.0), "scales": (2,), "methods": CLASSICAL,
               "output_dir": tmp_path / "out", "hallucination": False}
    options.update(overrides)
    return evaluate.EvaluationConfig(**options)


def test_rows_metrics_and_files(tmp_path):
    result = evaluate.evaluate(_config(tmp_path), log=lambda line: None)
    methods = [row["method"] for row in result.rows]
    assert methods == ["truth"] + list(CLASSICAL) * 2
    for row in result.rows:
        assert set(row) == set(evaluate.COLUMNS)
    by_key = {(row["snr"], row["method"]): row for row in result.rows}
    # The truth strip is 2 pixels (3 mm) wide: its measured FWHM is 3 mm; restorations are wider.
    assert by_key[(math.inf, "truth")]["fwhm_mm"] == pytest.approx(3.0, abs=0.15)
    for method in CLASSICAL:
        assert by_key[(10.0, method)]["fwhm_mm"] > 3.0
        assert by_key[(40.0, method)]["psnr_mask"] > by_key[(10.0, method)]["psnr_mask"]  # less noise, closer
    assert by_key[(10.0, "nlm")]["psnr_mask"] > by_key[(10.0, "zero_fill")]["psnr_mask"] + 1.0  # NLM denoises
    assert all(row["seconds"] >= 0 for row in result.rows)
    out = tmp_path / "out"
    with open(out / "evaluation.csv") as stream:
        table = list(csv.DictReader(stream))
    assert tuple(table[0]) == evaluate.COLUMNS and len(table) == len(result.rows)
    summary = (out / "summary.md").read_text()
    assert "| 2 | 10 | nlm |" in summary and "head phantom" in summary
    assert (out / "figure_head phantom_x2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_denoise_only_scale_one(tmp_path):
    result = evaluate.evaluate(_config(tmp_path, scales=(1,), snrs=(10.0,), figures=False), log=lambda line: None)
    methods = [row["method"] for row in result.rows]
    assert methods == ["truth", "noisy_input", "nlm"]  # interpolators make no sense without upsampling
    noisy, nlm = result.rows[1], result.rows[2]
    assert nlm["psnr_mask"] > noisy["psnr_mask"] and nlm["ssim_mask"] > noisy["ssim_mask"]


def test_hallucination_checks_pass_for_classical_methods():
    config = evaluate.EvaluationConfig(volumes=[], methods=("zero_fill", "bspline", "nlm"))
    rows = evaluate.hallucination_checks(config.methods, 2, 40.0, config, log=lambda line: None)
    checks = {row["check"] for row in rows}
    assert checks == {"noise_only_sd", "noise_only_gradient", "flat_total_variation", "flat_overshoot",
                      "lesion_contrast"}
    assert all(row["passed"] for row in rows), [row for row in rows if not row["passed"]]
    by_key = {(row["check"], row["method"]): row for row in rows}
    assert by_key[("noise_only_sd", "zero_fill")]["value"] == pytest.approx(by_key[("noise_only_sd", "zero_fill")]["reference"])
    assert by_key[("noise_only_sd", "nlm")]["value"] < 0.5 * by_key[("noise_only_sd", "nlm")]["reference"]
    lesion = by_key[("lesion_contrast", "zero_fill")]
    assert lesion["reference"] == pytest.approx(25.0, rel=0.1)  # truth: 50 % of the level-50 background


def test_lesion_check_averages_independent_noise_draws(monkeypatch):
    """One draw moved a verdict by chance: the contrast is the mean over _LESION_REALISATIONS draws of its own."""
    seeds, contrasts = [], []
    simulate_array, lesion_contrast = evaluate.simulate.simulate_array, evaluate._lesion_contrast

    def recording_simulation(*args, seed, **kwargs):
        seeds.append(seed)
        return simulate_array(*args, seed=seed, **kwargs)

    def recording_contrast(*args):
        contrasts.append(lesion_contrast(*args))
        return contrasts[-1]

    monkeypatch.setattr(evaluate.simulate, "simulate_array", recording_simulation)
    monkeypatch.setattr(evaluate, "_lesion_contrast", recording_contrast)
    config = evaluate.EvaluationConfig(volumes=[])
    (row,) = evaluate.lesion_checks(("bicubic",), 2, 40.0, config)
    assert evaluate._LESION_REALISATIONS >= 3 and len(set(seeds)) == len(seeds) == evaluate._LESION_REALISATIONS
    # Recorded per draw: zero-fill then bicubic, after the truth's contrast.
    bicubic = contrasts[2::2]
    assert row["value"] == pytest.approx(np.mean(bicubic)) and np.ptp(bicubic) > 0


def test_lesion_check_catches_an_eraser_and_verdict_follows_the_model():
    # At scale 3 and SNR 20, 2D NLM smooths 3 mm lesions away: the check must flag it.
    config = evaluate.EvaluationConfig(volumes=[])
    rows = evaluate.hallucination_checks(("zero_fill", "nlm"), 3, 20.0, config, log=lambda line: None)
    nlm = next(row for row in rows if row["check"] == "lesion_contrast" and row["method"] == "nlm")
    assert not nlm["passed"] and nlm["value"] < 0.7 * nlm["reference"]
    assert not evaluate.checks_passed(rows)
    model_row = dict(nlm, method="model", passed=True)  # a verdict is about the model when it was evaluated
    assert evaluate.checks_passed(rows + [model_row])
    assert not evaluate.checks_passed(rows + [model_row, dict(model_row, passed=False)])  # every model row counts


def test_the_lesion_check_runs_at_every_snr_and_the_others_at_the_highest():
    """Denoising erodes a small lesion more the lower the SNR: 2D NLM passes at SNR 40 and fails at 10 (scale 2)."""
    config = evaluate.EvaluationConfig(volumes=[])
    rows = evaluate.hallucination_checks(("zero_fill", "nlm"), 2, 40.0, config, log=lambda line: None,
                                         lesion_snrs=(10.0, 40.0))
    lesion = {row["snr"]: row for row in rows if row["check"] == "lesion_contrast" and row["method"] == "nlm"}
    assert sorted(lesion) == [10.0, 40.0] and lesion[40.0]["passed"] and not lesion[10.0]["passed"]
    assert {row["snr"] for row in rows if row["check"] != "lesion_contrast"} == {40.0}


def test_prepare_truth_pads_with_air_and_keeps_physical_positions():
    """In-plane sizes are padded with zeros at the far end to a multiple of 4 (never cropped through the head), the
    4 central slices (3..6) kept, and every kept voxel stays at its RAS position."""
    volume = Volume(array=np.arange(1, 1 + 10 * 33 * 35, dtype=np.float32).reshape(10, 33, 35),
                    ijk_to_ras=make_ijk_to_ras((1.0, 1.0, 4.0), origin=(5, 6, 7)))
    truth, geometry, voxel_axis = evaluate.prepare_truth(volume, (2,), max_slices=4)
    assert voxel_axis == 2 and truth.shape == (4, 36, 36)
    np.testing.assert_allclose(geometry[:3, 3], (volume.ijk_to_ras @ [0, 0, 3, 1])[:3])
    np.testing.assert_array_equal(truth[:, :33, :35], volume.array[3:7])
    assert not truth[:, 33:].any() and not truth[:, :, 35:].any()
    sagittal = Volume(array=np.ones((24, 30, 6), dtype=np.float32), ijk_to_ras=make_ijk_to_ras((4.0, 1.0, 1.0)))
    truth, geometry, voxel_axis = evaluate.prepare_truth(sagittal, (1, 2, 3), max_slices=4)
    assert voxel_axis == 0 and truth.shape == (24, 36, 4)  # i slices 1..4; j, k padded to multiples of 12
    np.testing.assert_allclose(geometry[:3, 3], (sagittal.ijk_to_ras @ [1, 0, 0, 1])[:3])
    with pytest.raises(ValueError, match="too small"):
        evaluate.prepare_truth(Volume(np.ones((4, 10, 40)), np.eye(4)), (3,))


def test_display_orientation_is_radiological():
    # i -> patient left, j -> posterior: row 0 (smallest j) is already anterior (top), i already runs to the right.
    axial_lps = make_ijk_to_ras((1, 1, 3), np.diag([-1.0, -1.0, 1.0]))
    assert evaluate.display_orientation(axial_lps, 0) == (False, False, False)
    axial_ras = make_ijk_to_ras((1, 1, 3))  # j anterior (flip rows), i right (flip columns)
    assert evaluate.display_orientation(axial_ras, 0) == (False, True, True)


def test_bad_configuration(tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        evaluate.evaluate(_config(tmp_path, methods=("lanczos",)))
    with pytest.raises(ValueError, match="SNR"):
        evaluate.evaluate(_config(tmp_path, snrs=(0.0,)))
    with pytest.raises(ValueError, match="scales"):
        evaluate.evaluate(_config(tmp_path, scales=(4,)))
    with pytest.raises(ValueError, match="does not exist"):
        evaluate.evaluate(_config(tmp_path, volumes=[tmp_path / "missing.nii.gz"]))


def test_a_bad_volume_fails_before_the_good_ones_run(tmp_path):
    unreadable = tmp_path / "broken.nii.gz"
    unreadable.write_bytes(b"not a NIfTI file")
    lines = []
    for bad in (tmp_path / "missing.nii.gz", unreadable):
        with pytest.raises(ValueError, match=bad.name):
            evaluate.evaluate(_config(tmp_path, volumes=[_head_volume(), bad]), log=lines.append)
    assert lines == [] and not (tmp_path / "out").exists()


def _parse(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def test_command_lines_simulate_and_evaluate(tmp_path, capsys):
    truth_path = tmp_path / "phantom.nii.gz"
    write_volume(_head_volume(slices=4), str(truth_path))
    low_path = tmp_path / "low.nrrd"
    assert cli_simulate.run(_parse(cli_simulate, [str(truth_path), "-o", str(low_path), "--snr", "15", "--seed", "4"])) == 0
    low = read_volume(str(low_path))
    truth = read_volume(str(truth_path))
    assert low.array.shape == (4, 36, 36)
    np.testing.assert_allclose(low.spacing, [3.0, 3.0, 3.0], rtol=1e-5)
    np.testing.assert_allclose(low.origin, truth.origin, atol=1e-4)
    assert "noise sigma" in capsys.readouterr().out
    status = cli_evaluate.run(_parse(cli_evaluate, [
        "--volumes", str(truth_path), "--snr", "20", "--methods", "zero_fill", "bspline", "--max-slices", "3",
        "--no-figures", "--no-hallucination", "--output", str(tmp_path / "eval")]))
    assert status == 0
    rows = list(csv.DictReader(open(tmp_path / "eval" / "evaluation.csv")))
    assert [row["method"] for row in rows] == ["truth", "zero_fill", "bspline"]
    assert all(row["volume"] == "phantom" for row in rows)


def test_data_consistency_keeps_the_lesion_contrast_the_network_alone_loses():
    """Check (c) at scale 1, SNR 40 for the quality model: the Wiener step is what makes it pass."""
    config = evaluate.EvaluationConfig(volumes=[], model_id="mrsr-unet32-2d-v3", device="cpu")
    rows = evaluate.hallucination_checks(evaluate.MODEL_METHODS, 1, 40.0, config, log=lambda line: None)
    lesion = {row["method"]: row for row in rows if row["check"] == "lesion_contrast"}
    assert lesion[evaluate.MODEL]["passed"] and not lesion[evaluate.NETWORK_ONLY]["passed"]
    assert all(row["passed"] for row in rows if row["method"] == evaluate.MODEL)
