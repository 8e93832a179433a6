"""What the data-consistency step costs: enhance() with and without it, same model, input and device, in one process.

    python benchmarks/data_consistency_cost.py --device cpu --cases 256x256x176 --scales 1 2 --output dc-cpu.md

Median wall time of `--repeat` calls after one warm-up call each, and peak GPU memory on CUDA. The inputs are
benchmark_enhance.py's synthetic head phantoms. Denoising (scale 1) filters groups of similar blocks, super-resolving
fixed blocks (data_consistency.py), so the two cost differently on the same input.
"""

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_enhance import CASES, case_geometry, head_phantom  # noqa: E402  (also puts the modules on sys.path)

from MRQualityMetricsLib.atomic_files import write_text_atomic  # noqa: E402


def timed_calls(array, geometry, scale, model_id, device, data_consistency, repeat):
    import torch

    from MRSuperResLib import inference

    def call():
        inference.enhance(array, geometry, scale=scale, device=device, model_id=model_id, data_consistency=data_consistency)
        if device == "cuda":
            torch.cuda.synchronize()

    call()  # warm-up: weights, cuDNN / oneDNN kernels
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return statistics.median(seconds), peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=["256x256x176"])
    parser.add_argument("--scales", nargs="+", type=int, choices=(1, 2, 3), default=[2])
    parser.add_argument("--model", default=None, help="catalogue model id (default: the device's default model)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    from MRSuperResLib import inference

    model_id = inference.model_for(args.model, args.device).id
    lines = [f"# Cost of the data-consistency step ({args.device}, {model_id})", "",
             f"- Command: `python benchmarks/data_consistency_cost.py {' '.join(sys.argv[1:])}`",
             f"- Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}", "",
             "| case | scale | without the step (s) | with it (s) | step (s) | peak GPU without / with (MB) |",
             "|---|---:|---:|---:|---:|---|"]
    for name in args.cases:
        case = CASES[name]
        array = head_phantom(case.shape_kji, case.spacing_ijk)
        geometry = case_geometry(case)
        for scale in args.scales:
            without, peak_without = timed_calls(array, geometry, scale, model_id, args.device, False, args.repeat)
            with_step, peak_with = timed_calls(array, geometry, scale, model_id, args.device, True, args.repeat)
            peaks = "—" if peak_with is None else f"{peak_without:.0f} / {peak_with:.0f}"
            lines.append(f"| {name} | {scale} | {without:.2f} | {with_step:.2f} | {with_step - without:.2f} | {peaks} |")
            print(lines[-1], flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
