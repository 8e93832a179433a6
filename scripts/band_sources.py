"""Where else the measured band of a super-resolution could come from: the x1 pipeline run on the input grid.

For each of `mrsuperres evaluate`'s held-out cases (compare_models.evaluation_cases) it keeps what the shipped x2 / x3
output adds beyond the band the input measured and takes the band from BAND_MODEL run at x1 on the input grid, four
ways (docs/evaluation/model-comparison.md, session 14):
  A  the x1 pipeline's output (network, Wiener step, method-noise check), zero-filled;
  B  the mean of A's band and the shipped output's;
  C  the x1 pipeline's output as the pilot of the shipped x-scale Wiener step and method-noise check;
  D  as C, with the x1 network alone as the pilot.
It writes the PSNR in the head mask per case and the 3 mm lesion contrast of evaluate.lesion_checks for each form.
--band-weights takes the band from the 3D denoiser of the measured band instead (volume_denoiser.py, session 16: its
network, then the x1 Wiener step and method-noise check). At --scale 1 form A is the x1 pipeline itself.

    python scripts/band_sources.py --band-model mrsr-unet48-2d-v1 --scale 2 --output band-sources.md
    python scripts/band_sources.py --band-weights out/mrsr-unet32-3d-band-stage2.pt --scale 1 --output band-3d.md
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from band_decomposition import add_case_arguments, split_band  # also puts the modules on sys.path
from compare_models import evaluation_cases, log_row, markdown

from MRQualityMetricsLib.volume import Volume
from MRSuperResLib import evaluate, inference, simulate
from MRSuperResLib.data_consistency import MeasuredBandRestorer
from MRSuperResLib.degradation import fourier_resample

FORMS = ("A", "B", "C", "D")


def _stack(array, slice_axis):
    return np.ascontiguousarray(np.moveaxis(array, slice_axis, 0), dtype=np.float32)


def band_from_pilot(measured, pilot, out_shape, sigma):
    """The shipped Wiener step and method-noise check of (S, r, c) `measured` slices at the scale of `out_shape`,
    guided by `pilot` (on the input grid) instead of the network's output: the pilot zero-filled to `out_shape` and
    corrected there, (S, R, C)."""
    restored = fourier_resample(torch.from_numpy(pilot), out_shape).numpy()
    MeasuredBandRestorer(measured, restored, sigma, "cpu").advance(measured.shape[0])
    return restored


def _run(degraded, axis_name, scale, model_id, data_consistency=True):
    return inference.enhance(degraded.array, degraded.ijk_to_ras, scale=scale, slice_axis=axis_name,
                             model_id=model_id, device="cpu", data_consistency=data_consistency)[0]


def catalogue_band_source(band_model_id):
    """band_source running a catalogue model at x1: (pipeline, network alone) as (S, r, c) stacks."""

    def source(degraded, axis_name, slice_axis):
        return tuple(_stack(_run(degraded, axis_name, 1, band_model_id, data_consistency), slice_axis)
                     for data_consistency in (True, False))

    return source


def volume_band_source(weights, architecture="unet32-3d"):
    """band_source running the 3D denoiser of the measured band (volume_denoiser.py) from a state-dict file: the
    network alone, and its output through the x1 Wiener step and method-noise check (the pipeline)."""
    from MRSuperResLib.volume_denoiser import VolumeDenoiserNet, denoise_stack

    model = VolumeDenoiserNet(architecture)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()

    def source(degraded, axis_name, slice_axis):
        measured = _stack(degraded.array, slice_axis)
        sigma = inference._volume_noise_sigma(measured, measured.shape[1:], torch.device("cpu"))
        ratio = inference.spacing_ratio(degraded.ijk_to_ras, simulate.AXIS_NAMES.index(axis_name))
        network = denoise_stack(model, measured, sigma, ratio, torch.device("cpu"))
        return band_from_pilot(measured, network, measured.shape[1:], sigma), network

    return source


def band_forms(degraded, axis_name, scale, model_id, band_source):
    """{form: output} on the output grid for the four forms, plus "model" (the shipped output)."""
    slice_axis = simulate.array_axis(simulate.AXIS_NAMES.index(axis_name))

    def run(run_scale, model, data_consistency=True):
        return _run(degraded, axis_name, run_scale, model, data_consistency)

    shipped, network = run(scale, model_id), run(scale, model_id, data_consistency=False)
    measured = _stack(degraded.array, slice_axis)
    in_shape, out_shape = measured.shape[1:], _stack(shipped, slice_axis).shape[1:]
    band, beyond = split_band(shipped, slice_axis, in_shape)
    network_beyond = split_band(network, slice_axis, in_shape)[1]
    sigma = inference._volume_noise_sigma(measured, out_shape, torch.device("cpu"))

    def restored_band(pilot):  # the measured band after the step guided by pilot, on the output grid
        restored = np.moveaxis(band_from_pilot(measured, pilot, out_shape, sigma), 0, slice_axis)
        return split_band(restored, slice_axis, in_shape)[0]

    x1_pipeline, x1_network = band_source(degraded, axis_name, slice_axis)
    x1_band = np.moveaxis(fourier_resample(torch.from_numpy(x1_pipeline), out_shape).numpy(), 0, slice_axis)
    forms = {
        "model": shipped,
        "A": x1_band + beyond,
        "B": 0.5 * (x1_band + band) + beyond,
        "C": restored_band(x1_pipeline) + network_beyond,
        "D": restored_band(x1_network) + network_beyond,
    }
    if float(degraded.array.min()) >= 0:  # magnitude images stay non-negative, as enhance() keeps them
        forms = {name: np.maximum(out, 0) for name, out in forms.items()}
    return forms


def psnr_rows(volumes, scale, snrs, model_id, band_source, max_slices, log=print):
    rows = []
    for row, degraded, axis_name, psnr in evaluation_cases(volumes, [scale], snrs, max_slices):
        row.update({name: psnr(out) for name, out in band_forms(degraded, axis_name, scale, model_id,
                                                                band_source).items()})
        log_row(row, log)
        rows.append(row)
    return rows


def lesion_rows(scale, snrs, model_id, band_source):
    """evaluate.lesion_checks of the shipped model and the four forms (run_method extended with the forms)."""
    config = evaluate.EvaluationConfig(volumes=[], model_id=model_id, device="cpu")
    shipped_run_method, last = evaluate.run_method, {}

    def run_method(name, array, ijk_to_ras, run_scale, slice_axis, run_config):
        if name not in FORMS:
            return shipped_run_method(name, array, ijk_to_ras, run_scale, slice_axis, run_config)
        key = (array.tobytes(), run_scale)
        if key not in last:  # lesion_checks asks for every form of one noise draw in turn: compute them once
            last.clear()
            last[key] = band_forms(Volume(array=array, ijk_to_ras=ijk_to_ras), slice_axis, run_scale, model_id,
                                   band_source)
        return last[key][name], inference.output_geometry(ijk_to_ras, array.shape, run_scale, slice_axis)[1]

    evaluate.run_method = run_method  # restored below
    try:
        return [row for snr in snrs for row in evaluate.lesion_checks((evaluate.MODEL, *FORMS), scale, snr, config)]
    finally:
        evaluate.run_method = shipped_run_method


def report(rows, lesions, scale):
    columns = ["model", *FORMS]
    lines = [markdown(rows, columns, ["shipped", *FORMS]), "| mean, SNR | " + " | ".join(["shipped", *FORMS]) + " |",
             "|---|" + "---:|" * len(columns)]
    for snr in sorted({row["snr"] for row in rows}):
        selected = [row for row in rows if row["snr"] == snr]
        lines.append(f"| {snr:g} | " + " | ".join(f"{np.mean([r[c] for r in selected]):.2f}" for c in columns) + " |")
    lines += ["", f"3 mm lesion contrast at x{scale} (`evaluate.lesion_checks`; ✗ = outside the limits):", "",
              "| SNR | lower limit | " + " | ".join(["shipped", *FORMS]) + " |", "|---|---:|" + "---:|" * len(columns)]
    for snr in sorted({row["snr"] for row in lesions}):
        selected = {row["method"]: row for row in lesions if row["snr"] == snr}
        cells = [f"{selected[m]['value']:.2f}" + ("" if selected[m]["passed"] else " ✗") for m in (evaluate.MODEL, *FORMS)]
        lines.append(f"| {snr:g} | {selected[evaluate.MODEL]['limit']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mrsr-unet48-2d-v1", help="the super-resolving model (beyond the band)")
    parser.add_argument("--band-model", default="mrsr-unet48-2d-v1", help="the model run at x1 for the band")
    parser.add_argument("--band-weights", type=Path, default=None,
                        help="instead: weights of the 3D denoiser of the measured band (volume_denoiser.py)")
    add_case_arguments(parser)
    args = parser.parse_args()
    band_source = (volume_band_source(args.band_weights) if args.band_weights
                   else catalogue_band_source(args.band_model))
    rows = psnr_rows(args.volumes or evaluate.default_volumes(), args.scale, args.snr, args.model, band_source,
                     args.max_slices)
    lesions = lesion_rows(args.scale, args.snr, args.model, band_source)
    from MRQualityMetricsLib.atomic_files import write_text_atomic

    write_text_atomic(args.output, report(rows, lesions, args.scale))


if __name__ == "__main__":
    main()
