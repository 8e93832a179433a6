"""Result rows -> vtkMRMLTableNode, profiles -> profile table + plot series/chart (SegmentStatistics/LineProfile style).

- Columns keep machine-readable names (the core's COLUMNS / STUDY_COLUMNS) and get a title, a unit and a
  description (the formula) in the table schema; the view shows the titles.
- Text columns are vtkStringArray, all others vtkDoubleArray with NaN where a value does not apply.
- Tables are rewritten in place (same node, same vtkTable) inside one StartModify/EndModify, and only from
  complete results: callers compute everything first, so a failure never leaves partial rows.

slicer and vtk are imported inside the functions.
"""

import math
import numbers

import numpy as np

# Node attribute marking plot series made here, so a rerun reuses or removes only its own series.
SERIES_KEY_ATTRIBUTE = "MRQualityMetrics.ProfileSeries"
# Colours of the volumes' curves (Slicer's default plot colours are similar); line styles tell lines apart.
SERIES_COLORS = [
    (0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16),
    (0.58, 0.4, 0.74), (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.5, 0.5, 0.5),
]


def _isMissing(value) -> bool:
    return value is None or (isinstance(value, str) and value == "") or (
        isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(value))


def _isNumber(value) -> bool:
    return isinstance(value, (numbers.Real, np.number)) and not isinstance(value, str)


def columnIsText(rows, name) -> bool:
    """Text when any present value is not a number. A column with no value at all follows its empty markers:
    NaN (the core's "not applicable" number) keeps it numeric, "" (its text/count marker) makes it text."""
    values = [row.get(name) for row in rows]
    present = [value for value in values if not _isMissing(value)]
    if present:
        return any(not _isNumber(value) for value in present)
    return any(isinstance(value, str) for value in values)


def _vtkColumn(rows, name):
    import vtk

    if columnIsText(rows, name):
        array = vtk.vtkStringArray()
        for row in rows:
            value = row.get(name)
            array.InsertNextValue("" if _isMissing(value) else str(value))
    else:
        array = vtk.vtkDoubleArray()
        for row in rows:
            value = row.get(name)
            array.InsertNextValue(math.nan if _isMissing(value) else float(value))
    array.SetName(name)
    return array


def columnNames(columns) -> list:
    return [column.name for column in columns]


def updateTableFromRows(tableNode, rows, columns):
    """Replace the table's content by rows (list of dicts) in the order of columns (ColumnSpec list)."""
    names = columnNames(columns)
    unknown = sorted({key for row in rows for key in row} - set(names))
    if unknown:
        raise ValueError(f"Table '{tableNode.GetName()}': rows have keys with no column description: {unknown}")
    arrays = [_vtkColumn(rows, name) for name in names]  # built before touching the node
    wasModified = tableNode.StartModify()
    try:
        tableNode.RemoveAllColumns()  # columns and their schema properties; the vtkTable object stays
        table = tableNode.GetTable()
        for array in arrays:
            table.AddColumn(array)
        for column in columns:
            tableNode.SetColumnTitle(column.name, column.title)
            tableNode.SetColumnUnitLabel(column.name, column.unit)
            tableNode.SetColumnDescription(column.name, column.description)
        tableNode.SetUseColumnTitleAsColumnHeader(True)
        tableNode.SetUseFirstColumnAsRowHeader(False)
        table.Modified()
        tableNode.Modified()
    finally:
        tableNode.EndModify(wasModified)
    return tableNode


def rowsFromTableNode(tableNode) -> list:
    """Table -> list of dicts (numbers as float, NaN kept; text as str)."""
    table = tableNode.GetTable()
    rows = [{} for _ in range(table.GetNumberOfRows())]
    for columnIndex in range(table.GetNumberOfColumns()):
        column = table.GetColumn(columnIndex)
        name = column.GetName()
        text = column.IsA("vtkStringArray")
        for rowIndex, row in enumerate(rows):
            row[name] = column.GetValue(rowIndex) if text else float(column.GetValue(rowIndex))
    return rows


def profileColumnName(lineName, volumeName=None) -> str:
    """Distance column of a line (volumeName None) or one volume's distance/intensity column along it."""
    return f"{lineName}: distance_mm" if volumeName is None else f"{lineName}: {volumeName}"


def profileColumns(profiles, volumeNames, lineNames):
    """(name, title, unit, description, values) per profile column; one distance column per line when every
    volume was sampled at the same distances, else one per volume. Columns are NaN-padded to equal length."""
    columns = []
    for lineName in lineNames:
        lineProfiles = [(volumeName, profiles[(volumeName, lineName)]) for volumeName in volumeNames
                        if (volumeName, lineName) in profiles]
        if not lineProfiles:
            continue
        first = lineProfiles[0][1].distance_mm
        shared = all(len(p.distance_mm) == len(first) and np.allclose(p.distance_mm, first) for _, p in lineProfiles)
        if shared:
            columns.append((profileColumnName(lineName), f"{lineName} distance", "mm",
                            f"Distance along '{lineName}' from its first point (RAS, mm)", first))
        for volumeName, profile in lineProfiles:
            if not shared:
                columns.append((profileColumnName(lineName, volumeName) + " distance_mm",
                                f"{lineName} distance ({volumeName})", "mm",
                                f"Distance along '{lineName}' from its first point, samples of '{volumeName}'",
                                profile.distance_mm))
            columns.append((profileColumnName(lineName, volumeName), f"{lineName}: {volumeName}", "",
                            f"Intensity of '{volumeName}' along '{lineName}' (trilinear interpolation on float "
                            "values, equal physical steps)", profile.intensity))
    return columns


def updateProfileTable(tableNode, profiles, volumeNames, lineNames):
    """Profile table: per line a distance column (mm) and one intensity column per volume."""
    import vtk

    columns = profileColumns(profiles, volumeNames, lineNames)
    length = max((len(values) for *_, values in columns), default=0)
    arrays = []
    for name, _, _, _, values in columns:
        array = vtk.vtkDoubleArray()
        array.SetName(name)
        array.SetNumberOfValues(length)
        padded = np.full(length, np.nan)
        padded[: len(values)] = values
        for index, value in enumerate(padded):
            array.SetValue(index, float(value))
        arrays.append(array)
    wasModified = tableNode.StartModify()
    try:
        tableNode.RemoveAllColumns()  # columns and their schema properties; the vtkTable object stays
        table = tableNode.GetTable()
        for array in arrays:
            table.AddColumn(array)
        for name, title, unit, description, _ in columns:
            tableNode.SetColumnTitle(name, title)
            tableNode.SetColumnUnitLabel(name, unit)
            tableNode.SetColumnDescription(name, description)
        tableNode.SetUseColumnTitleAsColumnHeader(True)
        table.Modified()
        tableNode.Modified()
    finally:
        tableNode.EndModify(wasModified)
    return tableNode


def _distanceColumnFor(tableNode, lineName, volumeName):
    shared = profileColumnName(lineName)
    if tableNode.GetTable().GetColumnByName(shared) is not None:
        return shared
    return profileColumnName(lineName, volumeName) + " distance_mm"


def updateProfilePlot(plotChartNode, profileTableNode, volumeNames, lineNames, profiles):
    """One scatter-line series per (volume, line) overlaid in the chart; series are reused across reruns and the
    ones this function made that are no longer needed are removed from the scene."""
    scene = plotChartNode.GetScene()
    if scene is None:
        raise ValueError(f"Plot chart '{plotChartNode.GetName()}' is not in a scene")
    existing = {}
    for index in range(plotChartNode.GetNumberOfPlotSeriesNodes()):
        series = plotChartNode.GetNthPlotSeriesNode(index)
        if series is not None and series.GetAttribute(SERIES_KEY_ATTRIBUTE):
            existing[series.GetAttribute(SERIES_KEY_ATTRIBUTE)] = series
    wanted = []
    wasModified = plotChartNode.StartModify()
    try:
        for lineIndex, lineName in enumerate(lineNames):
            for volumeIndex, volumeName in enumerate(volumeNames):
                if (volumeName, lineName) not in profiles:
                    continue
                key = f"{volumeName}\n{lineName}"
                series = existing.get(key)
                if series is None:
                    series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{volumeName} - {lineName}")
                    series.SetAttribute(SERIES_KEY_ATTRIBUTE, key)
                series.SetAndObserveTableNodeID(profileTableNode.GetID())
                series.SetXColumnName(_distanceColumnFor(profileTableNode, lineName, volumeName))
                series.SetYColumnName(profileColumnName(lineName, volumeName))
                series.SetPlotType(series.PlotTypeScatter)
                series.SetMarkerStyle(series.MarkerStyleNone)
                series.SetLineStyle([series.LineStyleSolid, series.LineStyleDash, series.LineStyleDot,
                                     series.LineStyleDashDot][lineIndex % 4])
                series.SetColor(*SERIES_COLORS[volumeIndex % len(SERIES_COLORS)])
                wanted.append(series)
        for series in list(existing.values()):
            if series not in wanted:
                plotChartNode.RemovePlotSeriesNodeID(series.GetID())
                scene.RemoveNode(series)
        for series in wanted:
            if not plotChartNode.HasPlotSeriesNodeID(series.GetID()):
                plotChartNode.AddAndObservePlotSeriesNodeID(series.GetID())
        plotChartNode.SetTitle("Line profiles")
        plotChartNode.SetXAxisTitle("Distance along the line (mm)")
        plotChartNode.SetYAxisTitle("Intensity")
        plotChartNode.SetLegendVisibility(True)
    finally:
        plotChartNode.EndModify(wasModified)
    return wanted


def writeTableCsv(tableNode, path):
    """CSV of any table node through the core's atomic writer (column names as header, NaN as empty cells)."""
    from .measurement import write_csv

    table = tableNode.GetTable()
    names = [table.GetColumn(index).GetName() for index in range(table.GetNumberOfColumns())]
    write_csv(rowsFromTableNode(tableNode), names, path)
    return path


# Titles, units and formulas of the study statistics columns (study_stats.STUDY_COLUMNS are plain names).
STUDY_COLUMN_TEXT = {
    "metric": ("Metric", "", "'<measurement> <column>', e.g. 'septum fwhm_mm'"),
    "n": ("Cases", "", "Number of paired cases"),
    "reconstruction_a": ("A", "", "First reconstruction"),
    "reconstruction_b": ("B", "", "Second reconstruction"),
    "mean_a": ("Mean A", "", "Mean of A over cases"),
    "sd_a": ("SD A", "", "Standard deviation of A over cases (n - 1)"),
    "mean_b": ("Mean B", "", "Mean of B over cases"),
    "sd_b": ("SD B", "", "Standard deviation of B over cases (n - 1)"),
    "summary_a": ("A mean ± SD", "", "Mean ± SD of A"),
    "summary_b": ("B mean ± SD", "", "Mean ± SD of B"),
    "mean_difference": ("Mean difference", "", "mean(A - B) over cases"),
    "ci95_low": ("95 % CI low", "", "mean_d - t(0.975, n - 1) SD_d / sqrt(n)"),
    "ci95_high": ("95 % CI high", "", "mean_d + t(0.975, n - 1) SD_d / sqrt(n)"),
    "t_statistic": ("t", "", "Paired t statistic of A - B"),
    "p_paired_t": ("p (paired t)", "", "Two-sided p-value of the paired t-test"),
    "wilcoxon_statistic": ("W", "", "Wilcoxon signed-rank statistic of A - B"),
    "p_wilcoxon": ("p (Wilcoxon)", "", "Two-sided p-value of the Wilcoxon signed-rank test"),
}


def studyColumnSpecs(studyColumns):
    """ColumnSpecs for the study statistics table (a column without a description keeps its name as title)."""
    from .measurement import ColumnSpec

    return [ColumnSpec(name, *STUDY_COLUMN_TEXT.get(name, (name, "", ""))) for name in studyColumns]
