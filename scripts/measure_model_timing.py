"""Measure each catalogue model's run time per megavoxel and write it into Models.json ("timing").

The Enhance panel predicts a run's time from these rates (dependencies.expectedRunSeconds), so they must follow the
pipeline as it ships. For every model: whole enhance() with the shipped defaults on the benchmark's synthetic head
(benchmarks/benchmark_enhance.py, 256 x 256 x 176 by default) at x2 (`<device>_seconds_per_megavoxel`, of output
voxels) and x1 (`<device>_denoise_seconds_per_megavoxel`), after one untimed run on 8 slices (weights, CUDA
start-up). Only the given device's keys change, so CPU and GPU figures can come from different machines:

    python scripts/measure_model_timing.py --device cpu --update-catalog
    python scripts/measure_model_timing.py --device cuda --repeat 3 --output $OUT/cuda-timing.json   # GPU machine
    python scripts/measure_model_timing.py --merge cuda-timing.json                                 # back here
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "MRSuperRes"), str(ROOT / "MRQualityMetrics"), str(ROOT / "benchmarks")]

from benchmark_enhance import CASES, case_geometry, head_phantom  # noqa: E402

from MRQualityMetricsLib.atomic_files import write_text_atomic  # noqa: E402
from MRSuperResLib import inference, model_catalog  # noqa: E402

RATE_KEYS = {2: "{device}_seconds_per_megavoxel", 1: "{device}_denoise_seconds_per_megavoxel"}
WARMUP_SLICES = 8


def device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{_cpu_model()}, {cores} cores"


def _cpu_model() -> str:
    """The CPU's model name (platform.processor() is empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def seconds_per_megavoxel(model_id, device, scale, array, geometry, repeat) -> float:
    """Median seconds of whole enhance() runs per million output voxels."""
    inference.enhance(array[:WARMUP_SLICES], geometry, scale=scale, model_id=model_id, device=device)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        output, _ = inference.enhance(array, geometry, scale=scale, model_id=model_id, device=device)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) / (output.size / 1e6)


def measure(models, device, case_name, repeat, log=print) -> dict:
    """{model id: {timing key: value}} for `device`, with a `<device>_measured` sentence saying how."""
    case = CASES[case_name]
    array, geometry = head_phantom(case.shape_kji, case.spacing_ijk), case_geometry(case)
    how = (f"scripts/measure_model_timing.py on {datetime.date.today().isoformat()}: whole enhance() (shipped defaults) "
           f"on the benchmark head phantom {case_name} at x2 and x1, median of {repeat}, {device_name(device)}")
    timings = {}
    for model_id in models:
        entry = {f"{device}_measured": how}
        for scale, key in RATE_KEYS.items():
            rate = seconds_per_megavoxel(model_id, device, scale, array, geometry, repeat)
            entry[key.format(device=device)] = round(rate, 4 if rate < 0.1 else 3)
            log(f"{model_id} x{scale} {device}: {rate:.4f} s per megavoxel")
        timings[model_id] = entry
    return timings


def merge_into_catalog(timings: dict, catalog_path: Path) -> None:
    """Replace the measured keys of each model's "timing" (a single `measured` sentence of older entries goes:
    each device now says how it was measured)."""
    catalog = json.loads(catalog_path.read_text())
    entries = {entry["id"]: entry for entry in catalog["models"]}
    unknown = sorted(set(timings) - set(entries))
    if unknown:
        raise ValueError(f"not in {catalog_path}: {', '.join(unknown)}")
    for model_id, measured in timings.items():
        timing = entries[model_id].setdefault("timing", {})
        timing.pop("measured", None)
        timing.update(measured)
    write_text_atomic(catalog_path, json.dumps(catalog, indent=2) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--models", nargs="+", default=None, help="default: every model of the catalogue")
    parser.add_argument("--case", choices=list(CASES), default="256x256x176")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--output", type=Path, help="write the measured keys as JSON")
    parser.add_argument("--update-catalog", action="store_true", help="write them into Models.json")
    parser.add_argument("--merge", type=Path, help="write a JSON file of --output into Models.json; measure nothing")
    args = parser.parse_args()
    catalog_path = model_catalog.models_dir() / model_catalog.CATALOG_NAME
    if args.merge:
        merge_into_catalog(json.loads(args.merge.read_text()), catalog_path)
        return
    models = args.models or [entry["id"] for entry in json.loads(catalog_path.read_text())["models"]]
    timings = measure(models, args.device, args.case, args.repeat)
    if args.output:
        write_text_atomic(args.output, json.dumps(timings, indent=2) + "\n")
    if args.update_catalog:
        merge_into_catalog(timings, catalog_path)


if __name__ == "__main__":
    main()
