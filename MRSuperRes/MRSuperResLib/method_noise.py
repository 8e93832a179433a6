"""The method-noise check: what the restoration took from the measured band must look like noise.

The residual (the input minus the restored image's measured band, on the input grid) should hold only noise. Where
it holds more, the restoration removed something the measurement shows: a small lesion the network took for noise
or ringing, a fine real detail. The residual's small-scale part (less its in-plane blur, BACKGROUND_SD) is smoothed
with a small Gaussian (a matched filter for structures of a pixel or two, across neighbouring slices too) and
divided by the SD white noise of the assumed level would have after these two steps; where this z exceeds a
threshold, the small-scale residual comes back, in full from one unit of z above it. The threshold is divided by
the scale because the final Wiener pass of a super-resolution assumes less noise (sigma / sqrt(scale) at x2,
data_consistency.final_pass_noise_exponent): its residual holds less noise, so a chance excess costs less, while a
lesion's deficit is spread over fewer, coarser pixels. At x3 it is lowered further (X3_THRESHOLD_FACTOR).

Measured with the quality model v3 (docs/evaluation/model-comparison.md, "The method-noise check"): the 3 mm
lesion of `mrsuperres evaluate` now keeps its contrast at x1 at every SNR (27.3 / 26.2 / 25.7 at SNR 10 / 20 / 40,
limit 23.6; 19.6 / 23.4 / 25.7 before) and at x2 at SNR 20 (20.3, limit 20.1; 18.0 before), for -0.07 to +0.01 dB
of mean PSNR on the held-out volumes. With the default unet48 the x2 lesion passes at SNR 10 too (21.9, limit 21.3),
and since the check guards it, the final Wiener pass denoises more (data_consistency.FINAL_PASS_NOISE_EXPONENT).
"""

import functools

import numpy as np
import torch

from .simulate import gaussian_kernel
from .stack_smoothing import gaussian_smooth, kernel_tensor, smooth_along

SMOOTHING_SD = (0.7, 0.8)  # Gaussian SD of the matched filter: (slices, pixels of the input grid)
# In-plane Gaussian SD (pixels) of the slowly varying part of the residual, which is left out: a restoration that
# removes the noise floor of a magnitude image (the Rayleigh mean of its background) leaves a residual offset that
# is significant but no structure.
BACKGROUND_SD = 4.0
THRESHOLD_Z = 2.0  # z where the residual starts to come back, divided by the scale; in full one unit above
# At x3 a 3 mm lesion is one input pixel and the threshold is lowered further, by this factor (linear from 1 at x2;
# x1 and x2 as before). With data_consistency's x3 final pass at sigma / 3^0.25 it keeps the lesion of `mrsuperres
# evaluate` at x3: 14.15 / 14.87 / 14.42 at SNR 10 / 20 / 40 against limits of 13.78 / 14.68 / 13.69 (12.83 /
# 14.14 / 13.95 with factor 1 and sigma / sqrt(3)), for -0.07 / -0.03 / -0.02 dB of mean PSNR on the held-out
# volumes (docs/evaluation/model-comparison.md, "The small lesion at x3").
X3_THRESHOLD_FACTOR = 0.4
HALO = len(gaussian_kernel(SMOOTHING_SD[0])) // 2  # slices beyond a range that its result depends on


def _detail(residual: torch.Tensor) -> torch.Tensor:
    """The residual less its in-plane BACKGROUND_SD blur: what is left of it at the scale of small structures."""
    background = residual
    for dim in (1, 2):
        background = smooth_along(background, kernel_tensor(BACKGROUND_SD, residual.device), dim)
    return residual - background


def _matched_filter(detail: torch.Tensor) -> torch.Tensor:
    return gaussian_smooth(detail, *SMOOTHING_SD)


@functools.cache
def _noise_gain() -> float:
    """SD of white unit noise after _detail and the matched filter: the norm of their response to one pixel (once,
    on the CPU)."""
    radius = len(gaussian_kernel(BACKGROUND_SD)) // 2 + len(gaussian_kernel(SMOOTHING_SD[1])) // 2 + 1
    impulse = torch.zeros((2 * HALO + 1, 2 * radius + 1, 2 * radius + 1))
    impulse[HALO, radius, radius] = 1.0
    return float(_matched_filter(_detail(impulse)).square().sum().sqrt())


def _z(detail: torch.Tensor, sigma: float) -> torch.Tensor:
    return _matched_filter(detail) / (sigma * _noise_gain())


def smoothed_z(residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """The small-scale part of a (S, H, W) residual after the matched filter, in units of the SD that white noise
    of SD `sigma` has after the same two steps."""
    return _z(_detail(residual), sigma)


def threshold_z(scale: float) -> float:
    """z where the residual starts to come back at this scale (output over input pixel size)."""
    factor = float(np.interp(scale, (2.0, 3.0), (1.0, X3_THRESHOLD_FACTOR)))
    return THRESHOLD_Z / max(1.0, scale) * factor


def keep_significant_residual(measured: torch.Tensor, estimate: torch.Tensor, sigma: float,
                              scale: float) -> torch.Tensor:
    """`estimate` of (S, r, c) `measured` slices (white noise of SD `sigma`), with the small-scale part of the
    residual back where it is significant."""
    if sigma <= 0:
        return estimate
    detail = _detail(measured - estimate)
    start = threshold_z(scale)
    weight = (_z(detail, sigma).abs_() - start).clamp_(0.0, 1.0)
    return estimate + weight * detail
