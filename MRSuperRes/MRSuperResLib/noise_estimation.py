"""Blind estimate of the noise level of MR slices, used to condition the network.

The same estimator runs on the synthetic training inputs and on real inputs at inference, so the network
learns what the estimate means (including its bias on textured images); the user's denoising strength
then scales it. Method: local standard deviation in 5x5 windows over the foreground; the lower quartile of
that distribution picks the flattest regions, where local SD is dominated by noise. Per-voxel noise SD is
unchanged by Fourier zero-filling (see degradation.py), so the estimate is comparable across grids.
"""

import torch
import torch.nn.functional as F

WINDOW = 5
QUANTILE = 0.25
# Lower quartile of the SD of 25 Gaussian samples ~ 0.88 sigma; the factor makes pure noise read sigma.
CALIBRATION = 1.0 / 0.88
FOREGROUND_FRACTION = 0.1
MAX_SAMPLES = 65536


def local_std(images: torch.Tensor) -> torch.Tensor:
    """Local standard deviation in WINDOW x WINDOW windows of (B, H, W) images."""
    x = images[:, None].float()
    mean = F.avg_pool2d(x, WINDOW, stride=1, padding=WINDOW // 2, count_include_pad=False)
    mean_sq = F.avg_pool2d(x * x, WINDOW, stride=1, padding=WINDOW // 2, count_include_pad=False)
    return (mean_sq - mean * mean).clamp(min=0).sqrt()[:, 0], mean[:, 0]


def estimate_noise_sigma(images: torch.Tensor, reference_level: torch.Tensor | None = None) -> torch.Tensor:
    """Noise SD per image of a (B, H, W) batch, in the images' intensity units.

    reference_level (B,) is the intensity that defines the foreground threshold (default: the 99th
    percentile of each image). Images without foreground give 0.
    """
    sd, mean = local_std(images)
    flat_sd = sd.flatten(1)
    flat_mean = mean.flatten(1)
    if reference_level is None:
        reference_level = torch.quantile(images.flatten(1)[:, :: max(1, images[0].numel() // MAX_SAMPLES)].float(), 0.99, dim=1)
    sigmas = []
    for b in range(images.shape[0]):
        values = flat_sd[b][flat_mean[b] > FOREGROUND_FRACTION * reference_level[b]]
        if values.numel() < 16:
            sigmas.append(torch.zeros((), device=images.device))
            continue
        if values.numel() > MAX_SAMPLES:
            values = values[:: values.numel() // MAX_SAMPLES]
        sigmas.append(torch.quantile(values, QUANTILE) * CALIBRATION)
    return torch.stack(sigmas)


def estimate_noise_sigma_wavelet(images: torch.Tensor) -> torch.Tensor:
    """Noise SD per image of a (B, H, W) batch from the finest diagonal Haar band (Donoho's MAD rule).

    Texture and anatomy barely reach that band, so unlike the local-SD estimate it is not inflated by
    textured images; it reads low on noise that is band-limited (scanner zero-filling), which errs on the
    side of less denoising. Restricted to the foreground as estimate_noise_sigma is. Images without
    foreground give 0.
    """
    x = images.float()
    rows, cols = (x.shape[-2] // 2) * 2, (x.shape[-1] // 2) * 2
    x = x[..., :rows, :cols]
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    diagonal = (a - b - c + d) / 2  # unit gain for white noise
    local_mean = (a + b + c + d) / 4
    reference = torch.quantile(x.flatten(1)[:, :: max(1, x[0].numel() // MAX_SAMPLES)], 0.99, dim=1)
    sigmas = []
    for index in range(x.shape[0]):
        values = diagonal[index][local_mean[index] > FOREGROUND_FRACTION * reference[index]].abs()
        if values.numel() < 16:
            sigmas.append(torch.zeros((), device=x.device))
            continue
        if values.numel() > MAX_SAMPLES:
            values = values[:: values.numel() // MAX_SAMPLES]
        sigmas.append(values.median() / 0.6745)
    return torch.stack(sigmas)
