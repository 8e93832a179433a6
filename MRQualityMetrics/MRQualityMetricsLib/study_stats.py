"""Paired statistics of per-case metrics for two reconstructions (layout of seed 000, Table 5).

Input (CASES.csv), either format, header names case-insensitive, extra columns ignored:
1. Long format: columns case, reconstruction, metric, value; one row per (case, reconstruction, metric).
2. measure() results with added columns: case, measurement, and reconstruction (or, without it, volume is
   used as the reconstruction label), plus the metric columns written by `mrqualitymetrics measure`. Each
   row yields the metrics "<measurement> <column>" for the columns of its kind (line: fwhm_mm, erd_mm,
   ers_per_mm; region: mean, sd; snr/difference_snr: snr; cnr: cnr; contrast_ratio: contrast_ratio; without
   a kind column every non-empty metric column).
Exactly two reconstructions; every case must have each metric for both (else ValueError naming the cases).

Per metric (A = first reconstruction, B = second; differences are A - B):
n, mean and SD (n - 1) of A and of B, mean paired difference with its 95 % CI
(mean_d +- t(0.975, n - 1) SD_d / sqrt(n)), paired t-test p (two-sided), Wilcoxon signed-rank p (two-sided,
scipy's default method: exact for small samples without ties or zero differences).
"""

import csv
import math
import os
import warnings

import numpy as np

from .measurement import write_csv

LONG_COLUMNS = ("case", "reconstruction", "metric", "value")
RESULT_METRICS_BY_KIND = {
    "line": ("fwhm_mm", "erd_mm", "ers_per_mm"),
    "region": ("mean", "sd"),
    "snr": ("snr",),
    "difference_snr": ("snr",),
    "cnr": ("cnr",),
    "contrast_ratio": ("contrast_ratio",),
}
RESULT_METRIC_COLUMNS = ("fwhm_mm", "erd_mm", "ers_per_mm", "mean", "sd", "snr", "cnr", "contrast_ratio")
STUDY_COLUMNS = [
    "metric", "n", "reconstruction_a", "reconstruction_b", "mean_a", "sd_a", "mean_b", "sd_b", "summary_a",
    "summary_b", "mean_difference", "ci95_low", "ci95_high", "t_statistic", "p_paired_t", "wilcoxon_statistic",
    "p_wilcoxon",
]


def _number(text, path, line_number, column):
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{path}, line {line_number}: {column} '{text}' is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}, line {line_number}: {column} '{text}' is not a finite number")
    return value


def _records_from_long(rows, path):
    records = []
    for line_number, row in rows:
        case, reconstruction, metric = (row[c].strip() for c in LONG_COLUMNS[:3])
        if not (case and reconstruction and metric):
            raise ValueError(f"{path}, line {line_number}: case, reconstruction and metric must not be empty")
        records.append((case, reconstruction, metric, _number(row["value"].strip(), path, line_number, "value")))
    return records


def _records_from_results(rows, path, label_column):
    records = []
    for line_number, row in rows:
        case, reconstruction, measurement = row["case"].strip(), row[label_column].strip(), row["measurement"].strip()
        if not (case and reconstruction and measurement):
            raise ValueError(f"{path}, line {line_number}: case, {label_column} and measurement must not be empty")
        kind = row.get("kind", "").strip()
        columns = RESULT_METRICS_BY_KIND.get(kind, RESULT_METRIC_COLUMNS)
        for column in columns:
            text = (row.get(column) or "").strip()
            if text:
                value = _number(text, path, line_number, column)
                records.append((case, reconstruction, f"{measurement} {column}", value))
    return records


def read_cases_csv(path):
    """[(case, reconstruction, metric, value)] from a CASES.csv in either supported format."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"cases file '{path}' does not exist")
    with open(path, encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if not header:
            raise ValueError(f"cases file '{path}' is empty")
        names = [name.strip().lower() for name in header]
        rows = []
        for line_number, values in enumerate(reader, start=2):
            if any(value.strip() for value in values):
                rows.append((line_number, dict(zip(names, values + [""] * (len(names) - len(values))))))
    if all(column in names for column in LONG_COLUMNS):
        records = _records_from_long(rows, path)
    elif "case" in names and "measurement" in names and ("reconstruction" in names or "volume" in names):
        records = _records_from_results(rows, path, "reconstruction" if "reconstruction" in names else "volume")
    else:
        missing = [column for column in LONG_COLUMNS if column not in names]
        raise ValueError(
            f"cases file '{path}' is missing column(s) {', '.join(missing)} (expected columns "
            f"{', '.join(LONG_COLUMNS)}, or measure results with case and reconstruction columns)"
        )
    if not records:
        raise ValueError(f"cases file '{path}' holds no values")
    return records


def _summary(mean, sd):
    return f"{mean:.4g} ± {sd:.4g}"


def _paired_tests(a, b):
    from scipy import stats

    differences = a - b
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero-variance differences give NaN, reported as such
        t_result = stats.ttest_rel(a, b)
    if np.all(differences == 0):
        return float(t_result.statistic), float(t_result.pvalue), math.nan, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy notes when it switches to the normal approximation
        w_result = stats.wilcoxon(differences)
    return float(t_result.statistic), float(t_result.pvalue), float(w_result.statistic), float(w_result.pvalue)


def paired_study_statistics(records, reconstructions=None):
    """Rows (dicts with STUDY_COLUMNS) of paired statistics per metric; see the module docstring."""
    from scipy import stats

    records = list(records)
    found = list(dict.fromkeys(reconstruction for _, reconstruction, _, _ in records))
    if reconstructions is None:
        reconstructions = found
    reconstructions = list(reconstructions)
    if len(reconstructions) != 2 or sorted(set(found)) != sorted(set(reconstructions)):
        raise ValueError(
            f"paired statistics need exactly two reconstructions; found {len(found)}: {', '.join(found) or 'none'}"
        )
    table = {}
    for case, reconstruction, metric, value in records:
        key = (metric, case, reconstruction)
        if key in table:
            raise ValueError(f"case '{case}' has metric '{metric}' twice for reconstruction '{reconstruction}'")
        table[key] = value
    metrics = list(dict.fromkeys(metric for _, _, metric, _ in records))
    name_a, name_b = reconstructions
    rows = []
    for metric in metrics:
        cases = list(dict.fromkeys(case for (m, case, _) in table if m == metric))
        unpaired = [c for c in cases if (metric, c, name_a) not in table or (metric, c, name_b) not in table]
        if unpaired:
            raise ValueError(
                f"metric '{metric}': case(s) {', '.join(unpaired)} lack a value for one of the reconstructions "
                f"'{name_a}' and '{name_b}' (unpaired)"
            )
        if len(cases) < 2:
            raise ValueError(f"metric '{metric}': at least 2 paired cases are needed, found {len(cases)}")
        a = np.array([table[(metric, c, name_a)] for c in cases])
        b = np.array([table[(metric, c, name_b)] for c in cases])
        differences = a - b
        n = len(cases)
        half_width = stats.t.ppf(0.975, n - 1) * differences.std(ddof=1) / math.sqrt(n)
        t_statistic, p_t, w_statistic, p_w = _paired_tests(a, b)
        mean_a, sd_a, mean_b, sd_b = a.mean(), a.std(ddof=1), b.mean(), b.std(ddof=1)
        rows.append(dict(
            metric=metric, n=n, reconstruction_a=name_a, reconstruction_b=name_b,
            mean_a=float(mean_a), sd_a=float(sd_a), mean_b=float(mean_b), sd_b=float(sd_b),
            summary_a=_summary(mean_a, sd_a), summary_b=_summary(mean_b, sd_b),
            mean_difference=float(differences.mean()),
            ci95_low=float(differences.mean() - half_width), ci95_high=float(differences.mean() + half_width),
            t_statistic=t_statistic, p_paired_t=p_t, wilcoxon_statistic=w_statistic, p_wilcoxon=p_w,
        ))
    return rows


def write_study_csv(rows, path):
    """Atomic CSV of paired_study_statistics rows, columns in STUDY_COLUMNS order."""
    write_csv(rows, STUDY_COLUMNS, path)
