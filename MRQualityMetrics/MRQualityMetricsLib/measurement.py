"""Measure one set of lines and regions (world RAS) on several volumes, each at its own resolution.

measure() returns one row per (volume, measurement); the columns are described by COLUMNS (name, title, unit,
and a description stating the formula). Everything is computed before anything is returned: a failing
measurement raises ValueError and no rows at all are produced.
"""

import csv
import math
from dataclasses import dataclass, field

import numpy as np

from . import snr as snr_formulas
from .atomic_files import atomic_path
from .edge_metrics import POLARITIES, sharpness_from_profile
from .line_profile import DEFAULT_INTERPOLATION, DEFAULT_STEP_FRACTION, INTERPOLATION_ORDERS, sample_line
from .region_stats import region_values, statistics_of_values


@dataclass
class LineSpec:
    name: str
    points_ras: np.ndarray
    polarity: str = "auto"  # "auto", "peak", "trough" or "edge" (see edge_metrics)


@dataclass
class SnrSpec:
    region: str
    noise_region: str | None = None  # None: same-region SNR = SI / SD
    rayleigh: bool = False
    name: str | None = None


@dataclass
class CnrSpec:
    region_a: str
    region_b: str
    noise_region: str | None = None  # None: pooled-SD CNR
    rayleigh: bool = False
    name: str | None = None


@dataclass
class ContrastRatioSpec:
    region_a: str
    region_b: str
    name: str | None = None


@dataclass
class DifferenceSnrSpec:
    volume_a: str
    volume_b: str
    region: str
    name: str | None = None


@dataclass
class ColumnSpec:
    name: str
    title: str
    unit: str
    description: str


COLUMNS = [
    ColumnSpec("volume", "Volume", "", "Volume the row was measured on (for difference-image SNR: 'A - B')"),
    ColumnSpec("measurement", "Measurement", "", "Name of the line, region or SNR/CNR measurement"),
    ColumnSpec("kind", "Kind", "", "line, region, snr, cnr, contrast_ratio or difference_snr"),
    ColumnSpec("fwhm_mm", "FWHM", "mm", "Full width at half maximum: distance between the crossings of "
               "B + (P - B)/2 nearest the peak P, B = higher of the two side minima"),
    ColumnSpec("erd_mm", "ERD", "mm", "Edge rise distance: distance between the 10 % and 90 % levels of each "
               "flank (relative to that side's minimum and the peak), averaged over both flanks"),
    ColumnSpec("ers_per_mm", "ERS", "1/mm", "Edge rise slope: 0.8 (P - B_side) / ERD_side, intensity units per "
               "mm, averaged over both flanks"),
    ColumnSpec("mean", "Mean", "", "Mean intensity SI of the region's voxels (signal region for SNR rows; "
               "mean of (A + B)/2 for difference-image SNR)"),
    ColumnSpec("sd", "SD", "", "Standard deviation of the region's voxels, n - 1 denominator"),
    ColumnSpec("voxels", "Voxels", "", "Number of voxels whose centres lie inside the region"),
    ColumnSpec("snr", "SNR", "", "Signal-to-noise ratio: SI / SD (same region), SI / SD_background, "
               "SI / (SD_background / 0.655) (Rayleigh) or mean((A+B)/2) / (SD(A-B)/sqrt 2) (NEMA); see method"),
    ColumnSpec("cnr", "CNR", "", "Contrast-to-noise ratio: (SI_A - SI_B) / sqrt((SD_A^2 + SD_B^2)/2) (pooled) "
               "or |SI_A - SI_B| / SD_background (optionally / 0.655-corrected); see method"),
    ColumnSpec("contrast_ratio", "Contrast ratio", "", "SI_A / SI_B"),
    ColumnSpec("minimum", "Minimum", "", "Lowest voxel value in the region"),
    ColumnSpec("maximum", "Maximum", "", "Highest voxel value in the region"),
    ColumnSpec("erd_left_mm", "ERD left", "mm", "10-90 % rise distance of the flank before the peak"),
    ColumnSpec("erd_right_mm", "ERD right", "mm", "10-90 % rise distance of the flank after the peak"),
    ColumnSpec("ers_left_per_mm", "ERS left", "1/mm", "0.8 (P - B_left) / ERD_left"),
    ColumnSpec("ers_right_per_mm", "ERS right", "1/mm", "0.8 (P - B_right) / ERD_right"),
    ColumnSpec("polarity", "Polarity", "", "peak (bright structure), trough (dark, measured inverted) or edge"),
    ColumnSpec("peak_value", "Peak", "", "Intensity of the peak (trough minimum for troughs)"),
    ColumnSpec("baseline_value", "Baseline", "", "Baseline B used for the FWHM (edge: the flank's low level)"),
    ColumnSpec("half_level", "Half level", "", "B + (P - B)/2"),
    ColumnSpec("length_mm", "Line length", "mm", "Length of the line or curve"),
    ColumnSpec("step_mm", "Sampling step", "mm", "Distance between profile samples"),
    ColumnSpec("samples", "Samples", "", "Number of profile samples"),
    ColumnSpec("region", "Region", "", "Region measured (signal region / region A)"),
    ColumnSpec("region_b", "Region B", "", "Second region of a CNR or contrast ratio"),
    ColumnSpec("noise_region", "Noise region", "", "Background region whose SD is the noise"),
    ColumnSpec("noise_sd", "Noise SD", "", "Noise standard deviation used as the denominator"),
    ColumnSpec("method", "Method", "", "Formula or sampling method used for this row"),
    ColumnSpec("spacing_mm", "Voxel spacing", "mm", "Voxel spacing (i x j x k) of the volume"),
]
COLUMN_NAMES = [column.name for column in COLUMNS]


@dataclass
class MeasurementResult:
    rows: list = field(default_factory=list)  # one dict per (volume, measurement), keys = COLUMN_NAMES
    profiles: dict = field(default_factory=dict)  # (volume name, line name) -> Profile


def _empty_row(volume, measurement, kind):
    row = {name: math.nan for name in COLUMN_NAMES}
    for name in ("polarity", "region", "region_b", "noise_region", "method"):
        row[name] = ""
    row.update(volume=volume.name, measurement=measurement, kind=kind, voxels="", samples="")
    row["spacing_mm"] = " x ".join(f"{s:.4g}" for s in volume.spacing)
    return row


def _snr_name(spec):
    return spec.name or (f"SNR {spec.region}" + (f" / {spec.noise_region}" if spec.noise_region else ""))


def _cnr_name(spec):
    base = f"CNR {spec.region_a} - {spec.region_b}"
    return spec.name or (base + (f" / {spec.noise_region}" if spec.noise_region else ""))


def _ratio_name(spec):
    return spec.name or f"CR {spec.region_a} / {spec.region_b}"


def _difference_name(spec):
    return spec.name or f"NEMA SNR {spec.region}"


def _check_inputs(volumes, lines, regions, snrs, cnrs, ratios, differences, interpolation):
    if not volumes:
        raise ValueError("no volumes to measure")
    if interpolation not in INTERPOLATION_ORDERS:
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATION_ORDERS)}, got '{interpolation}'")
    volume_names = [volume.name for volume in volumes]
    duplicated = sorted({name for name in volume_names if volume_names.count(name) > 1})
    if duplicated:
        raise ValueError(f"volume names must be unique; repeated: {', '.join(duplicated)}")
    for volume in volumes:
        array = np.asarray(volume.array)
        if array.ndim != 3 or array.size == 0:
            raise ValueError(f"volume '{volume.name}' must be a non-empty 3D scalar volume, shape {array.shape}")
    for line in lines:
        if line.polarity not in POLARITIES:
            raise ValueError(f"line '{line.name}': polarity must be one of {POLARITIES}, got '{line.polarity}'")
    region_names = [region.name for region in regions]
    measurement_names = (
        [line.name for line in lines]
        + region_names
        + [_snr_name(s) for s in snrs]
        + [_cnr_name(s) for s in cnrs]
        + [_ratio_name(s) for s in ratios]
        + [_difference_name(s) for s in differences]
    )
    duplicated = sorted({name for name in measurement_names if measurement_names.count(name) > 1})
    if duplicated:
        raise ValueError(f"measurement names must be unique; repeated: {', '.join(duplicated)}")
    known = ", ".join(region_names) or "none"
    referenced = [(_snr_name(s), [s.region, s.noise_region]) for s in snrs]
    referenced += [(_cnr_name(s), [s.region_a, s.region_b, s.noise_region]) for s in cnrs]
    referenced += [(_ratio_name(s), [s.region_a, s.region_b]) for s in ratios]
    referenced += [(_difference_name(s), [s.region]) for s in differences]
    for measurement, names in referenced:
        for name in names:
            if name is not None and name not in region_names:
                raise ValueError(f"{measurement}: unknown region '{name}' (regions defined: {known})")
    by_name = dict(zip(volume_names, volumes))
    for spec in differences:
        for name in (spec.volume_a, spec.volume_b):
            if name not in by_name:
                raise ValueError(f"{_difference_name(spec)}: unknown volume '{name}' (volumes: {', '.join(volume_names)})")
        a, b = by_name[spec.volume_a], by_name[spec.volume_b]
        if np.asarray(a.array).shape != np.asarray(b.array).shape or not np.allclose(a.ijk_to_ras, b.ijk_to_ras):
            raise ValueError(
                f"{_difference_name(spec)}: volumes '{a.name}' and '{b.name}' must share the same voxel grid "
                "(repeated acquisitions with identical geometry)"
            )
    return by_name


def _line_row(volume, line, profile, sharpness, interpolation):
    row = _empty_row(volume, line.name, "line")
    for key, value in vars(sharpness).items():
        row[key] = value
    row.update(
        length_mm=float(profile.distance_mm[-1]),
        step_mm=float(profile.distance_mm[1] - profile.distance_mm[0]),
        samples=len(profile.distance_mm),
        method=f"profile at equal steps, {interpolation} interpolation",
    )
    return row


def _region_row(volume, region, stats):
    row = _empty_row(volume, region.name, "region")
    row.update(
        mean=stats.mean, sd=stats.sd, voxels=stats.voxels, minimum=stats.minimum, maximum=stats.maximum,
        region=region.name, method=f"{type(region).__name__}: voxel centres inside",
    )
    return row


def _snr_row(volume, spec, stats):
    signal = stats[spec.region]
    row = _empty_row(volume, _snr_name(spec), "snr")
    row.update(mean=signal.mean, sd=signal.sd, voxels=signal.voxels, region=spec.region)
    if spec.noise_region is None:
        row.update(snr=snr_formulas.same_region_snr(signal.mean, signal.sd), noise_sd=signal.sd,
                   method="SNR = SI / SD (same region)")
    else:
        background = stats[spec.noise_region].sd
        row.update(
            snr=snr_formulas.background_snr(signal.mean, background, spec.rayleigh),
            noise_sd=snr_formulas.noise_sigma(background, spec.rayleigh),
            noise_region=spec.noise_region,
            method="SNR = SI / (SD_background / 0.655) (Rayleigh)" if spec.rayleigh else "SNR = SI / SD_background",
        )
    return row


def _cnr_row(volume, spec, stats):
    a, b = stats[spec.region_a], stats[spec.region_b]
    row = _empty_row(volume, _cnr_name(spec), "cnr")
    row.update(region=spec.region_a, region_b=spec.region_b)
    if spec.noise_region is None:
        row.update(
            cnr=snr_formulas.pooled_cnr(a.mean, a.sd, b.mean, b.sd),
            noise_sd=float(np.sqrt((a.sd**2 + b.sd**2) / 2)),
            method="CNR = (SI_A - SI_B) / sqrt((SD_A^2 + SD_B^2) / 2)",
        )
    else:
        background = stats[spec.noise_region].sd
        row.update(
            cnr=snr_formulas.background_cnr(a.mean, b.mean, background, spec.rayleigh),
            noise_sd=snr_formulas.noise_sigma(background, spec.rayleigh),
            noise_region=spec.noise_region,
            method="CNR = |SI_A - SI_B| / (SD_background / 0.655) (Rayleigh)" if spec.rayleigh
            else "CNR = |SI_A - SI_B| / SD_background",
        )
    return row


def _ratio_row(volume, spec, stats):
    row = _empty_row(volume, _ratio_name(spec), "contrast_ratio")
    row.update(
        contrast_ratio=snr_formulas.contrast_ratio(stats[spec.region_a].mean, stats[spec.region_b].mean),
        region=spec.region_a, region_b=spec.region_b, method="CR = SI_A / SI_B",
    )
    return row


def _difference_row(spec, volume_a, volume_b, region):
    values_a = region_values(volume_a, region)
    values_b = region_values(volume_b, region)
    statistics_of_values(values_a, region.name, volume_a.name)  # same voxel-count check as other regions
    snr, signal, noise = snr_formulas.difference_image_snr(values_a, values_b)
    row = _empty_row(volume_a, _difference_name(spec), "difference_snr")
    row.update(
        volume=f"{volume_a.name} - {volume_b.name}", snr=snr, mean=signal, noise_sd=noise, voxels=values_a.size,
        region=region.name, method="SNR = mean((A + B) / 2) / (SD(A - B) / sqrt(2)) (NEMA MS 1)",
    )
    return row


def _in_context(measurement, volume_name, function, *args):
    try:
        return function(*args)
    except ValueError as error:
        raise ValueError(f"{measurement} on volume '{volume_name}': {error}") from None


def measure(volumes, lines=(), regions=(), snrs=(), cnrs=(), contrast_ratios=(), step_mm=None,
            difference_snrs=(), interpolation=DEFAULT_INTERPOLATION) -> MeasurementResult:
    """Measure every line and region on every volume; SNR/CNR rows use the regions' statistics.

    step_mm: profile sampling step (default 0.1 x the smallest voxel spacing of each volume).
    """
    volumes, lines, regions = list(volumes), list(lines), list(regions)
    snrs, cnrs, ratios, differences = list(snrs), list(cnrs), list(contrast_ratios), list(difference_snrs)
    by_name = _check_inputs(volumes, lines, regions, snrs, cnrs, ratios, differences, interpolation)
    result = MeasurementResult()
    for volume in volumes:
        step = step_mm if step_mm is not None else DEFAULT_STEP_FRACTION * float(np.min(volume.spacing))
        for line in lines:
            profile = sample_line(volume, line.points_ras, step, line.name, interpolation)
            sharpness = sharpness_from_profile(profile.distance_mm, profile.intensity, line.polarity, line.name)
            result.profiles[(volume.name, line.name)] = profile
            result.rows.append(_line_row(volume, line, profile, sharpness, interpolation))
        stats = {}
        for region in regions:
            stats[region.name] = statistics_of_values(region_values(volume, region), region.name, volume.name)
            result.rows.append(_region_row(volume, region, stats[region.name]))
        for spec in snrs:
            result.rows.append(_in_context(_snr_name(spec), volume.name, _snr_row, volume, spec, stats))
        for spec in cnrs:
            result.rows.append(_in_context(_cnr_name(spec), volume.name, _cnr_row, volume, spec, stats))
        for spec in ratios:
            result.rows.append(_in_context(_ratio_name(spec), volume.name, _ratio_row, volume, spec, stats))
    regions_by_name = {region.name: region for region in regions}
    for spec in differences:
        a, b = by_name[spec.volume_a], by_name[spec.volume_b]
        row = _in_context(_difference_name(spec), f"{a.name} - {b.name}", _difference_row, spec, a, b,
                          regions_by_name[spec.region])
        result.rows.append(row)
    return result


def format_value(value):
    """CSV text of a cell: '' for NaN/None, 10 significant digits for floats."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "" if not np.isfinite(value) else format(float(value), ".10g")
    return str(value)


def write_csv(rows, columns, path):
    """Atomic CSV with the given column order (missing keys -> empty cells)."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([format_value(row.get(column)) for column in columns])


def write_rows_csv(rows, path):
    """Write measure() rows atomically, columns in COLUMNS order."""
    write_csv(rows, COLUMN_NAMES, path)
