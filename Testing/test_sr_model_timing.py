"""scripts/measure_model_timing.py: the catalogue's run-time rates, measured and merged per device."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import measure_model_timing  # noqa: E402
from benchmark_enhance import Case  # noqa: E402  (measure_model_timing put benchmarks/ on the path)


def test_measure_times_x2_and_x1_per_output_megavoxel(monkeypatch):
    monkeypatch.setitem(measure_model_timing.CASES, "tiny", Case((10, 32, 32), (1.0, 1.0, 3.0), "test volume"))
    calls, clock = [], [0.0]
    original = measure_model_timing.inference.enhance

    def counted(array, geometry, **options):
        calls.append((array.shape, options["scale"]))
        clock[0] += {2: 2.0, 1: 3.0}[options["scale"]] * (len(calls) % 3 != 1)  # timed runs: 2 s at x2, 3 s at x1
        return original(array, geometry, **options)

    monkeypatch.setattr(measure_model_timing.inference, "enhance", counted)
    monkeypatch.setattr(measure_model_timing.time, "perf_counter", lambda: clock[0])
    timings = measure_model_timing.measure(["mrsr-unet16-2p5d-v7"], "cpu", "tiny", repeat=2, log=lambda line: None)
    entry = timings["mrsr-unet16-2p5d-v7"]
    assert set(entry) == {"cpu_measured", "cpu_seconds_per_megavoxel", "cpu_denoise_seconds_per_megavoxel"}
    # Per megavoxel of output: 10 x 64 x 64 voxels at x2, 10 x 32 x 32 at x1.
    assert entry["cpu_seconds_per_megavoxel"] == pytest.approx(2.0 / (10 * 64 * 64 / 1e6), rel=1e-3)
    assert entry["cpu_denoise_seconds_per_megavoxel"] == pytest.approx(3.0 / (10 * 32 * 32 / 1e6), rel=1e-3)
    assert "tiny" in entry["cpu_measured"] and "median of 2" in entry["cpu_measured"]
    # One untimed run on 8 slices, then the timed runs on the whole volume, at each scale.
    assert calls == [((8, 32, 32), 2), ((10, 32, 32), 2), ((10, 32, 32), 2),
                     ((8, 32, 32), 1), ((10, 32, 32), 1), ((10, 32, 32), 1)]


def test_merge_replaces_only_the_measured_devices_keys(tmp_path):
    catalog = {"models": [
        {"id": "a", "timing": {"cpu_seconds_per_megavoxel": 9.0, "cuda_seconds_per_megavoxel": 0.5,
                               "measured": "an old sentence for both devices"}},
        {"id": "b", "file": "b.pt"},
    ]}
    path = tmp_path / "Models.json"
    path.write_text(json.dumps(catalog))
    measure_model_timing.merge_into_catalog(
        {"a": {"cpu_seconds_per_megavoxel": 2.0, "cpu_measured": "now"},
         "b": {"cuda_seconds_per_megavoxel": 0.01, "cuda_measured": "now"}}, path)
    merged = {entry["id"]: entry for entry in json.loads(path.read_text())["models"]}
    assert merged["a"]["timing"] == {"cpu_seconds_per_megavoxel": 2.0, "cuda_seconds_per_megavoxel": 0.5,
                                     "cpu_measured": "now"}
    assert merged["b"] == {"id": "b", "file": "b.pt",
                           "timing": {"cuda_seconds_per_megavoxel": 0.01, "cuda_measured": "now"}}
    before = path.read_text()
    with pytest.raises(ValueError, match="not in .*Models.json: c"):
        measure_model_timing.merge_into_catalog({"c": {"cpu_seconds_per_megavoxel": 1.0}}, path)
    assert path.read_text() == before


def test_the_shipped_catalogue_has_both_devices_rates_for_every_model():
    catalog = json.loads((ROOT / "MRSuperRes" / "Resources" / "Models" / "Models.json").read_text())
    for entry in catalog["models"]:
        timing = entry["timing"]
        for device in ("cpu", "cuda"):
            assert timing[f"{device}_seconds_per_megavoxel"] > 0, entry["id"]
            assert timing[f"{device}_denoise_seconds_per_megavoxel"] > 0, entry["id"]
            assert "measure_model_timing.py" in timing[f"{device}_measured"], entry["id"]
