"""Blind estimate of the noise level of MR slices, used to condition the network.

The same estimator runs on the synthetic training inputs and on real inputs at inference, so the network
learns what the estimate means (including its bias on textured images); the user's denoising strength
then scales it. Method: local standard deviation in 5x5 windows over the foreground; the lower quartile of
that distribution picks the flattest regions, where local SD is dominated by noise. Per-voxel noise SD is
unchanged by Fourier zero-filling (see degradation.py), so the estimate is comparable across grids.

Where anatomy reaches the finest scale of the grid (2-4 mm pixels: EPI, low-field and thick clinical series), the
foreground estimates read the anatomy as noise (1.6-8x the true level on real EPI), beyond what training showed
the network. At inference the volume's condition is therefore capped by the noise read in the air
(estimate_background_sigma; see inference._volume_noise_sigma).
"""

import math

import torch
import torch.nn.functional as F

WINDOW = 5
QUANTILE = 0.25
# Lower quartile of the SD of 25 Gaussian samples ~ 0.88 sigma; the factor makes pure noise read sigma.
CALIBRATION = 1.0 / 0.88
FOREGROUND_FRACTION = 0.1
MAX_SAMPLES = 65536
# Median of the magnitude of complex Gaussian noise (Rayleigh) in units of its per-channel SD.
RAYLEIGH_MEDIAN = math.sqrt(2 * math.log(2))
# Air is read only where its threshold lies this far above the air's noise: the 5 x 5 local mean of Rayleigh noise
# is 1.25 sigma with a spread of ~0.13 sigma, so at 1.6 sigma hardly a window of air is cut off and the median is not
# truncated. Below it (SNR under ~7 on the evaluation volumes) the air reads 10-60 % low.
AIR_THRESHOLD_MIN = 1.6
AIR_MIN_FRACTION = 0.02


def local_std(images: torch.Tensor) -> torch.Tensor:
    """Local standard deviation in WINDOW x WINDOW windows of (B, H, W) images."""
    x = images[:, None].float()
    mean = F.avg_pool2d(x, WINDOW, stride=1, padding=WINDOW // 2, count_include_pad=False)
    mean_sq = F.avg_pool2d(x * x, WINDOW, stride=1, padding=WINDOW // 2, count_include_pad=False)
    return (mean_sq - mean * mean).clamp(min=0).sqrt()[:, 0], mean[:, 0]


def _reference_levels(images: torch.Tensor) -> torch.Tensor:
    """99th percentile of each image of a (B, H, W) batch: the foreground threshold is a fraction of it."""
    step = max(1, images[0].numel() // MAX_SAMPLES)
    return torch.quantile(images.flatten(1)[:, ::step].float(), 0.99, dim=1)


def _foreground_statistic(values: torch.Tensor, local_mean: torch.Tensor, reference: torch.Tensor, statistic):
    """statistic(foreground values) per image; 0 for images with fewer than 16 foreground samples."""
    results = []
    for index in range(values.shape[0]):
        selected = values[index][local_mean[index] > FOREGROUND_FRACTION * reference[index]]
        if selected.numel() < 16:
            results.append(torch.zeros((), device=values.device))
            continue
        if selected.numel() > MAX_SAMPLES:
            selected = selected[:: selected.numel() // MAX_SAMPLES]
        results.append(statistic(selected))
    return torch.stack(results)


def estimate_noise_sigma(images: torch.Tensor) -> torch.Tensor:
    """Noise SD per image of a (B, H, W) batch, in the images' intensity units (0 without foreground)."""
    sd, mean = local_std(images)
    return _foreground_statistic(
        sd.flatten(1), mean.flatten(1), _reference_levels(images), lambda v: torch.quantile(v, QUANTILE) * CALIBRATION
    )


def estimate_noise_sigma_wavelet(images: torch.Tensor) -> torch.Tensor:
    """Noise SD per image of a (B, H, W) batch from the finest diagonal Haar band (Donoho's MAD rule).

    Texture and anatomy barely reach that band, so unlike the local-SD estimate it is not inflated by
    textured images; it reads low on noise that is band-limited (scanner zero-filling), which errs on the
    side of less denoising. Restricted to the foreground as estimate_noise_sigma is. Images without
    foreground give 0.
    """
    diagonal, local_mean = haar_diagonal(images)
    even = images[..., : diagonal.shape[-2] * 2, : diagonal.shape[-1] * 2]
    return _foreground_statistic(
        diagonal.abs().flatten(1), local_mean.flatten(1), _reference_levels(even), lambda v: v.median() / 0.6745
    )


def haar_diagonal(images: torch.Tensor):
    """Finest diagonal Haar band of (B, H, W) images (unit gain for white noise) and the local mean of its 2 x 2
    blocks, each (B, H // 2, W // 2)."""
    x = images.float()
    rows, cols = (x.shape[-2] // 2) * 2, (x.shape[-1] // 2) * 2
    x = x[..., :rows, :cols]
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return (a - b - c + d) / 2, (a + b + c + d) / 4


def estimate_noise_sigma_blind(zero_filled: torch.Tensor, input_grid: torch.Tensor) -> torch.Tensor:
    """The network's noise condition (before the user's strength), per image: the smaller of the local-SD
    estimate on the zero-filled (ZIP) images and the wavelet estimate on the same images on their input grid.

    Training and inference both use this one rule, so the condition means the same thing in both. Textured
    anatomy inflates the local-SD estimate and band-limited (scanner zero-filled) noise lowers the wavelet one;
    the minimum errs on the side of keeping detail.
    """
    return torch.minimum(estimate_noise_sigma(zero_filled), estimate_noise_sigma_wavelet(input_grid))


def estimate_background_sigma(images: torch.Tensor) -> float | None:
    """Noise SD of (S, H, W) magnitude slices read in the air around the object: the median of the non-zero voxels
    whose local mean lies below the foreground threshold (the complement of the foreground the other estimates
    read), over the Rayleigh median. Anatomy does not reach the air, so the reading is not inflated by texture as
    the foreground estimates are; signal in the air (ghosts, several coils, a template's haze) only raises it.

    None where it cannot be read: negative values (not a magnitude image), air that is masked to zero or under
    AIR_MIN_FRACTION of the voxels, or noise so strong that the foreground threshold cuts into it.
    """
    x = images.float()
    if x.numel() == 0 or float(x.min()) < 0:
        return None
    _, local_mean = local_std(x)
    threshold = FOREGROUND_FRACTION * _reference_levels(x).view(-1, 1, 1)
    air = (local_mean < threshold) & (x > 0)
    if float(air.float().mean()) < AIR_MIN_FRACTION:
        return None
    values = x[air]  # a median of up to ~1 M of them: as exact as all, and quick on large stacks
    sigma = float(values[:: max(1, values.numel() // (16 * MAX_SAMPLES))].median()) / RAYLEIGH_MEDIAN
    if not sigma > 0 or float(threshold.median()) < AIR_THRESHOLD_MIN * sigma:
        return None
    return sigma
