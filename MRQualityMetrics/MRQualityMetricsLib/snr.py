"""Signal- and contrast-to-noise formulas, each named as in the studies (docs/mri-quality-metrics.md).

SI = mean intensity of a region, SD = its sample standard deviation (n - 1).
- same_region_snr:        SNR = SI / SD                                  (seed 000: SNR_BRAIN, SNR_CSF)
- background_snr:         SNR = SI / SD_background                       (seed 002)
  with rayleigh=True:     SNR = SI / (SD_background / 0.655)             (NEMA; single-coil magnitude images only)
- pooled_cnr:             CNR = (SI_A - SI_B) / sqrt((SD_A^2 + SD_B^2) / 2)  (seed 000; signed, A minus B)
- background_cnr:         CNR = |SI_A - SI_B| / SD_background (or / (SD_background / 0.655) with rayleigh)
- contrast_ratio:         CR = SI_A / SI_B                               (seed 000: lesion / brain)
- difference_image_snr:   SNR = mean((A + B) / 2) / (SD(A - B) / sqrt(2)) over one region (NEMA MS 1)
The background of a magnitude image is Rayleigh distributed with SD = 0.655 sigma; the correction is wrong for
multi-coil, parallel-imaging or DL-processed images, so it is off by default and reported when used.
"""

import numpy as np

RAYLEIGH_SD_FACTOR = 0.655


def _check_noise(sd, what):
    sd = float(sd)
    if not np.isfinite(sd) or sd <= 0:
        raise ValueError(f"{what} is {sd}; a positive noise standard deviation is needed")
    return sd


def noise_sigma(background_sd, rayleigh=False) -> float:
    """Gaussian noise sigma estimated from a background SD (divided by 0.655 for Rayleigh backgrounds)."""
    sd = _check_noise(background_sd, "background SD")
    return sd / RAYLEIGH_SD_FACTOR if rayleigh else sd


def same_region_snr(mean, sd) -> float:
    return float(mean) / _check_noise(sd, "region SD")


def background_snr(mean, background_sd, rayleigh=False) -> float:
    return float(mean) / noise_sigma(background_sd, rayleigh)


def pooled_cnr(mean_a, sd_a, mean_b, sd_b) -> float:
    pooled = np.sqrt((float(sd_a) ** 2 + float(sd_b) ** 2) / 2)
    return (float(mean_a) - float(mean_b)) / _check_noise(pooled, "pooled SD")


def background_cnr(mean_a, mean_b, background_sd, rayleigh=False) -> float:
    return abs(float(mean_a) - float(mean_b)) / noise_sigma(background_sd, rayleigh)


def contrast_ratio(mean_a, mean_b) -> float:
    if float(mean_b) == 0:
        raise ValueError("contrast ratio undefined: the second region's mean intensity is 0")
    return float(mean_a) / float(mean_b)


def difference_image_snr(values_a, values_b):
    """NEMA two-acquisition SNR from the same region's voxels in repeats A and B -> (snr, signal, noise)."""
    a = np.asarray(values_a, dtype=np.float64)
    b = np.asarray(values_b, dtype=np.float64)
    if a.shape != b.shape or a.size < 2:
        raise ValueError("difference-image SNR needs the same >= 2 voxels from both acquisitions")
    signal = float(((a + b) / 2).mean())
    noise = _check_noise(np.std(a - b, ddof=1), "SD of the difference image") / np.sqrt(2)
    return signal / noise, signal, float(noise)
