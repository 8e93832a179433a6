"""The Wiener step's noise level chosen per volume by generalized cross-validation (MRSuperResLib.wiener_tuning)."""

import numpy as np
import pytest
from scipy import ndimage

from MRQualityMetricsLib.volume import make_ijk_to_ras
from MRSuperResLib import inference, wiener_tuning
from MRSuperResLib.data_consistency import MeasuredBandRestorer, restored_on_input_grid

FACTORS = wiener_tuning.FACTORS


def _images(kind, sigma, shape=(6, 64, 64), seed=5):
    """(truth, noisy): a smooth blob field or fine detail (a 2-pixel checkerboard inside a square), 100 at most."""
    rng = np.random.default_rng(seed)
    if kind == "smooth":
        truth = 100 * ndimage.gaussian_filter(rng.random(shape), (2, 6, 6))
        truth = 100 * (truth - truth.min()) / np.ptp(truth)
    else:
        _, rows, cols = np.indices(shape)
        truth = 50.0 + 50.0 * (((rows // 2) + (cols // 2)) % 2)
    truth = truth.astype(np.float32)
    return truth, (truth + sigma * rng.standard_normal(shape)).astype(np.float32)


def _smoother(width):
    """A linear restoration whose smoothing grows with the factor: Gaussian of `width` x factor pixels in-plane."""
    return lambda stack, output, factor: ndimage.gaussian_filter(output, (0, width * factor, width * factor))


def _choice_and_errors(kind, sigma, told_sigma=None, width=0.6):
    truth, noisy = _images(kind, sigma)
    restore = _smoother(width)
    factor = wiener_tuning.choose_noise_scale(noisy, told_sigma or sigma, lambda stack: stack.copy(), restore)
    errors = {f: float(np.square(restore(noisy, noisy, f) - truth).mean()) for f in FACTORS}
    return factor, errors


@pytest.mark.parametrize("kind", ["smooth", "detail"])
def test_gcv_picks_the_smoothing_with_the_least_error(kind):
    factor, errors = _choice_and_errors(kind, sigma=10.0)
    assert factor == min(errors, key=errors.get)


def test_smooth_images_get_more_smoothing_than_fine_detail():
    smooth, _ = _choice_and_errors("smooth", sigma=10.0)
    detail, _ = _choice_and_errors("detail", sigma=10.0)
    assert smooth == FACTORS[-1] and detail == FACTORS[0]


@pytest.mark.parametrize("told", [6.0, 16.0])
def test_the_choice_does_not_depend_on_the_noise_level_it_is_told(told):
    """GCV needs no sigma (Stein's estimate would): a noise estimate 0.6-1.6x off gives the same choice."""
    for kind in ("smooth", "detail"):
        assert _choice_and_errors(kind, 10.0, told_sigma=told)[0] == _choice_and_errors(kind, 10.0)[0]


def test_gcv_score_of_a_linear_shrinkage_is_its_textbook_value():
    rng = np.random.default_rng(0)
    measured = rng.standard_normal((2, 16, 16)).astype(np.float32)
    signs = rng.choice([-1.0, 1.0], measured.shape).astype(np.float32)
    tissue = np.ones(measured.shape, dtype=bool)
    shrink, epsilon = 0.3, 0.05
    score = wiener_tuning.gcv_score(shrink * measured, shrink * (measured + epsilon * signs), measured, signs,
                                    epsilon, tissue)
    # divergence per pixel = shrink: ||(shrink - 1) y||^2 / N / (1 - shrink)^2 = mean(y^2)
    assert score == pytest.approx(float(np.square(measured).mean()), rel=1e-4)
    assert wiener_tuning.gcv_score(measured, measured + epsilon * signs, measured, signs, epsilon, tissue) == np.inf


def test_slab_is_the_run_of_slices_with_the_most_signal_or_the_whole_volume():
    stack = np.zeros((40, 8, 8), dtype=np.float32)
    stack[25:31] = 1.0
    first, last = wiener_tuning.slab_bounds(stack)
    assert last - first == wiener_tuning.SLAB_SLICES and first <= 25 and last >= 31
    assert wiener_tuning.slab_bounds(stack[:5]) == (0, 5)


def test_no_tissue_or_no_noise_keeps_the_estimate():
    calls = []

    def restore(stack, output, factor):
        calls.append(factor)
        return output

    dark = np.zeros((2, 16, 16), dtype=np.float32)
    assert wiener_tuning.choose_noise_scale(dark, 1.0, lambda stack: stack.copy(), restore) == 1.0
    assert wiener_tuning.choose_noise_scale(dark + 50, 0.0, lambda stack: stack.copy(), restore) == 1.0
    assert calls == [1.0]  # the restoration at 1 shows no tissue: nothing else is tried


def test_factor_scales_the_wiener_passes_only_and_the_step_at_once_matches_the_stream():
    truth, noisy = _images("smooth", 8.0, shape=(6, 32, 32))
    pilot = ndimage.gaussian_filter(noisy, (0, 1, 1))
    plain = MeasuredBandRestorer(noisy, pilot.copy(), 8.0, "cpu", magnitude=True)
    scaled = MeasuredBandRestorer(noisy, pilot.copy(), 8.0, "cpu", magnitude=True, noise_scale=1.5)
    assert scaled.sigmas == pytest.approx([1.5 * s for s in plain.sigmas]) and scaled.sigma == plain.sigma
    streamed = pilot.copy()
    restorer = MeasuredBandRestorer(noisy, streamed, 8.0, "cpu", magnitude=True, noise_scale=1.5)
    for available in (2, 4, 6):
        restorer.advance(available)
    at_once = restored_on_input_grid(noisy, pilot, 8.0, "cpu", True, noise_scale=1.5)
    np.testing.assert_allclose(at_once, streamed, atol=1e-4)
    assert not np.allclose(at_once, restored_on_input_grid(noisy, pilot, 8.0, "cpu", True))


def test_enhance_tunes_the_step_when_denoising_only(monkeypatch):
    chosen = []
    choose = wiener_tuning.choose_noise_scale
    monkeypatch.setattr(wiener_tuning, "choose_noise_scale", lambda *args: chosen.append(choose(*args)) or chosen[-1])
    truth, _ = _images("smooth", 0.0, shape=(8, 64, 64))
    truth = 20.0 + truth  # a smooth head filling the field: tissue everywhere
    rng = np.random.default_rng(2)
    sigma = 6.0
    noisy = np.abs(truth + sigma * rng.standard_normal(truth.shape) + 1j * sigma * rng.standard_normal(truth.shape))
    geometry = make_ijk_to_ras((1.0, 1.0, 2.0))

    def error(tuned, scale=1):
        monkeypatch.setattr(wiener_tuning, "ENABLED", tuned)
        out, _ = inference.enhance(noisy.astype(np.float32), geometry, scale=scale, model_id="mrsr-unet16-2p5d-v7",
                                   device="cpu")
        return float(np.square(out - truth).mean()) if scale == 1 else None

    plain, tuned = error(False), error(True)
    assert chosen == [FACTORS[2]] or chosen == [FACTORS[3]]  # a smooth volume: more smoothing than sigma gives
    assert tuned < 0.9 * plain
    error(True, scale=2)
    assert len(chosen) == 1  # super-resolving keeps the estimate (WHEN_SUPER_RESOLVING)


def test_gpu_out_of_memory_while_choosing_keeps_the_estimate(monkeypatch):
    import torch

    def out_of_memory(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    truth, noisy = _images("smooth", 6.0, shape=(4, 48, 48))
    noisy = np.abs(20.0 + noisy).astype(np.float32)
    geometry = make_ijk_to_ras((1.0, 1.0, 2.0))
    plain, _ = inference.enhance(noisy, geometry, scale=1, model_id="mrsr-unet16-2p5d-v7", device="cpu")
    monkeypatch.setattr(wiener_tuning, "ENABLED", True)
    monkeypatch.setattr(wiener_tuning, "choose_noise_scale", out_of_memory)
    with pytest.warns(UserWarning, match="choosing the Wiener step's noise level"):
        fallback, _ = inference.enhance(noisy, geometry, scale=1, model_id="mrsr-unet16-2p5d-v7", device="cpu")
    np.testing.assert_array_equal(fallback, plain)
