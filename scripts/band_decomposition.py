"""Where a super-resolution's error lies: in the band the input measured, or in what the model adds beyond it.

For each of `mrsuperres evaluate`'s held-out cases (compare_models.evaluation_cases: same truths, grids, seeds and
PSNR in the head mask) it splits the model's output and a classical pipeline's (BM4D + zero-fill when `bm4d` is
installed, else NLM + zero-fill) into the measured band (the input's in-plane k-space extent) and the rest, and
scores four images: the model, the classical pipeline, the model's band alone (its zero-fill), and the classical
band plus the model's content beyond it. If the last is close to the classical pipeline, the model's gap to it is
a matter of denoising the band, not of super-resolution (docs/evaluation/model-comparison.md, session 12).

    python scripts/band_decomposition.py --model mrsr-unet48-2d-v1 --scale 2 --output decomposition.md
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "MRSuperRes"), str(ROOT / "MRQualityMetrics"), str(ROOT / "scripts")]

from compare_models import evaluation_cases, log_row, markdown  # noqa: E402

from MRSuperResLib import baselines, evaluate, inference, simulate  # noqa: E402
from MRSuperResLib.degradation import fourier_resample  # noqa: E402

COLUMNS = ("model", "classical", "model's band", "classical band + model beyond")


def split_band(output: np.ndarray, slice_axis: int, measured_shape) -> tuple:
    """(band, beyond) of an [k, j, i] output whose slices (along numpy axis `slice_axis`) were measured on
    `measured_shape` (rows, columns): the band is the output truncated to that k-space extent and zero-filled back,
    as the data-consistency step takes it (for an even size, the Nyquist line is only half in the band)."""
    stack = torch.from_numpy(np.ascontiguousarray(np.moveaxis(output, slice_axis, 0), dtype=np.float32))
    band = fourier_resample(fourier_resample(stack, measured_shape), stack.shape[1:])
    band = np.moveaxis(band.numpy(), 0, slice_axis)
    return band, output - band


def decompose(volumes, scale, snrs, model_id, max_slices, log=print):
    classical = "bm4d" if baselines.bm4d_available() else "nlm"
    rows = []
    for row, degraded, axis_name, psnr in evaluation_cases(volumes, [scale], snrs, max_slices):
        slice_axis = simulate.array_axis(simulate.AXIS_NAMES.index(axis_name))
        measured_shape = tuple(np.delete(degraded.array.shape, slice_axis))
        model, _ = inference.enhance(degraded.array, degraded.ijk_to_ras, scale=scale, slice_axis=axis_name,
                                     model_id=model_id, device="cpu")
        reference, _ = baselines.run_method(classical, degraded.array, degraded.ijk_to_ras, scale, axis_name)
        model_band, model_beyond = split_band(model, slice_axis, measured_shape)
        reference_band, _ = split_band(reference, slice_axis, measured_shape)
        scores = (psnr(model), psnr(reference), psnr(model_band), psnr(reference_band + model_beyond))
        row.update(zip(COLUMNS, scores))
        log_row(row, log)
        rows.append(row)
    return rows, classical


def add_case_arguments(parser, scales=None):
    """The held-out cases and the output file, as this script, band_sources.py and noise_map_check.py take them:
    one --scale, or several with `scales` (their default list)."""
    parser.add_argument("--volumes", nargs="+", default=None, help="default: evaluate's held-out set")
    if scales is None:
        parser.add_argument("--scale", type=int, default=2, choices=(1, 2, 3))
    else:
        parser.add_argument("--scale", nargs="+", type=int, default=list(scales), choices=(1, 2, 3))
    parser.add_argument("--snr", nargs="+", type=float, default=[10.0, 20.0, 40.0])
    parser.add_argument("--max-slices", type=int, default=8)
    parser.add_argument("--output", type=Path, required=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="catalogue model id (default: the CPU default)")
    add_case_arguments(parser)
    args = parser.parse_args()
    rows, classical = decompose(args.volumes or evaluate.default_volumes(), args.scale, args.snr, args.model,
                                args.max_slices)
    from MRQualityMetricsLib.atomic_files import write_text_atomic

    write_text_atomic(args.output, markdown(rows, COLUMNS, [c.replace("classical", classical.upper()) for c in COLUMNS]))


if __name__ == "__main__":
    main()
