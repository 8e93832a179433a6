"""How far the x2 targets lie from what the input can give: each held-out case against its noise-free acquisition.

Issue 3 asks the shipped x2 model for PSNR >= the best classical pipeline + 2 dB at SNR 10 and 20, + 1 dB at SNR 40.
For each of `mrsuperres evaluate`'s held-out cases (compare_models.evaluation_cases: same truths, grids, seeds and
PSNR in the head mask) this scores the best classical pipeline (zero-fill, NLM, BM4D when installed; each + zero-fill),
the model, and the same acquisition without noise, zero-filled and through the model. The noise-free zero-fill is
what a perfect denoiser of the measured band reaches; the model on the noise-free input is what its super-resolution
adds to that. A classical pipeline's error is then (noise-free error) + (its error in the band); the target needs
the band's error cut by `band gain needed` dB below the classical pipeline's (inf: the target lies above the
noise-free zero-fill, so no denoiser of the band reaches it, only content beyond the band). At x1 the band is all
there is, so the model's gain over BM4D there is what it does to a band (docs/evaluation/model-comparison.md).

    python scripts/target_ceiling.py --scale 2 --output ceiling.md
"""

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "MRSuperRes"), str(ROOT / "MRQualityMetrics"), str(ROOT / "scripts")]

from band_decomposition import add_case_arguments  # noqa: E402
from compare_models import evaluation_cases, log_row, markdown  # noqa: E402

from MRSuperResLib import baselines, evaluate, inference  # noqa: E402

TARGET_MARGIN_DB = {10.0: 2.0, 20.0: 2.0, 40.0: 1.0}  # issue 3's x2 targets over the best classical pipeline
COLUMNS = ("classical", "target", "model", "noise-free zero-fill", "noise-free model", "band gain needed")


def band_gain_needed(classical_db: float, target_db: float, noise_free_db: float) -> float:
    """dB by which a pipeline must cut the classical pipeline's error in the band to reach the target, when both
    keep the noise-free zero-fill's error beyond it (PSNRs of one data range; errors add as mean squares)."""
    noise_free, classical, target = (10 ** (-value / 10) for value in (noise_free_db, classical_db, target_db))
    if target <= noise_free:
        return math.inf
    return 10 * math.log10(max(classical - noise_free, 0.0) / (target - noise_free))


def _enhanced(degraded, scale, axis_name, model_id):
    return inference.enhance(degraded.array, degraded.ijk_to_ras, scale=scale, slice_axis=axis_name,
                             model_id=model_id, device="cpu")[0]


def ceilings(volumes, scale, snrs, model_id, max_slices, log=print):
    classical_methods = ("zero_fill", "nlm", "bm4d") if baselines.bm4d_available() else ("zero_fill", "nlm")
    rows = []
    # The noise-free case (snr None) comes first for each volume: each truth is read once.
    for row, degraded, axis_name, psnr in evaluation_cases(volumes, [scale], [None, *snrs], max_slices):
        if row["snr"] is None:
            zero_filled, _ = baselines.run_method("zero_fill", degraded.array, degraded.ijk_to_ras, scale, axis_name)
            noise_free = psnr(zero_filled), psnr(_enhanced(degraded, scale, axis_name, model_id))
            continue
        classical = max(psnr(baselines.run_method(method, degraded.array, degraded.ijk_to_ras, scale, axis_name)[0])
                        for method in classical_methods)
        target = classical + TARGET_MARGIN_DB.get(float(row["snr"]), 1.0)
        free_zero_fill, free_model = noise_free
        row.update(zip(COLUMNS, (classical, target, psnr(_enhanced(degraded, scale, axis_name, model_id)),
                                 free_zero_fill, free_model, band_gain_needed(classical, target, free_zero_fill))))
        log_row(row, log)
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mrsr-unet48-2d-v1", help="catalogue model id")
    add_case_arguments(parser)
    args = parser.parse_args()
    rows = ceilings(args.volumes or evaluate.default_volumes(), args.scale, args.snr, args.model, args.max_slices)
    from MRQualityMetricsLib.atomic_files import write_text_atomic

    write_text_atomic(args.output, markdown(rows, COLUMNS))


if __name__ == "__main__":
    main()
