"""Compare settings of the Wiener data-consistency step with one model: PSNR on the held-out volumes and the
3 mm lesion contrast check, the numbers behind the choices in MRSuperResLib/data_consistency.py.

Same truths, grids, seeds and PSNR as `mrsuperres evaluate --max-slices 8 --scale 1 2 3` (as in
compare_models.py). A setting is DEPTH:PASSES:EXPONENT[:GROUPS]: slices per block, Wiener passes, the exponent of
the final pass's noise, sigma / scale^EXPONENT when super-resolving (X2/X3 for one at x2 and one at x3, one number
for both), and whether the final pass filters groups of similar blocks when denoising (1, the default, or 0: fixed
blocks) or at every scale (2). 1:1:0:0 is the first, 2D single-pass form; 4:2:0.5/0.25 is what ships (4:2:1 before
session 10, 4:2:0.5 before session 20).

    python scripts/compare_wiener_settings.py --model mrsr-unet48-2d-v1 --settings 4:2:1 4:2:0.5/0.25 --output wiener.md
"""

import argparse
from pathlib import Path

import numpy as np
from compare_models import baseline_psnrs, evaluation_cases, log_row  # also puts the modules on sys.path

from MRSuperResLib import baselines, data_consistency, evaluate, inference  # noqa: E402

SCALES = (1, 2, 3)


def use_setting(setting):
    """Make inference's Wiener step use DEPTH:PASSES:EXPONENT[:GROUPS] (module state: one setting at a time)."""
    depth, passes, exponent, *groups = setting.split(":")
    data_consistency.DEPTH, data_consistency.PASSES = int(depth), int(passes)
    at_x2, _, at_x3 = exponent.partition("/")
    data_consistency.FINAL_PASS_NOISE_EXPONENT = float(at_x2)
    data_consistency.X3_FINAL_PASS_NOISE_EXPONENT = float(at_x3 or at_x2)
    data_consistency.BLOCK_MATCHING_WHEN_DENOISING = bool(int(groups[0])) if groups else True
    data_consistency.BLOCK_MATCHING_WHEN_SUPER_RESOLVING = bool(groups) and int(groups[0]) == 2


def psnr_rows(settings, methods, model_id, snrs, max_slices, scales=SCALES, log=print):
    rows = []
    for row, degraded, axis_name, psnr in evaluation_cases(evaluate.default_volumes(), scales, snrs, max_slices):
        baseline_psnrs(row, methods, degraded, axis_name, psnr)
        for setting in settings:
            use_setting(setting)
            out, _ = inference.enhance(degraded.array, degraded.ijk_to_ras, scale=row["scale"], slice_axis=axis_name,
                                       model_id=model_id, device="cpu")
            row[setting] = psnr(out)
        log_row(row, log)
        rows.append(row)
    return rows


def lesion_contrasts(settings, model_id, snrs, scales=SCALES):
    config = evaluate.EvaluationConfig(volumes=[], model_id=model_id, device="cpu")
    contrasts = {}
    for setting in settings:
        use_setting(setting)
        for scale in scales:
            for snr in snrs:
                contrasts[(setting, scale, snr)] = evaluate.lesion_checks((evaluate.MODEL,), scale, snr, config)[0]
    return contrasts


def markdown(rows, contrasts, settings, methods, scales=SCALES, snrs=(10.0, 20.0, 40.0)):
    columns = [*methods, *settings]
    lines = ["| volume | scale | SNR | " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) + 2)]
    for row in rows:
        lines.append(f"| {row['volume']} | {row['scale']} | {row['snr']:g} | "
                     + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    for scale in scales:
        means = [np.mean([row[c] for row in rows if row["scale"] == scale]) for c in columns]
        lines.append(f"| **mean** | {scale} | all | " + " | ".join(f"{m:.2f}" for m in means) + " |")
    lines += ["", "3 mm lesion contrast (`evaluate.lesion_checks`, mean of its noise draws; pass = within 10 % of "
              "the truth's and the zero-filled / noisy input's):", "",
              "| scale | SNR | limit | " + " | ".join(settings) + " |", "|---:|---:|---:|" + "---:|" * len(settings)]
    for scale in scales:
        for snr in snrs:
            found = [contrasts[(s, scale, snr)] for s in settings]
            cells = [f"{c['value']:.2f}" + ("" if c["passed"] else " (fails)") for c in found]
            lines.append(f"| {scale} | {snr:g} | {found[0]['limit']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", required=True, metavar="DEPTH:PASSES:EXPONENT[:GROUPS]")
    parser.add_argument("--model", default="mrsr-unet32-2d-v3")
    parser.add_argument("--baselines", nargs="*", default=["zero_fill", "nlm"], choices=list(baselines.METHODS))
    parser.add_argument("--snr", nargs="+", type=float, default=[10.0, 20.0, 40.0])
    parser.add_argument("--max-slices", type=int, default=8)
    parser.add_argument("--scales", nargs="+", type=int, default=list(SCALES))
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    rows = psnr_rows(args.settings, args.baselines, args.model, args.snr, args.max_slices, args.scales)
    contrasts = lesion_contrasts(args.settings, args.model, args.snr, args.scales)
    from MRQualityMetricsLib.atomic_files import write_text_atomic

    write_text_atomic(args.output, markdown(rows, contrasts, args.settings, args.baselines, args.scales, args.snr))


if __name__ == "__main__":
    main()
