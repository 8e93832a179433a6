"""scripts/target_ceiling.py: how far issue 3's x2 targets lie from what the noise-free input gives."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from target_ceiling import band_gain_needed, ceilings  # noqa: E402


def test_band_gain_needed_adds_errors_as_mean_squares():
    # Classical 30 dB = error 1e-3 of the range squared; noise-free 40 dB = 1e-4 of it beyond the band, so the
    # classical band error is 9e-4. A 32 dB target (6.31e-4) leaves 5.31e-4 for the band: 10 log10(9 / 5.31).
    assert band_gain_needed(30.0, 32.0, 40.0) == pytest.approx(10 * math.log10(9e-4 / (10**-3.2 - 1e-4)))
    assert band_gain_needed(30.0, 30.0, 40.0) == pytest.approx(0.0, abs=1e-12)
    # Without error beyond the band (x1) the gain needed is the margin itself.
    assert band_gain_needed(30.0, 32.0, math.inf) == pytest.approx(2.0)
    # A target at or above the noise-free zero-fill cannot be reached by denoising the band.
    assert band_gain_needed(30.0, 40.0, 40.0) == math.inf
    assert band_gain_needed(30.0, 41.0, 40.0) == math.inf


def test_ceilings_score_a_phantom_against_its_noise_free_acquisition():
    from MRQualityMetricsLib.volume import Volume, make_ijk_to_ras
    from MRSuperResLib import phantoms

    image = phantoms.flat_shapes((48, 48), (1.0, 1.0))
    volume = Volume(array=phantoms.stack(image, 4), ijk_to_ras=make_ijk_to_ras((1.0, 1.0, 3.0)))
    logged = []
    rows = ceilings([volume], 2, [10.0, 40.0], "mrsr-unet16-2p5d-v7", max_slices=4, log=logged.append)
    assert [(row["scale"], row["snr"]) for row in rows] == [(2, 10.0), (2, 40.0)] and len(logged) == 2
    low, high = rows
    # The noise-free acquisition is the same for both rows and better than any noisy pipeline.
    assert low["noise-free zero-fill"] == high["noise-free zero-fill"]
    assert low["noise-free zero-fill"] > high["classical"] > low["classical"]
    assert low["target"] == pytest.approx(low["classical"] + 2) and high["target"] == pytest.approx(high["classical"] + 1)
    assert all(np.isfinite(row["model"]) and np.isfinite(row["noise-free model"]) for row in rows)
    for row in rows:
        assert row["band gain needed"] == band_gain_needed(row["classical"], row["target"], row["noise-free zero-fill"])
