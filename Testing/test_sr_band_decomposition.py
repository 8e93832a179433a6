"""scripts/band_decomposition.py: the split of an output into the measured band and what lies beyond it."""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from band_decomposition import split_band  # noqa: E402

from MRSuperResLib.degradation import fourier_resample  # noqa: E402


def test_a_zero_filled_input_is_all_band_and_any_output_is_band_plus_beyond():
    rng = np.random.default_rng(3)
    # Odd measured sizes: with even ones the real part of a zero-fill splits the Nyquist line over both edges of
    # k-space, and truncation keeps one of them (a tiny share of an MR image's energy, all of white noise's).
    measured = torch.from_numpy(rng.normal(size=(4, 13, 11)).astype(np.float32))
    zero_filled = fourier_resample(measured, (26, 22)).numpy()
    # Slices along the last numpy axis (i): the split must work on the in-plane axes of that layout too.
    output = np.moveaxis(zero_filled, 0, 2)
    band, beyond = split_band(output, 2, (13, 11))
    np.testing.assert_allclose(band, output, atol=1e-5)
    assert np.abs(beyond).max() < 1e-5

    sharp = rng.normal(size=(26, 22, 4)).astype(np.float32)
    band, beyond = split_band(sharp, 2, (13, 11))
    np.testing.assert_allclose(band + beyond, sharp, atol=1e-6)
    assert np.abs(beyond).mean() > 0.5 * np.abs(sharp).mean()  # white noise is mostly beyond a quarter of k-space
    np.testing.assert_allclose(split_band(band, 2, (13, 11))[0], band, atol=1e-5)  # a projection
