"""Compare several catalogue models with the classical pipelines on the held-out volumes (PSNR in the head mask).

The same truths, grids, seeds and metrics as `mrsuperres evaluate` (evaluate.prepare_truth over scales 1, 2, 3,
evaluate._seed, fidelity.psnr), without the figures and sharpness phantoms, so many models fit one run. Writes a
Markdown table (docs/evaluation/model-comparison.md holds one such run). Models outside the shipped catalogue:
point MRSUPERRES_MODELS_DIR at a folder with their weights and a Models.json.

    python scripts/compare_models.py --models mrsr-unet32-2d-v3 mrsr-unet16-2p5d-v7 --output comparison.md
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "MRSuperRes"), str(ROOT / "MRQualityMetrics")]

from MRSuperResLib import baselines, evaluate, fidelity, inference, simulate  # noqa: E402

SCALES = (1, 2, 3)  # the grid evaluate uses for `--scale 1 2 3`


def evaluation_cases(volumes, scales, snrs, max_slices, noise_variation=1.0):
    """(row, degraded, axis name, psnr(out)) per volume, scale and SNR: evaluate's truths, grids and seeds
    (noise_variation > 1: noise varying across the volume, simulate.noise_variation_map)."""
    for source in volumes:
        volume = evaluate.load_truth(source)
        label = evaluate._volume_label(volume, source)
        truth, geometry, voxel_axis = evaluate.prepare_truth(volume, SCALES, max_slices)
        axis_name = simulate.AXIS_NAMES[voxel_axis]
        mask, data_range = fidelity.head_mask(truth), float(truth.max())
        for scale in scales:
            for snr in snrs:
                degraded = simulate.simulate_array(truth, geometry, scale=scale, snr=snr, slice_axis=axis_name,
                                                   seed=evaluate._seed(label, scale, snr, 0),
                                                   noise_variation=noise_variation)
                yield ({"volume": label, "scale": scale, "snr": snr}, degraded, axis_name,
                       lambda out, truth=truth, mask=mask, data_range=data_range: fidelity.psnr(out, truth, mask,
                                                                                                data_range))


def baseline_psnrs(row, methods, degraded, axis_name, psnr):
    for method in methods:
        out, _ = baselines.run_method(method, degraded.array, degraded.ijk_to_ras, row["scale"], axis_name)
        row[method] = psnr(out)


def log_row(row, log=print):
    log(" ".join(f"{value:.2f}" if isinstance(value, float) else str(value) for value in row.values()))


def compare(volumes, scales, snrs, models, max_slices, data_consistency=True, log=print):
    rows = []
    for row, degraded, axis_name, psnr in evaluation_cases(volumes, scales, snrs, max_slices):
        baseline_psnrs(row, ("zero_fill", "nlm"), degraded, axis_name, psnr)
        for model_id in models:
            out, _ = inference.enhance(degraded.array, degraded.ijk_to_ras, scale=row["scale"], slice_axis=axis_name,
                                       model_id=model_id, device="cpu", data_consistency=data_consistency)
            row[model_id] = psnr(out)
        log_row(row, log)
        rows.append(row)
    return rows


def markdown(rows, columns, labels=None):
    """Table of rows (volume, scale, SNR, then the PSNR of each of `columns`, headed by `labels`)."""
    header = ["volume", "scale", "SNR", *(labels or columns)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        values = [row["volume"], str(row["scale"]), f"{row['snr']:g}", *(f"{row[c]:.2f}" for c in columns)]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--volumes", nargs="+", default=None, help="default: evaluate's held-out set")
    parser.add_argument("--scale", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--snr", nargs="+", type=float, default=[10.0, 40.0])
    parser.add_argument("--max-slices", type=int, default=8)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--no-data-consistency", action="store_true",
                        help="the networks alone, without inference's Wiener data-consistency step")
    args = parser.parse_args()
    rows = compare(args.volumes or evaluate.default_volumes(), args.scale, args.snr, args.models, args.max_slices,
                   data_consistency=not args.no_data_consistency)
    from MRQualityMetricsLib.atomic_files import write_text_atomic

    write_text_atomic(args.output, markdown(rows, ["zero_fill", "nlm", *args.models],
                                           ["zero-fill / noisy", "NLM", *args.models]))


if __name__ == "__main__":
    main()
