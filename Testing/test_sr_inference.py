"""Tests of MRSuperResLib.inference with the real shipped fast model on the CPU.

Geometry (output grid, slice axis choice), the edge-position phantom required by the issue (edges of an oblique,
anisotropic block stay at their RAS positions after x2 and x3), argument checking, progress/cancel, behaviour on
constant and pure-noise volumes, denoising strength, and the CUDA out-of-memory fallback (by fault injection).
"""

import threading

import numpy as np
import pytest
import torch
from geometry_helpers import rotation
from noise_helpers import textured_disc_in_air

from MRQualityMetricsLib.line_profile import sample_line
from MRQualityMetricsLib.volume import Volume, make_ijk_to_ras
from MRSuperResLib import data_consistency as data_consistency_module
from MRSuperResLib import inference, phantoms
from MRSuperResLib.degradation import acquire, fourier_resample
from MRSuperResLib.simulate import resampled_geometry

FAST_MODEL = "mrsr-unet16-2p5d-v7"


def _enhance(array, ijk_to_ras, **kwargs):
    kwargs.setdefault("model_id", FAST_MODEL)
    kwargs.setdefault("device", "cpu")
    return inference.enhance(array, ijk_to_ras, **kwargs)


OBLIQUE = rotation((1, 2, 3), 20)


# ---------------------------------------------------------------- geometry (cheap: no model)


@pytest.mark.parametrize("shape_kji", [(5, 48, 48), (5, 45, 47), (4, 90, 33)])
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_output_geometry_scales_in_plane_axes_and_keeps_directions(shape_kji, scale):
    geometry = make_ijk_to_ras((0.9, 1.1, 3.5), OBLIQUE, origin=(-20.0, 15.0, 7.0))
    out_shape, out_geometry = inference.output_geometry(geometry, shape_kji, scale)
    assert out_shape == (shape_kji[0], shape_kji[1] * scale, shape_kji[2] * scale)
    spacing_in = np.linalg.norm(geometry[:3, :3], axis=0)
    spacing_out = np.linalg.norm(out_geometry[:3, :3], axis=0)
    np.testing.assert_allclose(spacing_out, spacing_in / [scale, scale, 1])
    np.testing.assert_allclose(out_geometry[:3, :3] / spacing_out, OBLIQUE, atol=1e-12)
    np.testing.assert_allclose(out_geometry, resampled_geometry(geometry, shape_kji, out_shape))
    # Centred DFT (samples n // 2 coincide): output voxel 0 lies on input voxel 0 for even sizes; for odd sizes
    # at input index -1/2 (x2) or -1/3 (x3) along that axis (simulate.fourier_sample_positions).
    first_ijk = [0.0 if n % 2 == 0 or scale == 1 else {2: -1 / 2, 3: -1 / 3}[scale] for n in shape_kji[:0:-1]] + [0.0]
    np.testing.assert_allclose(out_geometry[:3, 3], (geometry @ np.r_[first_ijk, 1.0])[:3], atol=1e-12)


@pytest.mark.parametrize("spacing, directions, expected_axis", [
    ((1.0, 1.0, 3.0), np.eye(3), "k"),  # thick axial slices
    ((4.0, 0.8, 0.8), np.eye(3), "i"),  # thick sagittal slices
    ((1.0, 2.5, 1.0), np.eye(3), "j"),
    ((1.0, 1.0, 1.0), np.eye(3), "k"),  # isotropic: the axis closest to superior-inferior (axial)
    ((1.0, 1.0, 1.0), np.array([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]]), "i"),  # i runs along S here
    ((1.0, 1.0, 1.0), np.array([[0.0, 0, 1], [1, 0, 0], [0, -1, 0]]), "j"),  # flipped S-I still counts
    ((1.2, 1.2, 1.2), OBLIQUE, "k"),
])
def test_auto_slice_axis_is_largest_spacing_or_axial(spacing, directions, expected_axis):
    geometry = make_ijk_to_ras(spacing, directions)
    shape = (6, 7, 8)
    expected_shape = {"i": (12, 14, 8), "j": (12, 7, 16), "k": (6, 14, 16)}[expected_axis]
    assert inference.output_geometry(geometry, shape, 2, "auto")[0] == expected_shape
    assert inference.output_geometry(geometry, shape, 2, expected_axis)[0] == expected_shape


@pytest.mark.parametrize("axis, expected", [("i", (12, 14, 8)), ("j", (12, 7, 16)), ("k", (6, 14, 16))])
def test_explicit_slice_axis_overrides_spacing(axis, expected):
    assert inference.output_geometry(make_ijk_to_ras((1, 1, 5)), (6, 7, 8), 2, axis)[0] == expected


# ---------------------------------------------------------------- the edge-position phantom


def _crossings(profile, level):
    """Distances (mm) where the profile crosses `level`, linearly interpolated between samples."""
    x, y = profile.distance_mm, profile.intensity
    steps = np.flatnonzero(np.diff((y > level).astype(int)))
    return np.array([x[t] + (level - y[t]) * (x[t + 1] - x[t]) / (y[t + 1] - y[t]) for t in steps])


@pytest.mark.parametrize("scale", [2, 3])
def test_phantom_edges_stay_at_their_ras_positions(scale):
    """A bright block (edges at known voxel positions, exact partial volume, mild noise) in an oblique volume
    with anisotropic voxels: after enhancement, the 50 % crossings of profiles through the block along i and j
    (sampled in RAS with line_profile.sample_line) lie within 0.2 input voxel of the true edges. A half-voxel
    convention error (align-corners instead of voxel centres) would move them by 0.25-0.33 input voxel."""
    spacing = (0.9, 1.1, 3.5)  # i, j in-plane (different), k thick: the slice axis
    geometry = make_ijk_to_ras(spacing, OBLIQUE, origin=(-20.0, 15.0, 7.0))
    ni, nj, nk = 48, 45, 3  # even and odd in-plane sizes
    edges = {0: (14.3, 33.6), 1: (12.7, 30.2)}  # voxel-index positions of the block faces along i and j
    background, block = 10.0, 110.0
    image = background + (block - background) * np.outer(phantoms.box_profile(nj, *edges[1]), phantoms.box_profile(ni, *edges[0]))
    noise = np.random.default_rng(1).normal(0.0, 2.0, (nk, nj, ni))
    array = (phantoms.stack(image, nk) + noise).astype(np.float32)

    out, out_geometry = _enhance(array, geometry, scale=scale)
    assert out.shape == (nk, nj * scale, ni * scale) and out.dtype == np.float32
    expected_shape, expected_geometry = inference.output_geometry(geometry, array.shape, scale)
    assert out.shape == expected_shape
    np.testing.assert_allclose(out_geometry, expected_geometry)

    volume_in, volume_out = Volume(array, geometry), Volume(out, out_geometry)
    centre = np.array([np.mean(edges[0]), np.mean(edges[1]), nk // 2])
    for axis in (0, 1):
        start, end = centre.copy(), centre.copy()
        start[axis], end[axis] = 4.0, (ni, nj)[axis] - 5.0
        line = volume_in.ijk_to_ras_points([start, end])
        true_mm = (np.array(edges[axis]) - start[axis]) * spacing[axis]
        for volume, name in ((volume_in, "input"), (volume_out, "output")):
            found = _crossings(sample_line(volume, line, name=f"axis {axis}"), (background + block) / 2)
            assert len(found) == 2, f"{name}: expected one rising and one falling edge along axis {axis}, got {found}"
            error_voxels = (found - true_mm) / spacing[axis]
            assert np.abs(error_voxels).max() < 0.2, f"{name} x{scale}, axis {'ij'[axis]}: edge errors {error_voxels} voxels"


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": 4}, "scale must be one of"),
    ({"scale": 1.5}, "scale must be one of"),
    ({"scale": 0}, "scale must be one of"),
    ({"denoise": -0.1}, "denoise strength"),
    ({"denoise": 1.5}, "denoise strength"),
    ({"device": "tpu"}, "device must be"),
    ({"slice_axis": "x"}, "slice axis"),
    ({"slice_axis": 3}, "slice axis"),
    ({"model_id": "no-such-model"}, "unknown model"),
])
def test_invalid_arguments_are_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _enhance(np.ones((3, 16, 16), np.float32), np.eye(4), **kwargs)


def test_cuda_request_without_a_gpu_is_a_value_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is available here")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        _enhance(np.ones((3, 16, 16), np.float32), np.eye(4), device="cuda")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels_are_a_value_error(bad):
    array = np.ones((3, 16, 16), np.float32)
    array[1, 2, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        _enhance(array, np.eye(4))


@pytest.mark.parametrize("array, message", [(np.ones((16, 16)), "3D array"), (np.ones((3, 4, 4), complex), "real voxel")])
def test_wrong_array_kind_is_a_value_error(array, message):
    with pytest.raises(ValueError, match=message):
        _enhance(array, np.eye(4))


# ---------------------------------------------------------------- behaviour of a run


def test_input_array_is_not_modified_and_explicit_slice_axis_is_used():
    rng = np.random.default_rng(2)
    array = (rng.random((24, 20, 3)) * 100).astype(np.float32)  # thin along i: sagittal slices
    original = array.copy()
    out, out_geometry = _enhance(array, make_ijk_to_ras((1.0, 1.0, 1.0)), scale=2, slice_axis="i")
    assert out.shape == (48, 40, 3)
    np.testing.assert_allclose(np.linalg.norm(out_geometry[:3, :3], axis=0), [1.0, 0.5, 0.5])
    np.testing.assert_array_equal(array, original)
    integers = (original * 10).astype(np.int16)
    integers_copy = integers.copy()
    out_int, _ = _enhance(integers, np.eye(4), scale=1, slice_axis="i")
    np.testing.assert_array_equal(integers, integers_copy)
    assert out_int.dtype == np.float32 and out_int.shape == integers.shape


@pytest.mark.parametrize("data_consistency, chunk_slices, finished", [
    (False, None, [2, 4, 6, 8, 10, 12, 14, 16]),
    # The input less its Rician floor, the Wiener step's two passes and the method-noise check each need their
    # source 3 slices ahead: a slice is final 12 slices behind the network, in chunks of slices (2 here; by default
    # a chunk is larger than this volume).
    (True, 2, [0, 0, 0, 0, 0, 0, 2, 16]),
    (True, None, [0, 0, 0, 0, 0, 0, 0, 16]),
])
def test_progress_counts_final_slices_up_to_the_total(monkeypatch, data_consistency, chunk_slices, finished):
    if chunk_slices is not None:
        monkeypatch.setattr(data_consistency_module, "CHUNK_PIXELS", chunk_slices * 24 * 24)  # 24 x 24 input slices
    calls = []
    array = np.random.default_rng(3).random((16, 24, 24)).astype(np.float32)
    _enhance(array, make_ijk_to_ras((1, 1, 3)), scale=2, batch_size=2, data_consistency=data_consistency,
             progress=lambda done, total: calls.append((done, total)))
    assert calls == [(done, 16) for done in finished]


def test_cancel_event_raises_enhance_cancelled():
    cancel = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        cancel.set()  # the user presses Cancel after the first batch

    array = np.random.default_rng(4).random((5, 24, 24)).astype(np.float32)
    with pytest.raises(inference.EnhanceCancelled):
        _enhance(array, make_ijk_to_ras((1, 1, 3)), scale=2, batch_size=2, progress=progress, cancel=cancel)
    assert calls == [0]  # one progress report (the first batch; no slice final yet), then the cancel
    assert issubclass(inference.EnhanceCancelled, RuntimeError)


def test_constant_volume_stays_constant():
    array = np.full((3, 40, 40), 250.0, np.float32)
    out, _ = _enhance(array, make_ijk_to_ras((1, 1, 3)), scale=2)
    assert out.shape == (3, 80, 80)
    np.testing.assert_allclose(out, 250.0, rtol=0.01)


def test_model_adds_no_structure_to_noise_and_no_ringing_to_flat_phantoms():
    """evaluate's hallucination checks (a) pure Rayleigh noise and (b) piecewise-flat phantom, on the model.
    (c) the 3 mm lesion contrast: see test_sr_evaluate (it passes at scale 1, not yet at 2 and 3)."""
    from MRSuperResLib import evaluate

    config = evaluate.EvaluationConfig(volumes=[], model_id=FAST_MODEL, device="cpu")
    rows = evaluate.hallucination_checks((evaluate.MODEL,), 2, 40.0, config, log=lambda line: None)
    checked = [row for row in rows if row["check"] != "lesion_contrast"]
    assert {row["check"] for row in checked} == {"noise_only_sd", "noise_only_gradient", "flat_total_variation",
                                                 "flat_overshoot"}
    assert all(row["passed"] for row in checked), [row for row in checked if not row["passed"]]


def test_denoise_strength_one_smooths_a_flat_region_more_than_zero():
    truth = torch.from_numpy(100 * np.outer(phantoms.box_profile(48, 6, 41), phantoms.box_profile(48, 6, 41))).float()
    noisy = acquire(truth[None].repeat(3, 1, 1), (48, 48), 5.0, generator=torch.Generator().manual_seed(6)).numpy()
    geometry = make_ijk_to_ras((1, 1, 3))
    flat = (1, slice(30, 66), slice(30, 66))  # inside the square on the x2 grid, away from its edges
    outputs = {d: _enhance(noisy, geometry, scale=2, denoise=d)[0][flat] for d in (0.0, 1.0)}
    zero_filled = fourier_resample(torch.from_numpy(noisy), (96, 96)).numpy()[flat]
    # The condition is the volume's noise level (sigma 5 on the input grid), and full strength removes most of it.
    sigma = inference._volume_noise_sigma(noisy, (96, 96), torch.device("cpu"))
    assert 0.8 * 5.0 < sigma < 1.05 * 5.0
    assert outputs[1.0].std() < 0.5 * outputs[0.0].std()
    assert outputs[1.0].std() < 0.5 * zero_filled.std()
    for output in outputs.values():  # the level stays (Rician bias at SNR 20 is only 0.125)
        assert output.mean() == pytest.approx(100.0, rel=0.01)


def test_volume_noise_condition_is_capped_by_the_air_on_pixel_scale_texture(monkeypatch):
    """A disc whose every pixel has its own contrast (anatomy at the grid's finest scale, as in 4 mm EPI): the blind
    estimate reads the texture as noise; the condition stays at BLIND_TO_AIR_LIMIT times the noise read in the air."""
    stack = textured_disc_in_air(5.0, size=64, batch=6, seed=13).numpy()
    sigma = inference._volume_noise_sigma(stack, (64, 64), torch.device("cpu"))
    assert sigma == pytest.approx(inference.BLIND_TO_AIR_LIMIT * 5.0, rel=0.06)
    monkeypatch.setattr(inference, "BLIND_TO_AIR_LIMIT", float("inf"))
    assert inference._volume_noise_sigma(stack, (64, 64), torch.device("cpu")) > 2 * 5.0


def test_denoising_keeps_pixel_scale_texture_that_the_blind_estimate_calls_noise(monkeypatch):
    """x1 on the textured disc: with the capped condition the output is closer to the clean disc than with the
    blind estimate alone, which smooths the texture away with the noise."""
    clean = textured_disc_in_air(0.0, size=64, batch=5, seed=14).numpy()
    noisy = textured_disc_in_air(5.0, size=64, batch=5, seed=14).numpy()  # the same texture, noise added
    geometry = make_ijk_to_ras((2.0, 2.0, 4.0))
    inner = (slice(1, 4), slice(8, 56), slice(8, 56))
    shipped, errors = inference.BLIND_TO_AIR_LIMIT, {}
    for limit in (shipped, float("inf")):
        monkeypatch.setattr(inference, "BLIND_TO_AIR_LIMIT", limit)
        out, _ = _enhance(noisy, geometry, scale=1, denoise=1.0)
        errors[limit] = float(np.sqrt(np.mean((out[inner] - clean[inner]) ** 2)))
    assert errors[shipped] < 0.6 * errors[float("inf")]  # measured 5.8 against 14.9 (noise SD 5)


def _oom_volume():
    return np.random.default_rng(7).random((5, 24, 24)).astype(np.float32) * 100


def test_cuda_out_of_memory_retries_with_smaller_batches(monkeypatch):
    """Fault injection on the CPU: _restore_batch raises torch.cuda.OutOfMemoryError for batches of more than
    one slice, as a GPU without enough memory would; enhance must halve the batch (warning) down to one slice and
    give the same result as a run with batch_size=1."""
    geometry = make_ijk_to_ras((1, 1, 3))
    reference, _ = _enhance(_oom_volume(), geometry, scale=2, batch_size=1)
    real_restore = inference._restore_batch
    batch_sizes = []

    def restore_with_small_memory(model, stack, first, last, *args):
        batch_sizes.append(last - first)
        if last - first > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real_restore(model, stack, first, last, *args)

    monkeypatch.setattr(inference, "_restore_batch", restore_with_small_memory)
    with pytest.warns(UserWarning, match="GPU out of memory: retrying with batches of") as caught:
        out, _ = _enhance(_oom_volume(), geometry, scale=2, batch_size=4)
    assert [str(w.message) for w in caught if "out of memory" in str(w.message)] == [
        "GPU out of memory: retrying with batches of 2 slices", "GPU out of memory: retrying with batches of 1 slices"]
    assert batch_sizes == [4, 2, 1, 1, 1, 1, 1]
    np.testing.assert_array_equal(out, reference)


def test_cuda_out_of_memory_for_one_slice_continues_on_the_cpu(monkeypatch):
    """Fault injection: enhance believes it runs on CUDA (the CPU model stands in for the GPU one), and the
    one-slice batch on "cuda" raises torch.cuda.OutOfMemoryError. enhance must warn, move to the CPU and restore
    every slice exactly as a CPU run does."""
    geometry = make_ijk_to_ras((1, 1, 3))
    reference, _ = _enhance(_oom_volume(), geometry, scale=2, denoise=0.0, batch_size=1)
    real_restore, real_model = inference._restore_batch, inference._model
    devices = []

    def restore_without_gpu_memory(model, stack, first, last, out_rows_cols, sigma, denoise, device, *options):
        devices.append(device.type)
        if device.type == "cuda":
            assert devices.count("cuda") == 1, "after an out-of-memory error on one slice enhance must leave the GPU"
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real_restore(model, stack, first, last, out_rows_cols, sigma, denoise, device, *options)

    monkeypatch.setattr(inference, "resolve_device", lambda device: torch.device("cuda"))
    monkeypatch.setattr(inference, "_model", lambda info, device: real_model(info, torch.device("cpu")))
    monkeypatch.setattr(inference, "_volume_noise_sigma", lambda stack, rows_cols, device: 0.0)
    monkeypatch.setattr(inference, "_restore_batch", restore_without_gpu_memory)
    # The Wiener step's buffers stay on the CPU: this torch has no CUDA to allocate them on.
    real_restorer = data_consistency_module.MeasuredBandRestorer
    monkeypatch.setattr(data_consistency_module, "MeasuredBandRestorer",
                        lambda measured, output, sigma, device, **options: real_restorer(measured, output, sigma,
                                                                                         "cpu", **options))
    with pytest.warns(UserWarning, match="continuing on the CPU"):
        out, _ = inference.enhance(_oom_volume(), geometry, scale=2, denoise=0.0, batch_size=1, model_id=FAST_MODEL)
    assert devices == ["cuda"] + ["cpu"] * 5
    np.testing.assert_array_equal(out, reference)


def test_enhance_volume_names_the_result_and_keeps_metadata():
    volume = Volume(np.full((3, 16, 16), 50.0, np.float32), make_ijk_to_ras((1, 1, 3)), name="T2 axial", metadata={"a": 1})
    enhanced = inference.enhance_volume(volume, scale=3, model_id=FAST_MODEL, device="cpu")
    assert enhanced.name == "T2 axial enhanced ×3"
    assert enhanced.array.shape == (3, 48, 48) and enhanced.metadata == {"a": 1}
    np.testing.assert_allclose(enhanced.ijk_to_ras, inference.output_geometry(volume.ijk_to_ras, (3, 16, 16), 3)[1])
    denoised = inference.enhance_volume(volume, scale=1, model_id=FAST_MODEL, device="cpu")
    assert denoised.name == "T2 axial denoised" and denoised.array.shape == (3, 16, 16)
