"""Paired study statistics (seed 000, Table 5 layout) on hand-checkable data."""

import csv

import pytest

from MRQualityMetricsLib.study_stats import (
    STUDY_COLUMNS,
    paired_study_statistics,
    read_cases_csv,
    write_study_csv,
)

# Differences SR - DLR = 1, 2, 3, 4, 5: mean 3, SD sqrt(2.5), SE sqrt(0.5), t = 3 / sqrt(0.5) = 4.2426 (df 4),
# two-sided p = 0.013236; t(0.975, 4) = 2.776445 -> CI 3 +- 1.963243; Wilcoxon: all 5 ranks positive ->
# exact two-sided p = 2 / 2^5 = 0.0625.
DLR = [10.0, 12.0, 9.0, 11.0, 13.0]
SR = [11.0, 14.0, 12.0, 15.0, 18.0]


def write_long(path, rows, header=("case", "reconstruction", "metric", "value")):
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def long_rows(metric="FWHM"):
    rows = []
    for index, (sr, dlr) in enumerate(zip(SR, DLR)):
        rows += [(f"case{index}", "SR-DLR", metric, sr), (f"case{index}", "DLR", metric, dlr)]
    return rows


def test_long_format_gives_table_5_statistics(tmp_path):
    records = read_cases_csv(write_long(tmp_path / "cases.csv", long_rows()))
    (row,) = paired_study_statistics(records)
    assert (row["metric"], row["n"], row["reconstruction_a"], row["reconstruction_b"]) == ("FWHM", 5, "SR-DLR", "DLR")
    assert row["mean_a"] == pytest.approx(14.0) and row["mean_b"] == pytest.approx(11.0)
    assert row["sd_a"] == pytest.approx(2.738613, rel=1e-6) and row["sd_b"] == pytest.approx(1.581139, rel=1e-6)
    assert row["summary_a"] == "14 ± 2.739"
    assert row["mean_difference"] == pytest.approx(3.0)
    assert row["ci95_low"] == pytest.approx(3 - 1.963243, rel=1e-6)
    assert row["ci95_high"] == pytest.approx(3 + 1.963243, rel=1e-6)
    assert row["t_statistic"] == pytest.approx(4.242641, rel=1e-6)
    assert row["p_paired_t"] == pytest.approx(0.013236, rel=1e-3)
    assert row["p_wilcoxon"] == pytest.approx(0.0625)
    # Explicit order reverses the difference.
    (reverse,) = paired_study_statistics(records, ["DLR", "SR-DLR"])
    assert reverse["mean_difference"] == pytest.approx(-3.0)
    assert reverse["ci95_high"] == pytest.approx(-(3 - 1.963243), rel=1e-6)


def test_measure_results_with_case_and_reconstruction_columns(tmp_path):
    header = ["case", "reconstruction", "volume", "measurement", "kind", "fwhm_mm", "erd_mm", "ers_per_mm",
              "mean", "sd", "voxels", "snr", "cnr", "contrast_ratio"]
    rows = []
    for index, (sr, dlr) in enumerate(zip(SR, DLR)):
        for reconstruction, value in (("SR", sr), ("DLR", dlr)):
            rows.append([f"c{index}", reconstruction, f"c{index}_{reconstruction}", "septum", "line", value,
                         value / 2, 100 * value, "", "", "", "", "", ""])
            rows.append([f"c{index}", reconstruction, f"c{index}_{reconstruction}", "SNR csf", "snr", "", "", "",
                         500, 40, 60, value, "", ""])
    path = write_long(tmp_path / "results.csv", rows, header)
    summary = {row["metric"]: row for row in paired_study_statistics(read_cases_csv(path))}
    assert list(summary) == ["septum fwhm_mm", "septum erd_mm", "septum ers_per_mm", "SNR csf snr"]
    assert summary["septum erd_mm"]["mean_difference"] == pytest.approx(1.5)
    assert summary["SNR csf snr"]["p_paired_t"] == pytest.approx(0.013236, rel=1e-3)


def test_results_without_reconstruction_column_use_the_volume_name(tmp_path):
    rows = [[f"c{i}", volume, "septum", "line", value] for i in range(5)
            for volume, value in (("SR", SR[i]), ("DLR", DLR[i]))]
    path = write_long(tmp_path / "r.csv", rows, ["Case", "Volume", "Measurement", "kind", "fwhm_mm"])
    (row,) = paired_study_statistics(read_cases_csv(path))
    assert row["reconstruction_a"] == "SR" and row["mean_difference"] == pytest.approx(3.0)


def test_identical_reconstructions_give_no_difference(tmp_path):
    rows = [(f"c{i}", name, "m", value) for i, value in enumerate(DLR) for name in ("A", "B")]
    (row,) = paired_study_statistics(read_cases_csv(write_long(tmp_path / "c.csv", rows)))
    assert row["mean_difference"] == 0.0 and row["p_wilcoxon"] == 1.0


def test_study_input_errors(tmp_path):
    with pytest.raises(ValueError, match="missing column.*reconstruction, value"):
        read_cases_csv(write_long(tmp_path / "a.csv", [("c1", "m")], header=("case", "metric")))
    three = long_rows() + [("case0", "third", "FWHM", 1.0)]
    with pytest.raises(ValueError, match="exactly two reconstructions; found 3: SR-DLR, DLR, third"):
        paired_study_statistics(read_cases_csv(write_long(tmp_path / "b.csv", three)))
    unpaired = long_rows()[:-1]
    with pytest.raises(ValueError, match="metric 'FWHM': case.*case4.*unpaired"):
        paired_study_statistics(read_cases_csv(write_long(tmp_path / "c.csv", unpaired)))
    duplicate = long_rows() + [("case0", "DLR", "FWHM", 3.0)]
    with pytest.raises(ValueError, match="twice"):
        paired_study_statistics(read_cases_csv(write_long(tmp_path / "d.csv", duplicate)))
    with pytest.raises(ValueError, match=r"line 3: value 'abc' is not a number"):
        read_cases_csv(write_long(tmp_path / "e.csv", [("c", "A", "m", 1), ("c", "B", "m", "abc")]))
    with pytest.raises(ValueError, match="at least 2 paired cases"):
        paired_study_statistics(read_cases_csv(write_long(tmp_path / "f.csv", long_rows()[:2])))
    with pytest.raises(ValueError, match="does not exist"):
        read_cases_csv(tmp_path / "none.csv")


def test_summary_csv_columns(tmp_path):
    rows = paired_study_statistics(read_cases_csv(write_long(tmp_path / "cases.csv", long_rows())))
    write_study_csv(rows, tmp_path / "summary.csv")
    with open(tmp_path / "summary.csv", newline="", encoding="utf-8") as stream:
        table = list(csv.reader(stream))
    assert table[0] == STUDY_COLUMNS
    assert dict(zip(table[0], table[1]))["p_wilcoxon"] == "0.0625"
