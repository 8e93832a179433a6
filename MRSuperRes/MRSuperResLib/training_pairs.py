"""Turn clean synthetic slices into (network input, noise condition, target) with MRI physics.

For each batch: a requested output scale s in {1, 2, 3}; the scanner's acquisition matrix may be coarser
still (it zero-filled: effective resolution below the voxel grid) and rectangular; random partial Fourier,
apodisation, smooth phase and Rician noise from SNR 3 to 80 (and some noise-free). The network input is
the Fourier zero-filled (ZIP) magnitude image, exactly as at inference, and the noise condition is the same
blind estimate as at inference (estimate_noise_sigma_blind). Denoising strength d in [0, 1]:
the condition is d x (blind noise estimate) and the target keeps (1 - d) of the input's own noise, so
d = 0 sharpens without removing the noise texture and d = 1 removes it.
"""

import math

import torch

from .degradation import acquire, fourier_resample, sigma_for_snr, smooth_random_phase
from .noise_estimation import estimate_noise_sigma_blind

SCALES = (1, 2, 3)
SCALE_PROBABILITIES = (0.25, 0.45, 0.30)
# How often each kind of blur that the input's own grid cannot explain is drawn. The network cannot tell it from
# smooth anatomy, so it learns to sharpen blindly as often as it sees it: frequent blur suits scanner-zero-filled
# clinical series, rare blur suits inputs acquired at their own matrix. A training config may override these.
BLIND_BLUR = {
    "extra_zero_fill": 0.15,  # the scanner acquired a coarser matrix than the input grid (x1.1-1.6)
    "rectangular": 0.4,  # coarser phase encoding (x1-1.35)
    "partial_fourier": 0.2,  # 0.6-0.875 of the phase lines, missing lines zero
    "apodisation": 0.3,  # k-space filter up to 0.6
}


def _choice(values, probabilities, generator, device):
    index = torch.multinomial(torch.tensor(probabilities, device=device), 1, generator=generator).item()
    return values[index]


def _rand(generator, device, *shape):
    return torch.rand(shape, generator=generator, device=device)


def _acquisitions(clean: torch.Tensor, generator: torch.Generator, scale: int | None, blind_blur: dict | None):
    """Acquire every slice of clean (B, C, H, W) with one random protocol per batch and a random SNR per stack:
    (noisy, noiseless) magnitude slices (B, C, r, r) on the scanner's reconstruction grid, and the scale drawn."""
    blur = {**BLIND_BLUR, **(blind_blur or {})}
    device = clean.device
    batch, context, size, _ = clean.shape
    scale = scale or _choice(SCALES, SCALE_PROBABILITIES, generator, device)
    recon = max(8, round(size / scale))
    extra = 1.0 if _rand(generator, device).item() < 1 - blur["extra_zero_fill"] else 1.1 + 0.5 * _rand(generator, device).item()
    phase_axis = int(_rand(generator, device).item() < 0.5)
    acquired = [max(8, round(recon / extra))] * 2
    if _rand(generator, device).item() < blur["rectangular"]:  # rectangular matrix: coarser phase encoding
        acquired[phase_axis] = max(8, round(acquired[phase_axis] / (1 + 0.35 * _rand(generator, device).item())))
    partial_fourier = 1.0
    if _rand(generator, device).item() < blur["partial_fourier"]:
        partial_fourier = 0.6 + 0.275 * _rand(generator, device).item()
    apodisation = 0.6 * _rand(generator, device).item() if _rand(generator, device).item() < blur["apodisation"] else 0.0

    snr = torch.exp(math.log(3.0) + (math.log(80.0) - math.log(3.0)) * _rand(generator, device, batch))
    noise_free = _rand(generator, device, batch) < 0.1
    centre = clean[:, context // 2]
    sigma = sigma_for_snr(centre, snr).view(batch, 1, 1, 1) * (~noise_free).view(-1, 1, 1, 1)
    empty = centre.flatten(1).amax(1) <= 0  # noise-only scenes: an absolute noise level
    sigma[empty] = 0.01 + 0.3 * _rand(generator, device, int(empty.sum()), 1, 1, 1)
    phase = None
    if _rand(generator, device).item() < 0.5:
        phase = smooth_random_phase((size, size), batch, generator=generator, device=device)[:, None]

    flat_clean = clean.reshape(batch * context, size, size)
    kwargs = dict(
        acquired_shape=acquired,
        recon_shape=(recon, recon),
        partial_fourier=partial_fourier,
        partial_fourier_axis=phase_axis,
        apodisation=apodisation,
        phase=None if phase is None else phase.expand(-1, context, -1, -1).reshape(batch * context, size, size),
        generator=generator,
    )
    sigmas = sigma.expand(-1, context, -1, -1).reshape(batch * context, 1, 1)
    noisy = acquire(flat_clean, sigma=sigmas, **kwargs).view(batch, context, recon, recon)
    noiseless = acquire(flat_clean, sigma=0.0, **kwargs).view(batch, context, recon, recon)
    return noisy, noiseless, scale


def _strengths(batch, generator, device):
    """Denoising strength per sample: full (1) for 70 %, uniform in [0, 1] otherwise."""
    return torch.where(_rand(generator, device, batch) < 0.7, torch.ones(batch, device=device), _rand(generator, device, batch))


def make_training_pairs(clean: torch.Tensor, generator: torch.Generator, crop: int, scale: int | None = None,
                        blind_blur: dict | None = None):
    """clean (B, C, H, W) -> dict(inputs (B, C, crop, crop), condition (B,), target (B, 1, crop, crop), scale).

    blind_blur: probabilities overriding BLIND_BLUR (same keys; train.load_config checks them)."""
    device = clean.device
    batch, context, size, _ = clean.shape
    noisy, noiseless, scale = _acquisitions(clean, generator, scale, blind_blur)
    zip_noisy, zip_clean = (fourier_resample(x, (size, size)) for x in (noisy, noiseless))  # (B, C, H, W)

    margin = (size - crop) // 2
    window = (slice(None), slice(None), slice(margin, margin + crop), slice(margin, margin + crop))
    inputs, zip_clean, truth = zip_noisy[window], zip_clean[window], clean[window]
    level = torch.quantile(inputs.flatten(1), 0.99, dim=1).clamp(min=1e-3).view(-1, 1, 1, 1)
    inputs, zip_clean, truth = inputs / level, zip_clean / level, truth / level
    input_grid = noisy[:, context // 2] / level.view(-1, 1, 1)
    estimate = estimate_noise_sigma_blind(inputs[:, context // 2], input_grid)
    strength = _strengths(batch, generator, device)
    centre_slice = slice(context // 2, context // 2 + 1)
    kept_noise = (inputs[:, centre_slice] - zip_clean[:, centre_slice]) * (1 - strength).view(-1, 1, 1, 1)
    return {
        "inputs": inputs,
        "condition": strength * estimate,
        "target": truth[:, centre_slice] + kept_noise,
        "truth": truth[:, centre_slice],
        "scale": scale,
    }


def make_volume_pairs(clean: torch.Tensor, generator: torch.Generator, crop: int, scale: int | None = None,
                      blind_blur: dict | None = None):
    """Pairs for the volume denoiser (volume_denoiser.py), which works on the grid the scanner reconstructed:
    clean (B, D, H, W) slice stacks -> dict(inputs (B, 1, D, c, c), condition (B,), target (B, 1, D, c, c), scale,
    pixel_factor = the grid's pixel / the clean pixel), c = min(crop, grid). The target is the same acquisition
    without noise (plus 1 - strength of the input's own noise): the denoiser restores what was measured, it does not
    sharpen."""
    device = clean.device
    noisy, noiseless, scale = _acquisitions(clean, generator, scale, blind_blur)
    batch, depth, recon, _ = noisy.shape
    level = torch.quantile(noisy.flatten(1)[:, :: max(1, noisy[0].numel() // 65536)], 0.99, dim=1)
    level = level.clamp(min=1e-3).view(-1, 1, 1, 1)
    noisy, noiseless = noisy / level, noiseless / level
    centre = noisy[:, depth // 2]
    estimate = estimate_noise_sigma_blind(centre, centre)  # as inference._volume_noise_sigma on the input grid
    strength = _strengths(batch, generator, device)
    crop = min(crop, recon)
    margin = (recon - crop) // 2
    window = (slice(None), None, slice(None), slice(margin, margin + crop), slice(margin, margin + crop))
    inputs, noiseless = noisy[window], noiseless[window]
    return {
        "inputs": inputs,
        "condition": strength * estimate,
        "target": noiseless + (inputs - noiseless) * (1 - strength).view(-1, 1, 1, 1, 1),
        "truth": noiseless,
        "scale": scale,
        "pixel_factor": clean.shape[-1] / recon,
    }
