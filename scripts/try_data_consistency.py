"""Experiment (not used by the product): a Wiener-weighted k-space data-consistency step after the network.

In the acquired k-space band the output becomes net + w (input - net), w = |net|^2 / (|net|^2 + noise variance per
coefficient), so frequencies where the data are reliable come back from the input (lesion contrast) and
noise-dominated ones stay denoised. Prints the 3 mm lesion contrast and PSNR with and without it, on the phantoms, truths, crops and seeds of
`mrsuperres evaluate`, so the network columns match docs/evaluation/.

    python scripts/try_data_consistency.py data/templates/tpl-MNI152NLin6Asym_res-01_T1w.nii.gz \
        MRSuperRes/Resources/SampleData/GEBrainPD
"""

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "MRSuperRes"), str(ROOT / "MRQualityMetrics")]

from MRSuperResLib import evaluate, fidelity, inference, phantoms, simulate  # noqa: E402
from MRSuperResLib.degradation import fft2c, fourier_resample, ifft2c, resize_kspace  # noqa: E402

MODEL = "mrsr-unet32-2d-v3"


def wiener_data_consistency(low, restored, sigma):
    """low (S, r, c) input slices, restored (S, R, C) network output, sigma per-pixel noise SD -> (S, R, C)."""
    x = torch.from_numpy(np.ascontiguousarray(low, dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(restored, dtype=np.float32))
    (r, c), (rows, cols) = x.shape[-2:], y.shape[-2:]
    measured, estimate = fft2c(fourier_resample(x, (rows, cols))), fft2c(y)
    band = resize_kspace(torch.ones((1, r, c), dtype=torch.complex64), (rows, cols)).real > 0.5
    power = estimate.abs() ** 2
    weight = power / (power + sigma**2 * rows * cols / (r * c))
    return ifft2c(torch.where(band, estimate + weight * (measured - estimate), estimate)).real.numpy()


def enhance(degraded, scale, slice_axis):
    return inference.enhance(degraded.array, degraded.ijk_to_ras, scale=scale, slice_axis=slice_axis, model_id=MODEL,
                             device="cpu")[0]


def _slices_first(array, voxel_axis):
    return np.moveaxis(array, simulate.array_axis(voxel_axis), 0)


def lesion_rows():
    """The lesion phantom, seeds and sizes of evaluate.hallucination_checks (check c), at SNR 40 and noise-free."""
    for scale in (1, 2):
        size = 128 - 128 % (6 if scale > 1 else 1)
        truth, geometry, centres = phantoms.lesion_phantom((9, size, size), (1.0, 1.0, 1.0), level=100.0, contrast=0.5,
                                                           diameter_mm=3.0, per_side=3)
        centres_kji = [(c[2], c[1], c[0]) for c in centres]
        contrast = lambda array, c=centres_kji: evaluate._lesion_contrast(array, c, (1, 1, 1))  # noqa: E731
        for snr in (None, 40.0):
            degraded = simulate.simulate_array(truth, geometry, scale=scale, snr=snr, slice_axis="k",
                                               seed=evaluate._seed("lesion", scale, snr if snr else 40.0, 0))
            out = enhance(degraded, scale, "k")
            corrected = wiener_data_consistency(degraded.array, out, degraded.sigma or 0.0)
            print(f"lesion x{scale} SNR {snr}: truth {contrast(truth):.2f} network {contrast(out):.2f} "
                  f"with data consistency {contrast(corrected):.2f}")


def volume_rows(path):
    """The truths, crops and seeds of `mrsuperres evaluate --max-slices 8 --scale 1 2 3`."""
    volume = evaluate.load_truth(path)
    label = evaluate._volume_label(volume, path)
    truth, geometry, voxel_axis = evaluate.prepare_truth(volume, (1, 2, 3), 8)
    axis_name = simulate.AXIS_NAMES[voxel_axis]
    mask, data_range = fidelity.head_mask(truth), float(truth.max())
    for scale in (1, 2):
        for snr in (10.0, 40.0):
            degraded = simulate.simulate_array(truth, geometry, scale=scale, snr=snr, slice_axis=axis_name,
                                               seed=evaluate._seed(label, scale, snr, 0))
            out = enhance(degraded, scale, axis_name)
            low, restored = _slices_first(degraded.array, voxel_axis), _slices_first(out, voxel_axis)
            sigma = inference._volume_noise_sigma(np.ascontiguousarray(low), restored.shape[-2:], torch.device("cpu"))
            corrected = np.moveaxis(wiener_data_consistency(low, restored, sigma), 0, simulate.array_axis(voxel_axis))
            print(f"{label} x{scale} SNR {snr:g}: PSNR network {fidelity.psnr(out, truth, mask, data_range):.2f}"
                  f" with data consistency {fidelity.psnr(corrected, truth, mask, data_range):.2f}")


if __name__ == "__main__":
    lesion_rows()
    for argument in sys.argv[1:]:
        volume_rows(argument)
