"""Result rows -> vtkMRMLTableNode / plot nodes on the real Slicer core: column metadata, NaN for what does not
apply, in-place updates, profile tables of different sampling, plot series bookkeeping, study statistics."""

import math

import numpy as np
import pytest

from MRQualityMetricsLib import mrml_tables, study_stats
from MRQualityMetricsLib.line_profile import Profile
from MRQualityMetricsLib.measurement import COLUMNS, ColumnSpec
from MRQualityMetricsLib.mrml_logic import QualityMetricsMrmlLogic

SMALL_COLUMNS = [
    ColumnSpec("volume", "Volume", "", "Volume measured"),
    ColumnSpec("fwhm_mm", "FWHM", "mm", "Full width at half maximum"),
    ColumnSpec("voxels", "Voxels", "", "Voxel count"),
    ColumnSpec("method", "Method", "", "Formula"),
]


def columnValues(tableNode, name):
    column = tableNode.GetTable().GetColumnByName(name)
    return [column.GetValue(index) for index in range(column.GetNumberOfValues())]


def test_rows_become_typed_columns_with_titles_units_and_descriptions(slicerApp):
    tableNode = slicerApp.scene.AddNewNodeByClass("vtkMRMLTableNode", "metrics")
    rows = [
        {"volume": "T1", "fwhm_mm": 1.25, "voxels": "", "method": "profile"},
        {"volume": "T2", "fwhm_mm": math.nan, "voxels": 13, "method": ""},
    ]
    mrml_tables.updateTableFromRows(tableNode, rows, SMALL_COLUMNS)

    table = tableNode.GetTable()
    assert [table.GetColumn(i).GetName() for i in range(table.GetNumberOfColumns())] == [
        "volume", "fwhm_mm", "voxels", "method"]
    assert table.GetColumnByName("volume").IsA("vtkStringArray")
    assert table.GetColumnByName("fwhm_mm").IsA("vtkDoubleArray") and table.GetColumnByName("voxels").IsA("vtkDoubleArray")
    assert columnValues(tableNode, "volume") == ["T1", "T2"]
    fwhm, voxels = columnValues(tableNode, "fwhm_mm"), columnValues(tableNode, "voxels")
    assert fwhm[0] == 1.25 and math.isnan(fwhm[1])
    assert math.isnan(voxels[0]) and voxels[1] == 13
    assert columnValues(tableNode, "method") == ["profile", ""]
    assert tableNode.GetColumnTitle("fwhm_mm") == "FWHM"
    assert tableNode.GetColumnUnitLabel("fwhm_mm") == "mm"
    assert tableNode.GetColumnDescription("fwhm_mm") == "Full width at half maximum"
    assert tableNode.GetUseColumnTitleAsColumnHeader()
    assert mrml_tables.rowsFromTableNode(tableNode)[1]["voxels"] == 13.0


def test_core_columns_all_get_metadata(slicerApp):
    tableNode = slicerApp.scene.AddNewNodeByClass("vtkMRMLTableNode", "metrics")
    mrml_tables.updateTableFromRows(tableNode, [{"volume": "T1", "measurement": "wm", "kind": "region"}], COLUMNS)
    assert tableNode.GetNumberOfColumns() == len(COLUMNS)
    for column in COLUMNS:
        assert tableNode.GetColumnTitle(column.name) == column.title
        assert tableNode.GetColumnUnitLabel(column.name) == column.unit
        assert tableNode.GetColumnDescription(column.name) == column.description
    assert math.isnan(columnValues(tableNode, "snr")[0])


def test_update_is_in_place_and_a_bad_row_changes_nothing(slicerApp):
    tableNode = slicerApp.scene.AddNewNodeByClass("vtkMRMLTableNode", "metrics")
    mrml_tables.updateTableFromRows(tableNode, [{"volume": "A", "fwhm_mm": 1.0}], SMALL_COLUMNS)
    vtkTable = tableNode.GetTable()
    mrml_tables.updateTableFromRows(tableNode, [{"volume": "B", "fwhm_mm": 2.0}, {"volume": "C"}], SMALL_COLUMNS)
    assert tableNode.GetTable() is vtkTable and tableNode.GetNumberOfRows() == 2
    assert columnValues(tableNode, "volume") == ["B", "C"]

    with pytest.raises(ValueError, match="no column description: \\['surprise'\\]"):
        mrml_tables.updateTableFromRows(tableNode, [{"volume": "D", "surprise": 1}], SMALL_COLUMNS)
    assert columnValues(tableNode, "volume") == ["B", "C"]
    assert tableNode.GetColumnTitle("fwhm_mm") == "FWHM"


def test_table_metadata_survives_saving_and_loading(slicerApp, tmp_path):
    import slicer

    tableNode = slicerApp.scene.AddNewNodeByClass("vtkMRMLTableNode", "metrics")
    mrml_tables.updateTableFromRows(tableNode, [{"volume": "T1", "fwhm_mm": 1.5, "voxels": 3, "method": "x"}],
                                    SMALL_COLUMNS)
    storage = slicer.vtkMRMLTableStorageNode()
    storage.SetFileName(str(tmp_path / "metrics.tsv"))
    assert storage.WriteData(tableNode)
    loaded = slicerApp.scene.AddNewNodeByClass("vtkMRMLTableNode", "loaded")
    assert storage.ReadData(loaded)
    assert loaded.GetColumnTitle("fwhm_mm") == "FWHM" and loaded.GetColumnUnitLabel("fwhm_mm") == "mm"
    assert columnValues(loaded, "fwhm_mm") == [1.5]


def profile(start, stop, count, peak):
    distance = np.linspace(start, stop, count)
    return Profile(distance, peak * np.exp(-0.5 * (distance - stop / 2) ** 2), np.zeros((count, 3)))


def test_profile_table_shares_distances_when_sampling_matches(slicerApp):
    profiles = {("A", "septum"): profile(0, 4, 41, 10.0), ("B", "septum"): profile(0, 4, 41, 20.0),
                ("A", "edge"): profile(0, 2, 21, 5.0), ("B", "edge"): profile(0, 2, 21, 6.0)}
    tableNode = slicerApp.scene.AddNewNodeByClass("vtkMRMLTableNode", "profiles")
    mrml_tables.updateProfileTable(tableNode, profiles, ["A", "B"], ["septum", "edge"])

    names = [tableNode.GetTable().GetColumn(i).GetName() for i in range(tableNode.GetNumberOfColumns())]
    assert names == ["septum: distance_mm", "septum: A", "septum: B", "edge: distance_mm", "edge: A", "edge: B"]
    assert tableNode.GetNumberOfRows() == 41
    np.testing.assert_allclose(columnValues(tableNode, "septum: B"), profiles[("B", "septum")].intensity)
    edge = columnValues(tableNode, "edge: distance_mm")
    np.testing.assert_allclose(edge[:21], np.linspace(0, 2, 21))
    assert all(math.isnan(value) for value in edge[21:])  # shorter line padded with NaN
    assert tableNode.GetColumnUnitLabel("edge: distance_mm") == "mm"


def test_profile_table_keeps_per_volume_distances_when_sampling_differs(slicerApp):
    profiles = {("A", "septum"): profile(0, 4, 41, 10.0), ("B", "septum"): profile(0, 4, 81, 20.0)}
    tableNode = slicerApp.scene.AddNewNodeByClass("vtkMRMLTableNode", "profiles")
    mrml_tables.updateProfileTable(tableNode, profiles, ["A", "B"], ["septum"])
    chart = slicerApp.scene.AddNewNodeByClass("vtkMRMLPlotChartNode", "chart")
    series = mrml_tables.updateProfilePlot(chart, tableNode, ["A", "B"], ["septum"], profiles)

    assert [s.GetXColumnName() for s in series] == ["septum: A distance_mm", "septum: B distance_mm"]
    np.testing.assert_allclose(columnValues(tableNode, "septum: B distance_mm"), np.linspace(0, 4, 81))
    assert math.isnan(columnValues(tableNode, "septum: A distance_mm")[41])


def test_plot_series_are_reused_and_stale_ones_removed(slicerApp):
    scene = slicerApp.scene
    profiles = {(volume, "septum"): profile(0, 4, 41, peak) for volume, peak in (("A", 1.0), ("B", 2.0))}
    tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", "profiles")
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", "chart")
    userSeries = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", "user's own")
    chart.AddAndObservePlotSeriesNodeID(userSeries.GetID())

    mrml_tables.updateProfileTable(tableNode, profiles, ["A", "B"], ["septum"])
    first = mrml_tables.updateProfilePlot(chart, tableNode, ["A", "B"], ["septum"], profiles)
    assert chart.GetNumberOfPlotSeriesNodes() == 3
    assert all(s.GetPlotType() == s.PlotTypeScatter and s.GetMarkerStyle() == s.MarkerStyleNone for s in first)

    del profiles[("B", "septum")]
    mrml_tables.updateProfileTable(tableNode, profiles, ["A"], ["septum"])
    second = mrml_tables.updateProfilePlot(chart, tableNode, ["A"], ["septum"], profiles)

    assert second == [first[0]]
    assert scene.GetNodeByID(first[1].GetID()) is None  # removed from the scene, not left dangling
    assert chart.HasPlotSeriesNodeID(userSeries.GetID()) and chart.GetNumberOfPlotSeriesNodes() == 2


def caseTable(slicerApp, case, fwhmOriginal, fwhmEnhanced):
    tableNode = slicerApp.scene.AddNewNodeByClass("vtkMRMLTableNode", f"case {case}")
    rows = [
        {"volume": f"{case} original", "measurement": "septum", "kind": "line", "fwhm_mm": fwhmOriginal},
        {"volume": f"{case} enhanced", "measurement": "septum", "kind": "line", "fwhm_mm": fwhmEnhanced},
    ]
    return mrml_tables.updateTableFromRows(tableNode, rows, COLUMNS)


def test_study_statistics_from_case_tables_match_the_core(slicerApp, tmp_path):
    values = [(1.9, 1.5), (2.1, 1.6), (2.4, 1.8), (2.0, 1.7)]
    tables = {f"case{index}": caseTable(slicerApp, f"case{index}", *pair) for index, pair in enumerate(values)}
    logic = QualityMetricsMrmlLogic()

    statisticsNode = logic.computeStudyStatistics(tables, reconstructions=["original", "enhanced"])

    expected = study_stats.paired_study_statistics(
        [(f"case{i}", label, "septum fwhm_mm", pair[j]) for i, pair in enumerate(values)
         for j, label in enumerate(["original", "enhanced"])], ["original", "enhanced"])
    (row,) = mrml_tables.rowsFromTableNode(statisticsNode)
    assert row["metric"] == "septum fwhm_mm" and row["n"] == 4
    assert row["mean_difference"] == pytest.approx(np.mean([a - b for a, b in values]))
    for key in ("mean_a", "sd_b", "ci95_low", "ci95_high", "p_paired_t", "p_wilcoxon"):
        assert row[key] == pytest.approx(expected[0][key])
    assert statisticsNode.GetColumnTitle("p_paired_t") == "p (paired t)"

    # The CSV route gives the same statistics, and the export is the core's study CSV.
    exported = tmp_path / "study.csv"
    logic.exportTableToCsv(statisticsNode, exported)
    reference = tmp_path / "reference.csv"
    study_stats.write_study_csv(expected, reference)
    assert exported.read_text() == reference.read_text()
    cases = tmp_path / "cases.csv"
    cases.write_text("case,reconstruction,metric,value\n" + "".join(
        f"c{i},{label},septum fwhm_mm,{pair[j]}\n" for i, pair in enumerate(values)
        for j, label in enumerate(["original", "enhanced"])))
    fromCsv = mrml_tables.rowsFromTableNode(logic.computeStudyStatistics(cases))
    assert fromCsv[0]["p_paired_t"] == pytest.approx(row["p_paired_t"])
    # The same cases loaded as a table node (as Slicer loads a CSV) give the same statistics.
    import slicer

    casesTable = slicerApp.scene.AddNewNodeByClass("vtkMRMLTableNode", "cases")
    storage = slicer.vtkMRMLTableStorageNode()
    storage.SetFileName(str(cases))
    assert storage.ReadData(casesTable)
    fromTable = mrml_tables.rowsFromTableNode(logic.computeStudyStatistics(casesTable))
    assert fromTable[0]["p_wilcoxon"] == pytest.approx(row["p_wilcoxon"])

    with pytest.raises(ValueError, match="expected one per reconstruction"):
        logic.computeStudyStatistics(tables, reconstructions=["a", "b", "c"])
