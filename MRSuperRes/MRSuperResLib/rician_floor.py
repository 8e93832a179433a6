"""The Rician floor of a magnitude image, taken out of the measured values before the Wiener step uses them.

A magnitude image M = |A + n| (signal A, complex noise of SD sigma per channel) is biased upwards: its mean is
sigma sqrt(pi/2) L_1/2(-A^2 / 2 sigma^2), 1.25 sigma in the air (A = 0), about A + sigma^2 / 2A in bright tissue.
The network is trained to return A, floor removed; the Wiener step that brings the measured band back from the
input used to restore the floor with it (the mean of a block of air or dark tissue is far above the noise), which
left the air at the noisy input's level in some blocks and dark in others. So the step uses the input less the
floor that an estimate of A predicts: the larger of the network's A and the A whose Rician mean is the input's
local mean. The network alone flattens faint signal (the blurred scalp of an average template), the local mean
alone reads the noise of its few voxels as signal in the air; the floor only shrinks as A grows, so the larger
estimate errs towards keeping the input.

Measured with the default quality model (docs/evaluation/model-comparison.md, "The Rician floor"): head-mask PSNR
of the held-out volumes -0.005 to +0.45 dB per row (means +0.32 / +0.13 dB at x1 / x2, SNR 10), whole-image PSNR up
to +5 dB; a truth with its own noise floor (the real EPI scans: the air of one reads 11 where the added noise's
floor reads 15 at SNR 40) scores lower on the whole image.
"""

import functools
import math

import numpy as np
import torch

from .simulate import gaussian_kernel
from .stack_smoothing import gaussian_smooth

LOCAL_MEAN_SD = (0.7, 1.5)  # Gaussian SD of the local mean: (slices, pixels)
HALO = len(gaussian_kernel(LOCAL_MEAN_SD[0])) // 2  # slices beyond a range that its result depends on
_TABLE_MAX = 20.0  # tabulated up to A = 20 sigma; beyond, A = sqrt(mean^2 - sigma^2) (error < 1e-4 sigma)
_TABLE_STEP = 0.005  # of the tables below, in units of sigma (their linear interpolation errs by < 1e-3 sigma)


def rician_mean(amplitude: torch.Tensor, sigma: float) -> torch.Tensor:
    """Mean magnitude of a signal `amplitude` (>= 0) under complex noise of SD `sigma` per channel.

    With t = A^2 / 4 sigma^2 and the exponentially scaled Bessel functions (no term overflows):
    sigma sqrt(pi/2) ((1 + 2t) i0e(t) + 2t i1e(t)); sigma > 0."""
    t = amplitude.square() / (4.0 * sigma * sigma)
    return sigma * math.sqrt(math.pi / 2) * ((1 + 2 * t) * torch.special.i0e(t) + 2 * t * torch.special.i1e(t))


@functools.cache
def _tables(device: str):
    """For sigma = 1, on uniform grids (so a lookup is an index, not a search):
    floor[i]: the floor mean - A at A = i * step, A from 0 to _TABLE_MAX;
    amplitude[i]: the A whose mean is floor(0) + (i * step)^2. Near the air's floor the mean rises with A^2, so A is
    nearly linear in the square root of the excess mean: that variable keeps the inverse smooth where A is small."""
    amplitude = torch.arange(0.0, _TABLE_MAX + _TABLE_STEP / 2, _TABLE_STEP, dtype=torch.float64)
    mean = rician_mean(amplitude, 1.0)
    excess_root = (mean - mean[0]).clamp(min=0).sqrt()
    roots = torch.arange(0.0, float(excess_root[-1]), _TABLE_STEP, dtype=torch.float64)
    inverse = np.interp(roots.numpy(), excess_root.numpy(), amplitude.numpy())
    return ((mean - amplitude).float().to(device), torch.from_numpy(inverse).float().to(device), float(mean[0]))


def _lookup(table: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of a uniform table at fractional indices (clamped to its ends)."""
    position = position.clamp(0, table.numel() - 1)
    lower = position.floor().long().clamp_(max=table.numel() - 2)
    fraction = position - lower
    return table[lower] * (1 - fraction) + table[lower + 1] * fraction


def floor_of(amplitude: torch.Tensor, sigma: float) -> torch.Tensor:
    """Rician mean less the signal, for signals `amplitude` (>= 0): 1.25 sigma at 0, sigma^2 / 2A far above."""
    floor, _, _ = _tables(str(amplitude.device))
    unit = amplitude / sigma
    far = 1.0 / (2.0 * unit.clamp(min=_TABLE_MAX))
    return sigma * torch.where(unit < _TABLE_MAX, _lookup(floor, unit / _TABLE_STEP), far)


def amplitude_from_mean(mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """The A whose Rician mean is `mean` (0 where the mean is at or below the floor of the air)."""
    _, inverse, floor_at_zero = _tables(str(mean.device))
    unit = mean / sigma
    excess_root = (unit - floor_at_zero).clamp(min=0).sqrt()
    beyond = (unit.square() - 1.0).clamp(min=0.0).sqrt()  # A = sqrt(mean^2 - sigma^2) far above the noise
    inside = excess_root < (inverse.numel() - 1) * _TABLE_STEP
    return sigma * torch.where(inside, _lookup(inverse, excess_root / _TABLE_STEP), beyond)


def local_amplitude(measured: torch.Tensor, sigma: float) -> torch.Tensor:
    """A from the local mean of (S, H, W) `measured` magnitudes; exact zeros (a masked background) left out."""
    mean = gaussian_smooth(measured, *LOCAL_MEAN_SD)
    zeros = measured == 0
    if bool(zeros.any()):
        mean = mean / gaussian_smooth((~zeros).float(), *LOCAL_MEAN_SD).clamp(min=1e-6)
    return amplitude_from_mean(mean, sigma)


def without_floor(measured: torch.Tensor, network_amplitude: torch.Tensor, sigma: float) -> torch.Tensor:
    """(S, H, W) `measured` magnitudes less the Rician floor their signal predicts (see the module's docstring).

    Exact zeros stay zero: a scanner that masked its background measured nothing there."""
    if sigma <= 0:
        return measured.clone()
    amplitude = torch.maximum(network_amplitude.clamp(min=0.0), local_amplitude(measured, sigma))
    return torch.where(measured != 0, measured - floor_of(amplitude, sigma), measured)
