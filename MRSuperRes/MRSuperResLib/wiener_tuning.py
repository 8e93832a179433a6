"""How much the Wiener step smooths, chosen per volume by generalized cross-validation (GCV).

The empirical Wiener step keeps each coefficient in proportion pilot^2 / (pilot^2 + sigma^2). How much of the pilot's
fine structure is signal depends on the image: on a smooth brain the network's pilot keeps texture that is noise, and
a larger sigma suits it better; on a scan with fine real detail the estimated sigma is right. One multiplier of the
step's sigma is chosen for the volume, among factors a square root of two apart, by GCV over the tissue of a slab of
slices: the residual to the input over (1 - mean divergence)^2, the divergence of the whole restoration (network,
Wiener passes, method-noise check) read by one random +-1 perturbation of the input (Monte-Carlo divergence). Unlike
Stein's unbiased risk estimate, GCV needs no noise level, so an error in the estimated sigma (1.2-2.2x on smooth
templates at SNR 40) does not steer the choice.

Measured on the held-out volumes of `mrsuperres evaluate` (unet48, 8 slices; docs/evaluation/model-comparison.md,
"The Wiener step's noise level by GCV"): GCV picks the best of the factors 0.71 / 1 / 1.41 / 2 in 20 of 24 cases at
x1 and x2 (Stein's estimate with the estimated sigma in 10), +0.5 dB mean PSNR at x1; on the real GE series it keeps 1
at x1. Used when denoising only (WHEN_SUPER_RESOLVING), and off by default (ENABLED): it lost 0.5-1 dB at x1 on the
real EPI scans.
"""

import math

import numpy as np

# Off by default: on the four real EPI scans (docs/evaluation/real-epi) it cost -0.49 / -0.66 / -0.99 dB at x1
# (SNR 10 / 20 / 40) against truths that carry their own noise, for +0.5 dB on the held-out means.
ENABLED = False
# When super-resolving the final pass already assumes sigma / sqrt(scale), set with the 3 mm lesion's margin
# (data_consistency.FINAL_PASS_NOISE_EXPONENT); GCV's choice there gained +0.08 dB at x2 on the held-out means and
# took the x2 lesion at SNR 10 to 21.36 against a limit of 21.34 (22.49 before), so it only tunes denoising.
WHEN_SUPER_RESOLVING = False
# Factors tried, a square root of two apart: from 1 (the sigma the network is conditioned on) upwards while GCV
# improves, else one step down. 2 was never the best on the held-out volumes; 0.71 only once (GE series, x1 SNR 40).
FACTORS = (1 / math.sqrt(2.0), 1.0, math.sqrt(2.0), 2.0)
SLAB_SLICES = 8  # contiguous slices the choice is made on (the whole volume when it has no more)
PERTURBATION = 0.05  # size of the +-1 perturbation, in units of sigma
TISSUE_LEVEL = 2.0  # GCV is read where the restoration exceeds this many sigma (noise in the air is not Gaussian)
SEED = 0


def slab_bounds(stack: np.ndarray, slices: int = SLAB_SLICES) -> tuple[int, int]:
    """The `slices` contiguous slices of the (S, r, c) stack holding the most signal."""
    count = stack.shape[0]
    if count <= slices:
        return 0, count
    # Slice by slice: |stack| at once would copy the whole volume (400 MB for 512 x 512 x 400).
    totals = np.concatenate([[0.0], np.cumsum([float(np.abs(s).sum()) for s in stack])])
    first = int(np.argmax(totals[slices:] - totals[:-slices]))
    return first, first + slices


def gcv_score(restored, restored_perturbed, measured, perturbation, epsilon, tissue) -> float:
    """GCV of a restoration on the input grid: mean squared residual over (1 - mean divergence)^2 in `tissue`."""
    residual = float(np.square(restored - measured)[tissue].mean())
    divergence = float((perturbation * (restored_perturbed - restored) / epsilon)[tissue].mean())
    # A restoration that keeps (nearly) all the noise has no GCV (0 / 0): it is never chosen.
    return residual / (1.0 - divergence) ** 2 if divergence < 0.99 else math.inf


def choose_noise_scale(slab: np.ndarray, sigma: float, network, restore) -> float:
    """The factor of sigma for the Wiener step of the (S, r, c) `slab`, whose noise SD is about `sigma`.

    network(stack) -> the network's output of an (S, r, c) stack (numpy, on the output grid); restore(stack, output,
    factor) -> the whole restoration of the stack from that output, on the input grid, with the Wiener step's sigma
    times `factor` (numpy).
    """
    if sigma <= 0:
        return 1.0
    measured = np.ascontiguousarray(slab, dtype=np.float32)
    signs = np.random.default_rng(SEED).integers(0, 2, measured.shape).astype(np.float32) * 2 - 1
    perturbation = signs * (measured != 0)  # exact zeros (masked air) stay zeros
    epsilon = PERTURBATION * sigma
    perturbed = measured + epsilon * perturbation
    outputs = network(measured), network(perturbed)
    restored = {1.0: restore(measured, outputs[0], 1.0)}
    tissue = restored[1.0] > TISSUE_LEVEL * sigma  # one region for every factor
    if not tissue.any():
        return 1.0
    scores = {}

    def score(factor):
        if factor not in scores:
            if factor not in restored:
                restored[factor] = restore(measured, outputs[0], factor)
            perturbed_restored = restore(perturbed, outputs[1], factor)
            scores[factor] = gcv_score(restored[factor], perturbed_restored, measured, perturbation, epsilon, tissue)
        return scores[factor]

    index = FACTORS.index(1.0)
    while index + 1 < len(FACTORS) and score(FACTORS[index + 1]) < score(FACTORS[index]):
        index += 1
    if FACTORS[index] == 1.0 and score(FACTORS[index - 1]) < score(1.0):
        index -= 1
    return FACTORS[index]

