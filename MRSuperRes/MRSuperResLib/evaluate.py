"""Evaluation of the network against classical pipelines on simulated degradations of held-out truths.

For every truth volume (never used for training), scale and SNR: the truth is degraded with simulate.py (fixed
seed per volume/scale/SNR), every method restores it onto the truth grid, and the result is compared with the
truth (fidelity.py: PSNR/SSIM/NRMSE in a head mask and over the whole image, same grid and data range for all).
Sharpness (FWHM, ERD) comes from an analytic phantom built on the same grid (a thin bright strip, twice the
pixel wide, on a flat disk at the volume's foreground level), degraded and restored identically: profiles
across the strip (several parallel lines, averaged) go through MRQualityMetricsLib's line sampling and edge
metrics. A "truth" row gives the phantom's true sharpness.

Scale 1 is the denoise-only evaluation: the noisy input ("noisy_input") against NLM, BM4D and the model.

Hallucination checks (per scale; (a) and (b) at the highest SNR requested, (c) at every SNR requested, since
denoising erodes a small lesion more the lower the SNR), each method against the zero-filled input:
(a) noise only: a pure Rayleigh-noise acquisition; output SD and mean gradient magnitude must not exceed
    those of the zero-filled input by more than 2 %.
(b) piecewise-flat phantom: total variation must not exceed the zero-fill's by more than 2 %, and the
    overshoot above the truth maximum (99.9th percentile) by more than 1 % of the truth maximum.
(c) 3 mm lesion-like spheres (9, contrast 50 %): mean contrast (core within 1 mm minus a ring 4-7 mm around, per
    lesion, mean of three noise draws) must stay within [0.9 min(C_truth, C_zerofill), 1.1 max(C_truth,
    C_zerofill)]: not erased, not exaggerated.
The verdict (checks_passed) is the model's when it was evaluated, else that of every method.
"""

import csv
import io
import math
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from MRSuperResLib import baselines, fidelity, phantoms, simulate

MODEL = "model"
NETWORK_ONLY = "network_only"  # the model without its data-consistency step: what that step adds, in every run
MODEL_METHODS = (NETWORK_ONLY, MODEL)
TRUTH = "truth"
NOISY_INPUT = "noisy_input"
INTERPOLATORS = ("zero_fill", "bspline", "bicubic")
COLUMNS = ("volume", "snr", "scale", "method", "psnr_mask", "psnr_whole", "ssim_mask", "ssim_whole", "nrmse_mask",
           "nrmse_whole", "fwhm_mm", "erd_mm", "seconds")
HALLUCINATION_COLUMNS = ("check", "scale", "snr", "method", "value", "reference", "limit", "passed")
_SHARPNESS_SLICES = 4
_PHANTOM_SIZE = 128
_TOLERANCE_NOISE = 1.02
_TOLERANCE_TV = 1.02
_TOLERANCE_OVERSHOOT = 0.01
_TOLERANCE_LESION = 0.10
_LESION_REALISATIONS = 3


def default_volumes() -> list:
    """The held-out evaluation set: MNI152NLin6Asym T1 (with head), SPM avg152 T2 and PD, the bundled GE PD series."""
    from MRSuperResLib.fetch_data import default_data_dir

    templates = default_data_dir() / "templates"
    sample = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "GEBrainPD"
    return [templates / "tpl-MNI152NLin6Asym_res-01_T1w.nii.gz", templates / "avg152T2.nii",
            templates / "avg152PD.nii", sample]


@dataclass
class EvaluationConfig:
    volumes: list = field(default_factory=default_volumes)  # paths or Volume objects
    snrs: tuple = (10.0, 20.0, 40.0)
    scales: tuple = (2,)
    methods: tuple | None = None  # default: the available classical methods plus the model
    model_id: str | None = None
    denoise: float = 1.0
    device: str = "auto"
    max_slices: int | None = None  # central slices kept along the slice axis (bounds the run time)
    seed: int = 0
    output_dir: str | Path | None = None
    figures: bool = True
    hallucination: bool = True


@dataclass
class EvaluationResult:
    rows: list
    hallucination_rows: list
    passed: bool
    files: list
    seconds_per_volume: dict


# ----------------------------------------------------------------------------------------------- methods
def default_methods() -> tuple:
    """The available classical methods, plus the model with and without its data-consistency step."""
    return tuple(baselines.available_methods()) + MODEL_METHODS


def _check_methods(methods):
    known = set(baselines.METHODS) | set(MODEL_METHODS)
    unknown = [name for name in methods if name not in known]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(known)}")
    if "bm4d" in methods and not baselines.bm4d_available():
        raise ValueError("method bm4d needs the `bm4d` package, which is not installed")
    return tuple(methods)


def methods_for_scale(methods, scale) -> list:
    """(label, method) pairs: at scale 1 zero-fill is the noisy input and the interpolators are left out."""
    if scale == 1:
        return [(NOISY_INPUT if name == "zero_fill" else name, name) for name in methods
                if name not in INTERPOLATORS[1:]]
    return [(name, name) for name in methods]


def run_method(name, array, ijk_to_ras, scale, slice_axis, config: EvaluationConfig):
    if name in MODEL_METHODS:
        from MRSuperResLib import inference

        return inference.enhance(array, ijk_to_ras, scale=scale, denoise=config.denoise, device=config.device,
                                 slice_axis=slice_axis, model_id=config.model_id, data_consistency=name == MODEL)
    return baselines.run_method(name, array, ijk_to_ras, scale=scale, slice_axis=slice_axis)


def _restore(name, degraded, scale, axis_name, config, truth_shape, truth_geometry):
    """Run one method and check that its output lands exactly on the truth grid."""
    start = time.perf_counter()
    out, geometry = run_method(name, degraded.array, degraded.ijk_to_ras, scale, axis_name, config)
    seconds = time.perf_counter() - start
    out = np.asarray(out, dtype=np.float32)
    if out.shape != tuple(truth_shape) or not np.allclose(geometry, truth_geometry, atol=1e-3):
        raise ValueError(f"method {name} returned shape {out.shape} / geometry that does not match the truth grid "
                         f"{tuple(truth_shape)}; the method breaks the resampling convention")
    return out, seconds


# ----------------------------------------------------------------------------------------------- truths
def load_truth(source, name=None):
    """A Volume from a path (volume file or DICOM folder) or a Volume object (used as is)."""
    from MRQualityMetricsLib.volume import Volume

    if isinstance(source, Volume):
        return source
    from MRQualityMetricsLib.volume_io import read_volume

    path = Path(source)
    if not path.exists():
        raise ValueError(f"evaluation volume {path} does not exist (run `mrsuperres fetch-data` for the templates)")
    return read_volume(str(path), name=name)


def _volume_label(volume, source):
    if isinstance(source, str | Path):
        path = Path(source)
        return path.name.split(".nii")[0] if path.is_file() else path.name
    return volume.name


def prepare_truth(volume, scales, max_slices=None, slice_axis="auto"):
    """Float32 non-negative truth, in-plane sizes padded with air (zeros, at the far end: voxel 0 and the geometry
    kept) to a multiple of twice every scale, so the coarse grid is even and keeps voxel 0 under every resampling
    convention; `max_slices` central slices. Padding, not cropping: a crop through the head would leave an edge
    that wraps around in k-space, whose ringing no method can undo (it cost every method up to 2.0 dB on the
    avg152 templates). Returns (array, ijk_to_ras, slice voxel axis)."""
    array = np.clip(np.asarray(volume.array, dtype=np.float32), 0, None)  # magnitude images are >= 0
    ijk_to_ras = np.asarray(volume.ijk_to_ras, dtype=float)
    voxel_axis = simulate.resolve_slice_axis(ijk_to_ras, slice_axis)
    axis = simulate.array_axis(voxel_axis)
    multiple = 2 * math.lcm(*[int(s) for s in scales])
    index = [slice(None)] * 3
    padding = [(0, 0)] * 3
    first_slice = 0
    for a in range(3):
        if a == axis:
            if max_slices is not None and array.shape[a] > max_slices:
                first_slice = (array.shape[a] - max_slices) // 2
                index[a] = slice(first_slice, first_slice + max_slices)
        else:
            if array.shape[a] < 16:
                raise ValueError(f"{volume.name}: in-plane size {array.shape[a]} is too small to evaluate (under 16)")
            padding[a] = (0, -array.shape[a] % multiple)
    truth = np.pad(array[tuple(index)], padding)
    geometry = ijk_to_ras.copy()
    offset = [0, 0, 0]
    offset[voxel_axis] = first_slice
    geometry[:3, 3] = (ijk_to_ras @ np.array([*offset, 1.0]))[:3]
    return np.ascontiguousarray(truth), geometry, voxel_axis


def _seed(label, scale, snr, base_seed, salt=""):
    return (zlib.crc32(f"{label}|{scale}|{snr}|{salt}".encode()) + int(base_seed)) % (2**31)


# ----------------------------------------------------------------------------------------------- sharpness
def _in_plane_axes(axis):
    return [a for a in range(3) if a != axis]


def build_sharpness_phantom(shape, ijk_to_ras, voxel_axis, level):
    """The sharpness phantom on the in-plane grid of a truth, a few slices; returns (array [k, j, i], phantom).

    It shares the truth's geometry (voxel 0, spacing, directions); only the number of slices differs."""
    axis = simulate.array_axis(voxel_axis)
    rows_axis, cols_axis = _in_plane_axes(axis)
    spacing_kji = np.linalg.norm(ijk_to_ras[:3, :3], axis=0)[::-1]
    in_plane = (shape[rows_axis], shape[cols_axis])
    spacing = (spacing_kji[rows_axis], spacing_kji[cols_axis])
    phantom = phantoms.sharpness_phantom(in_plane, spacing, level=level)
    array = np.moveaxis(phantoms.stack(phantom.image, _SHARPNESS_SLICES), 0, axis)
    return np.ascontiguousarray(array), phantom


def _phantom_lines(phantom, voxel_axis, ijk_to_ras, scale):
    """RAS end points of parallel lines across the strip (several offsets along it, every slice)."""
    axis = simulate.array_axis(voxel_axis)
    rows_axis, cols_axis = _in_plane_axes(axis)
    spacing_kji = np.linalg.norm(ijk_to_ras[:3, :3], axis=0)[::-1]
    coarse_pixel = scale * max(spacing_kji[rows_axis], spacing_kji[cols_axis])
    half_length = phantom.width_mm / 2 + 5 * coarse_pixel
    normal = np.array(phantom.normal)
    tangent = np.array([-normal[1], normal[0]])
    lines = []
    for s in range(_SHARPNESS_SLICES):
        for offset in np.linspace(-6, 6, 13) * coarse_pixel:
            ends = []
            for sign in (-1, 1):
                row_mm, col_mm = np.array(phantom.center_mm) + offset * tangent + sign * half_length * normal
                index_kji = [0.0, 0.0, 0.0]
                index_kji[axis] = s
                index_kji[rows_axis] = row_mm / spacing_kji[rows_axis]
                index_kji[cols_axis] = col_mm / spacing_kji[cols_axis]
                ends.append((ijk_to_ras @ np.array([*index_kji[::-1], 1.0]))[:3])
            lines.append(np.array(ends))
    return lines


def measure_sharpness(array, ijk_to_ras, lines, step_mm):
    """(FWHM, ERD) in mm of the mean profile across the strip; NaN when no peak can be measured."""
    from MRQualityMetricsLib.edge_metrics import sharpness_from_profile
    from MRQualityMetricsLib.line_profile import sample_line
    from MRQualityMetricsLib.volume import Volume

    volume = Volume(array=array, ijk_to_ras=ijk_to_ras, name="sharpness phantom")
    profiles = [sample_line(volume, line, step_mm=step_mm, name="strip") for line in lines]
    length = min(len(profile.intensity) for profile in profiles)
    mean_profile = np.mean([profile.intensity[:length] for profile in profiles], axis=0)
    try:
        result = sharpness_from_profile(profiles[0].distance_mm[:length], mean_profile, polarity="peak", name="strip")
    except ValueError:
        return math.nan, math.nan
    return float(result.fwhm_mm), float(result.erd_mm)


# ----------------------------------------------------------------------------------------------- hallucination
def _check_row(check, scale, snr, method, value, reference, limit, passed):
    return {"check": check, "scale": scale, "snr": snr, "method": method, "value": float(value),
            "reference": float(reference), "limit": float(limit), "passed": bool(passed)}


def _gradient_magnitude(array, axis):
    rows_axis, cols_axis = _in_plane_axes(axis)
    return float(np.mean(np.hypot(np.gradient(array, axis=rows_axis), np.gradient(array, axis=cols_axis))))


def _total_variation(array, axis):
    rows_axis, cols_axis = _in_plane_axes(axis)
    return float(np.abs(np.diff(array, axis=rows_axis)).sum() + np.abs(np.diff(array, axis=cols_axis)).sum())


def _lesion_contrast(array, centres_kji, spacing_mm):
    """Mean over lesions of (mean within 1 mm of the centre) - (mean in the ring 4-7 mm around, same slices)."""
    k, j, i = np.meshgrid(*[np.arange(n) for n in array.shape], indexing="ij", sparse=True)
    contrasts = []
    for ck, cj, ci in centres_kji:
        distance = np.sqrt(((i - ci) * spacing_mm[0]) ** 2 + ((j - cj) * spacing_mm[1]) ** 2 + ((k - ck) * spacing_mm[2]) ** 2)
        in_plane = np.sqrt(((i - ci) * spacing_mm[0]) ** 2 + ((j - cj) * spacing_mm[1]) ** 2) + 0 * k
        core = distance <= 1.0
        ring = (in_plane >= 4.0) & (in_plane <= 7.0) & (np.abs(k - ck) * spacing_mm[2] <= 1.0)
        contrasts.append(array[core].mean() - array[ring].mean())
    return float(np.mean(contrasts))


def _zero_filled(degraded, scale, axis_name):
    return baselines.zero_fill(degraded.array, degraded.ijk_to_ras, scale, axis_name)[0]


def _phantom_size(scale):
    return _PHANTOM_SIZE - _PHANTOM_SIZE % (6 if scale > 1 else 1)


def noise_only_checks(methods, scale, snr, config) -> list:
    """(a) The acquisition itself is pure Rayleigh noise on the coarse grid: no structure may appear."""
    rows, axis_name, axis = [], "k", 0
    size = _phantom_size(scale)
    truth_geometry = np.eye(4)
    low_size = size // scale
    noise = phantoms.rayleigh_noise((8, low_size, low_size), sigma=10.0, seed=_seed("noise", scale, snr, config.seed))
    low_geometry = simulate.resampled_geometry(truth_geometry, (8, size, size), noise.shape)
    degraded = simulate.SimulationResult(noise, low_geometry, 10.0, 2, noise.shape)
    outputs = {label: _restore(name, degraded, scale, axis_name, config, (8, size, size), truth_geometry)[0]
               for label, name in methods_for_scale(methods, scale)}
    reference = _zero_filled(degraded, scale, axis_name)
    ref_sd, ref_gradient = float(reference.std()), _gradient_magnitude(reference, axis)
    for label, out in outputs.items():
        sd, gradient = float(out.std()), _gradient_magnitude(out, axis)
        rows.append(_check_row("noise_only_sd", scale, snr, label, sd, ref_sd, ref_sd * _TOLERANCE_NOISE,
                               sd <= ref_sd * _TOLERANCE_NOISE))
        rows.append(_check_row("noise_only_gradient", scale, snr, label, gradient, ref_gradient,
                               ref_gradient * _TOLERANCE_NOISE, gradient <= ref_gradient * _TOLERANCE_NOISE))
    return rows


def flat_phantom_checks(methods, scale, snr, config) -> list:
    """(b) Piecewise-flat phantom: no new ringing."""
    rows, axis_name, axis = [], "k", 0
    size = _phantom_size(scale)
    truth_geometry = np.eye(4)
    truth = phantoms.stack(phantoms.flat_shapes((size, size)), 6)
    degraded = simulate.simulate_array(truth, truth_geometry, scale=scale, snr=snr, slice_axis=axis_name,
                                       seed=_seed("flat", scale, snr, config.seed))
    outputs = {label: _restore(name, degraded, scale, axis_name, config, truth.shape, truth_geometry)[0]
               for label, name in methods_for_scale(methods, scale)}
    top = float(truth.max())
    reference = _zero_filled(degraded, scale, axis_name)
    ref_tv = _total_variation(reference, axis)
    ref_overshoot = (float(np.percentile(reference, 99.9)) - top) / top
    for label, out in outputs.items():
        tv = _total_variation(out, axis)
        overshoot = (float(np.percentile(out, 99.9)) - top) / top
        rows.append(_check_row("flat_total_variation", scale, snr, label, tv, ref_tv, ref_tv * _TOLERANCE_TV,
                               tv <= ref_tv * _TOLERANCE_TV))
        rows.append(_check_row("flat_overshoot", scale, snr, label, overshoot, ref_overshoot,
                               ref_overshoot + _TOLERANCE_OVERSHOOT, overshoot <= ref_overshoot + _TOLERANCE_OVERSHOOT))
    return rows


def lesion_checks(methods, scale, snr, config) -> list:
    """(c) 3 mm lesions: contrast preserved, neither erased nor exaggerated."""
    rows, axis_name = [], "k"
    size = _phantom_size(scale)
    # Each value is a mean over _LESION_REALISATIONS noise draws: with one draw the zero-fill reference and a
    # method's contrast each moved by ~0.5, enough to flip a verdict.
    truth, geometry, centres = phantoms.lesion_phantom((9, size, size), (1.0, 1.0, 1.0), level=100.0, contrast=0.5,
                                                       diameter_mm=3.0, per_side=3)
    centres_kji = [(c[2], c[1], c[0]) for c in centres]
    truth_contrast = _lesion_contrast(truth, centres_kji, (1.0, 1.0, 1.0))
    contrasts = {label: [] for label, _ in methods_for_scale(methods, scale)}
    zero_fill_contrasts = []
    for draw in range(_LESION_REALISATIONS):
        degraded = simulate.simulate_array(truth, geometry, scale=scale, snr=snr, slice_axis=axis_name,
                                           seed=_seed("lesion", scale, snr, config.seed, salt=str(draw) if draw else ""))
        zero_filled = _zero_filled(degraded, scale, axis_name)
        zero_fill_contrasts.append(_lesion_contrast(zero_filled, centres_kji, (1.0, 1.0, 1.0)))
        for label, name in methods_for_scale(methods, scale):
            out = _restore(name, degraded, scale, axis_name, config, truth.shape, geometry)[0]
            contrasts[label].append(_lesion_contrast(out, centres_kji, (1.0, 1.0, 1.0)))
    zero_fill_contrast = float(np.mean(zero_fill_contrasts))
    low = (1 - _TOLERANCE_LESION) * min(truth_contrast, zero_fill_contrast)
    high = (1 + _TOLERANCE_LESION) * max(truth_contrast, zero_fill_contrast)
    for label, values in contrasts.items():
        contrast = float(np.mean(values))
        row = _check_row("lesion_contrast", scale, snr, label, contrast, truth_contrast, low, low <= contrast <= high)
        row["limit_high"] = high
        rows.append(row)
    return rows


def hallucination_checks(methods, scale, snr, config, log=print, lesion_snrs=()) -> list:
    """Checks (a) noise only, (b) piecewise-flat phantom, (c) 3 mm lesions at snr and at each of lesion_snrs; one
    row per check, SNR, method, metric."""
    rows = [*noise_only_checks(methods, scale, snr, config), *flat_phantom_checks(methods, scale, snr, config)]
    for lesion_snr in sorted({*lesion_snrs, snr}):
        rows += lesion_checks(methods, scale, lesion_snr, config)
    failed = [f"{row['check']}:{row['method']}" + (f"@{row['snr']:g}" if row["snr"] != snr else "")
              for row in rows if not row["passed"]]
    log(f"hallucination checks scale {scale}, SNR {snr:g}: " + ("all passed" if not failed else "FAILED " + ", ".join(failed)))
    return rows


def checks_passed(rows) -> bool:
    """Verdict of the hallucination checks: the model's rows when the model was evaluated, else every row.

    Classical methods fail some checks by nature (NLM erases small lesions at low SNR, B-spline loses lesion
    contrast at scale 3); they are reported for comparison, but the verdict is about the network."""
    model_rows = [row for row in rows if row["method"] == MODEL]
    return all(row["passed"] for row in (model_rows or rows))


# ----------------------------------------------------------------------------------------------- main loop
def evaluate(config: EvaluationConfig, log=print) -> EvaluationResult:
    methods = _check_methods(config.methods if config.methods is not None else default_methods())
    if not config.snrs or any(not (snr > 0) for snr in config.snrs):
        raise ValueError(f"SNR values must be > 0, got {list(config.snrs)}")
    if not config.scales or any(scale not in (1, 2, 3) for scale in config.scales):
        raise ValueError(f"scales must be 1, 2 or 3, got {list(config.scales)}")
    if config.max_slices is not None and config.max_slices < 1:
        raise ValueError(f"max slices must be >= 1, got {config.max_slices}")
    if not config.volumes:
        raise ValueError("no evaluation volumes given")
    truths = []
    for source in config.volumes:  # all read and prepared first: a bad volume fails now, not after the others' minutes
        volume = load_truth(source)
        truths.append((_volume_label(volume, source), *prepare_truth(volume, config.scales, config.max_slices)))
        del volume  # the last one too: only the prepared (cropped, padded) truths stay in memory
    output_dir = Path(config.output_dir) if config.output_dir is not None else None
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
    rows, figures_data, seconds_per_volume = [], {}, {}
    for label, truth, geometry, voxel_axis in truths:
        start = time.perf_counter()
        axis_name = simulate.AXIS_NAMES[voxel_axis]
        axis = simulate.array_axis(voxel_axis)
        mask = fidelity.head_mask(truth)
        data_range = float(truth.max())
        level = simulate.volume_foreground_mean(truth)
        sharp_array, sharp_phantom = build_sharpness_phantom(truth.shape, geometry, voxel_axis, level)
        step_mm = 0.05 * float(np.min(np.linalg.norm(geometry[:3, :3], axis=0)))
        log(f"{label}: truth {truth.shape[::-1]} (i x j x k), slice axis {axis_name}, head mask {mask.mean():.0%}")
        for scale in config.scales:
            lines = _phantom_lines(sharp_phantom, voxel_axis, geometry, scale)
            fwhm, erd = measure_sharpness(sharp_array, geometry, lines, step_mm)
            rows.append({"volume": label, "snr": math.inf, "scale": scale, "method": TRUTH, "psnr_mask": math.inf,
                         "psnr_whole": math.inf, "ssim_mask": 1.0, "ssim_whole": 1.0, "nrmse_mask": 0.0,
                         "nrmse_whole": 0.0, "fwhm_mm": fwhm, "erd_mm": erd, "seconds": 0.0})
            for snr in config.snrs:
                seed = _seed(label, scale, snr, config.seed)
                degraded = simulate.simulate_array(truth, geometry, scale=scale, snr=snr, slice_axis=axis_name, seed=seed)
                degraded_sharp = simulate.simulate_array(sharp_array, geometry, scale=scale, snr=snr,
                                                         slice_axis=axis_name, seed=seed + 1)
                outputs = {}
                for method_label, name in methods_for_scale(methods, scale):
                    out, seconds = _restore(name, degraded, scale, axis_name, config, truth.shape, geometry)
                    sharp_out, _ = _restore(name, degraded_sharp, scale, axis_name, config, sharp_array.shape, geometry)
                    fwhm, erd = measure_sharpness(sharp_out, geometry, lines, step_mm)
                    metrics = fidelity.fidelity_metrics(out, truth, mask, data_range, slice_axis=axis)
                    rows.append({"volume": label, "snr": snr, "scale": scale, "method": method_label, **metrics,
                                 "fwhm_mm": fwhm, "erd_mm": erd, "seconds": seconds})
                    outputs[method_label] = out
                    log(f"  scale {scale} SNR {snr:g} {method_label:12s} PSNR {metrics['psnr_mask']:6.2f} dB  "
                        f"SSIM {metrics['ssim_mask']:.4f}  FWHM {fwhm:5.2f} mm  {seconds:6.2f} s")
                # Only the middle slices are kept for the figure, so memory stays at one volume's outputs.
                figures_data[(label, scale, snr)] = (
                    _middle_slice(truth, axis), _middle_slice(degraded.array, axis),
                    {name: _middle_slice(out, axis) for name, out in outputs.items()}, axis, geometry)
                del outputs
        seconds_per_volume[label] = time.perf_counter() - start
        log(f"{label}: {seconds_per_volume[label]:.1f} s")
        if output_dir is not None and config.figures:
            for scale in config.scales:
                path = output_dir / f"figure_{label}_x{scale}.png"
                write_figure({snr: figures_data[(label, scale, snr)] for snr in config.snrs}, path, label, scale)
        figures_data.clear()

    hallucination_rows = []
    if config.hallucination:
        for scale in config.scales:
            hallucination_rows += hallucination_checks(methods, scale, max(config.snrs), config, log,
                                                       lesion_snrs=config.snrs)
    passed = checks_passed(hallucination_rows)
    files = []
    if output_dir is not None:
        files = write_outputs(output_dir, rows, hallucination_rows, seconds_per_volume, config)
        files += sorted(str(path) for path in output_dir.glob("figure_*.png"))
    return EvaluationResult(rows, hallucination_rows, passed, files, seconds_per_volume)


# ----------------------------------------------------------------------------------------------- outputs
def _csv_text(rows, columns) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()})
    return buffer.getvalue()


def summary_rows(rows) -> list:
    """Mean over volumes of every metric per (scale, snr, method), in first-seen order."""
    groups = {}
    for row in rows:
        groups.setdefault((row["scale"], row["snr"], row["method"]), []).append(row)
    summary = []
    for (scale, snr, method), members in groups.items():
        entry = {"scale": scale, "snr": snr, "method": method, "volumes": len(members)}
        for column in COLUMNS[4:]:
            values = [member[column] for member in members if not math.isnan(member[column])]
            entry[column] = float(np.mean(values)) if values else math.nan
        summary.append(entry)
    return sorted(summary, key=lambda entry: (entry["scale"], entry["snr"]))


def _format(value, digits=3):
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        if math.isnan(value):
            return "n/a"
        return f"{value:.{digits}f}"
    return str(value)


def summary_markdown(rows, hallucination_rows, seconds_per_volume, config) -> str:
    lines = ["# MRSuperRes evaluation", "",
             f"Volumes: {', '.join(seconds_per_volume)}. SNR: {', '.join(f'{s:g}' for s in config.snrs)}. "
             f"Scales: {', '.join(str(s) for s in config.scales)}. Max slices: {config.max_slices or 'all'}. "
             f"Seed: {config.seed}.", "",
             "Mean over volumes. PSNR/SSIM/NRMSE inside the head mask (`mask`) and over the whole image (`whole`), "
             "data range = truth maximum, SSIM slice-wise 2D (7x7). FWHM/ERD: thin-strip phantom on each volume's "
             "grid (truth row = the phantom itself). Seconds: the method on the whole volume.", "",
             "| scale | SNR | method | PSNR mask | PSNR whole | SSIM mask | SSIM whole | NRMSE mask | FWHM mm | ERD mm | s |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in summary_rows(rows):
        lines.append(
            f"| {entry['scale']} | {_format(float(entry['snr']), 0)} | {entry['method']} | {_format(entry['psnr_mask'], 2)} | "
            f"{_format(entry['psnr_whole'], 2)} | {_format(entry['ssim_mask'], 4)} | {_format(entry['ssim_whole'], 4)} | "
            f"{_format(entry['nrmse_mask'], 4)} | {_format(entry['fwhm_mm'], 2)} | {_format(entry['erd_mm'], 2)} | "
            f"{_format(entry['seconds'], 2)} |")
    if hallucination_rows:
        verdict = "PASSED" if checks_passed(hallucination_rows) else "FAILED"
        subject = "the model's rows" if any(row["method"] == MODEL for row in hallucination_rows) else "all rows"
        lines += ["", f"## Hallucination checks: {verdict} ({subject})", "",
                  "Reference = zero-filled input (lesion: truth contrast; limits 0.9 min / 1.1 max of truth and zero-fill).",
                  "", "| check | scale | SNR | method | value | reference | limit | passed |",
                  "|---|---:|---:|---|---:|---:|---:|---|"]
        for row in hallucination_rows:
            limit = _format(row["limit"], 4)
            if "limit_high" in row:
                limit = f"{limit} .. {_format(row['limit_high'], 4)}"
            lines.append(f"| {row['check']} | {row['scale']} | {row['snr']:g} | {row['method']} | {_format(row['value'], 4)} | "
                         f"{_format(row['reference'], 4)} | {limit} | {'yes' if row['passed'] else 'NO'} |")
    lines += ["", "## Time per volume (all methods, SNRs and scales, incl. simulation and metrics)", ""]
    lines += [f"- {label}: {seconds:.1f} s" for label, seconds in seconds_per_volume.items()]
    return "\n".join(lines) + "\n"


def write_outputs(output_dir, rows, hallucination_rows, seconds_per_volume, config) -> list:
    from MRQualityMetricsLib.atomic_files import write_text_atomic

    output_dir = Path(output_dir)
    paths = [output_dir / "evaluation.csv", output_dir / "summary.md"]
    write_text_atomic(paths[0], _csv_text(rows, COLUMNS))
    write_text_atomic(paths[1], summary_markdown(rows, hallucination_rows, seconds_per_volume, config))
    if hallucination_rows:
        paths.append(output_dir / "hallucination.csv")
        write_text_atomic(paths[2], _csv_text(hallucination_rows, HALLUCINATION_COLUMNS + ("limit_high",)))
    return [str(path) for path in paths]


def _middle_slice(array, axis):
    return np.take(array, array.shape[axis] // 2, axis=axis)


def display_orientation(ijk_to_ras, axis):
    """(transpose, flip_rows, flip_cols) showing a slice radiologically: superior (anterior on axial slices) up,
    patient left on the right (posterior on the right for sagittal slices)."""
    rows_axis, cols_axis = _in_plane_axes(axis)
    directions = np.asarray(ijk_to_ras, dtype=float)[:3, :3] / np.linalg.norm(np.asarray(ijk_to_ras)[:3, :3], axis=0)
    kji_directions = directions[:, ::-1]  # column per numpy axis of [k, j, i]
    normal = np.abs(kji_directions[:, axis])
    up = np.array([0.0, 1.0, 0.0]) if np.argmax(normal) == 2 else np.array([0.0, 0.0, 1.0])
    right = np.array([0.0, -1.0, 0.0]) if np.argmax(normal) == 0 else np.array([-1.0, 0.0, 0.0])
    row_dir, col_dir = kji_directions[:, rows_axis], kji_directions[:, cols_axis]
    transpose = abs(col_dir @ up) > abs(row_dir @ up)
    if transpose:
        row_dir, col_dir = col_dir, row_dir
    return transpose, bool(row_dir @ up > 0), bool(col_dir @ right < 0)


def _oriented(image, orientation):
    transpose, flip_rows, flip_cols = orientation
    image = image.T if transpose else image
    image = image[::-1] if flip_rows else image
    return image[:, ::-1] if flip_cols else image


def write_figure(per_snr, path, label, scale):
    """Same middle slice for truth, degraded input, every method, and difference maps vs truth (two rows per SNR)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from MRQualityMetricsLib.atomic_files import atomic_path

    snrs = list(per_snr)
    truth_slice, _, outputs, axis, geometry = per_snr[snrs[0]]
    columns = ["truth", "degraded"] + list(outputs)
    top = float(np.percentile(truth_slice, 99.5)) or 1.0
    figure, grid = plt.subplots(2 * len(snrs), len(columns), figsize=(2.0 * len(columns), 2.1 * 2 * len(snrs)),
                                squeeze=False)
    # Every image covers the same field of view (Fourier convention), shown in mm.
    spacing_kji = np.linalg.norm(geometry[:3, :3], axis=0)[::-1]
    rows_axis, cols_axis = _in_plane_axes(axis)
    height, width = truth_slice.shape[0] * spacing_kji[rows_axis], truth_slice.shape[1] * spacing_kji[cols_axis]
    orientation = display_orientation(geometry, axis)
    extent = (0, height, width, 0) if orientation[0] else (0, width, height, 0)
    for row_index, snr in enumerate(snrs):
        _, degraded_slice, outputs, _, _ = per_snr[snr]
        images = {"truth": truth_slice, "degraded": degraded_slice, **outputs}
        images = {name: _oriented(image, orientation) for name, image in images.items()}
        for column, name in enumerate(columns):
            top_axes, diff_axes = grid[2 * row_index, column], grid[2 * row_index + 1, column]
            top_axes.imshow(images[name], cmap="gray", vmin=0, vmax=top, extent=extent, interpolation="nearest")
            top_axes.set_title(f"{name}\nSNR {snr:g}" if name != "truth" else "truth", fontsize=8)
            if name in outputs:
                diff_axes.imshow(images[name] - images["truth"], cmap="RdBu_r", vmin=-0.2 * top, vmax=0.2 * top,
                                 extent=extent, interpolation="nearest")
                diff_axes.set_title(f"{name} - truth", fontsize=7)
            for axes in (top_axes, diff_axes):
                axes.set_xticks([])
                axes.set_yticks([])
            if name not in outputs:
                diff_axes.axis("off")
    figure.suptitle(f"{label}, scale {scale} (difference maps: +-20 % of the truth's 99.5th percentile)", fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=90)
    plt.close(figure)
