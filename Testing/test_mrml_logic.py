"""QualityMetricsMrmlLogic end to end on the real Slicer core: synthetic phantoms with analytic answers, oblique
geometry under parent transforms, two resolutions, tables updated in place, no partial output on failure."""

import math

import numpy as np
import pytest
from geometry_helpers import homogeneous, rotation

from MRQualityMetricsLib import measurement
from MRQualityMetricsLib.mrml_logic import QualityMetricsMrmlLogic
from MRQualityMetricsLib.mrml_tables import rowsFromTableNode
from MRQualityMetricsLib.volume import Volume, make_ijk_to_ras

SIGMA_MM = 2.0
FWHM_MM = 2 * math.sqrt(2 * math.log(2)) * SIGMA_MM  # 4.7096 mm
NORMAL = np.array([1.0, 0.2, 0.1]) / np.linalg.norm([1.0, 0.2, 0.1])


def sheetPhantom(worldIjkToRas, shapeKji, centerRas):
    """A bright Gaussian sheet (SD SIGMA_MM across it, normal NORMAL) through centerRas on a dark background,
    evaluated at the voxel centres' world positions."""
    k, j, i = np.meshgrid(*[np.arange(n) for n in shapeKji], indexing="ij")
    ijk = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(float)
    ras = (ijk @ worldIjkToRas.T)[..., :3]
    distance = (ras - centerRas) @ NORMAL
    return (100 + 500 * np.exp(-0.5 * (distance / SIGMA_MM) ** 2)).astype(np.float32)


@pytest.fixture
def phantomScene(slicerApp):
    """Two reconstructions of one sheet: an oblique 0.6 x 0.5 x 1.2 mm volume under a parent transform, and a
    0.3 x 0.25 x 0.6 mm volume with different axes; a line across the sheet under its own transform."""
    center = np.array([3.0, -2.0, 5.0])
    parent = homogeneous(rotation([0, 1, 0], 30), [5, -3, 2])
    coarseLocal = make_ijk_to_ras([0.6, 0.5, 1.2], rotation([1, 2, 3], 20), [0, 0, 0])
    coarseShape = (16, 40, 40)
    # Put the volume centre on the sheet centre in world coordinates.
    middle = (np.array(coarseShape[::-1]) - 1) / 2
    coarseLocal[:3, 3] = np.linalg.solve(parent[:3, :3], center - parent[:3, 3]) - coarseLocal[:3, :3] @ middle
    coarseWorld = parent @ coarseLocal
    coarseNode = slicerApp.addVolumeFromArrayAndGeometry(
        sheetPhantom(coarseWorld, coarseShape, center), coarseLocal, "T1 coarse")
    coarseNode.SetAndObserveTransformNodeID(slicerApp.addLinearTransformNode(parent, "tilt").GetID())

    fineShape = (32, 80, 80)
    fineWorld = make_ijk_to_ras([0.3, 0.25, 0.6], rotation([0, 0, 1], -10))
    fineWorld[:3, 3] = center - fineWorld[:3, :3] @ ((np.array(fineShape[::-1]) - 1) / 2)
    fineNode = slicerApp.addVolumeFromArrayAndGeometry(sheetPhantom(fineWorld, fineShape, center), fineWorld,
                                                       "T1 fine")

    lineTransform = homogeneous(rotation([0, 0, 1], 45), [1, 1, 1])
    lineWorld = np.array([center - 7 * NORMAL, center + 7 * NORMAL])
    lineLocal = (lineWorld - lineTransform[:3, 3]) @ np.linalg.inv(lineTransform[:3, :3]).T
    lineNode = slicerApp.addLineNode(lineLocal[0], lineLocal[1], "septum")
    lineNode.SetAndObserveTransformNodeID(slicerApp.addLinearTransformNode(lineTransform, "line move").GetID())
    return {
        "app": slicerApp, "coarse": coarseNode, "fine": fineNode, "line": lineNode, "lineWorld": lineWorld,
        "coarseVolume": Volume(sheetPhantom(coarseWorld, coarseShape, center), coarseWorld, "T1 coarse"),
        "center": center,
    }


def rowsByVolume(tableNode, kind):
    return {row["volume"]: row for row in rowsFromTableNode(tableNode) if row["kind"] == kind}


def test_fwhm_of_an_oblique_transformed_volume_matches_the_analytic_value(phantomScene):
    logic = QualityMetricsMrmlLogic()
    tableNode = logic.measure([phantomScene["coarse"], phantomScene["fine"]], lineNodes=[phantomScene["line"]])

    rows = rowsByVolume(tableNode, "line")
    assert set(rows) == {"T1 coarse", "T1 fine"}
    # Trilinear interpolation between 1.2 mm slices broadens the peak by ~2 %; the fine volume is within 0.5 %.
    for name, tolerance in (("T1 coarse", 0.03), ("T1 fine", 0.005)):
        assert rows[name]["measurement"] == "septum"
        assert rows[name]["fwhm_mm"] == pytest.approx(FWHM_MM, rel=tolerance)
        assert rows[name]["length_mm"] == pytest.approx(14.0, abs=1e-6)
    # Same numbers as the core on the equivalent world-space Volume with the same sampling step.
    step = 0.1 * 0.25
    core = measurement.measure([phantomScene["coarseVolume"]],
                               lines=[measurement.LineSpec("septum", phantomScene["lineWorld"])], step_mm=step)
    assert rows["T1 coarse"]["fwhm_mm"] == pytest.approx(core.rows[0]["fwhm_mm"], abs=1e-9)
    assert rows["T1 coarse"]["erd_mm"] == pytest.approx(core.rows[0]["erd_mm"], abs=1e-9)
    assert rows["T1 fine"]["step_mm"] == pytest.approx(step, rel=1e-6)


def test_profile_table_and_chart_overlay_both_resolutions(phantomScene):
    logic = QualityMetricsMrmlLogic()
    logic.measure([phantomScene["coarse"], phantomScene["fine"]], lineNodes=[phantomScene["line"]])
    profileTable, chart = logic.profileTableNode, logic.plotChartNode
    assert profileTable is not None and chart is not None

    assert chart.GetNumberOfPlotSeriesNodes() == 2
    series = [chart.GetNthPlotSeriesNode(index) for index in range(2)]
    assert {s.GetName() for s in series} == {"T1 coarse - septum", "T1 fine - septum"}
    table = profileTable.GetTable()
    for s in series:
        assert s.GetTableNode() is profileTable
        distance = np.array([table.GetColumnByName(s.GetXColumnName()).GetValue(i) for i in range(table.GetNumberOfRows())])
        intensity = np.array([table.GetColumnByName(s.GetYColumnName()).GetValue(i) for i in range(table.GetNumberOfRows())])
        # The sampled profile is the sheet's Gaussian across 14 mm centred on the sheet.
        expected = 100 + 500 * np.exp(-0.5 * ((distance - 7.0) / SIGMA_MM) ** 2)
        tolerance = 15 if s.GetName().startswith("T1 coarse") else 3  # trilinear error on 1.2 mm vs 0.6 mm slices
        np.testing.assert_allclose(intensity, expected, atol=tolerance)
    assert series[0].GetXColumnName() == series[1].GetXColumnName()  # common step: one distance column
    assert series[0].GetColor() != series[1].GetColor()
    assert profileTable.GetColumnUnitLabel(series[0].GetXColumnName()) == "mm"
    assert chart.GetXAxisTitle() == "Distance along the line (mm)"


def test_rerun_updates_the_same_nodes_in_place(phantomScene):
    app, logic = phantomScene["app"], QualityMetricsMrmlLogic()
    volumes = [phantomScene["coarse"], phantomScene["fine"]]
    tableNode = logic.measure(volumes, lineNodes=[phantomScene["line"]])
    profileTable, chart = logic.profileTableNode, logic.plotChartNode
    vtkTable = tableNode.GetTable()
    nodeCount = app.scene.GetNumberOfNodes()
    firstRows = rowsFromTableNode(tableNode)

    # Move the line along the sheet (its profile keeps the same shape) and half a line length off-centre.
    line = phantomScene["line"]
    for index in range(2):
        position = np.array(line.GetNthControlPointPosition(index))
        line.SetNthControlPointPosition(index, *(position + [0.5, 0.0, 0.0]))
    again = logic.measure(volumes, lineNodes=[line], outputTableNode=tableNode, profileTableNode=profileTable,
                          plotChartNode=chart)

    assert again is tableNode and tableNode.GetTable() is vtkTable
    assert app.scene.GetNumberOfNodes() == nodeCount
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    secondRows = rowsFromTableNode(tableNode)
    assert len(secondRows) == len(firstRows)
    assert [row["volume"] for row in secondRows] == [row["volume"] for row in firstRows]
    assert secondRows[0]["fwhm_mm"] == pytest.approx(FWHM_MM, rel=0.03)
    assert secondRows[0]["fwhm_mm"] != firstRows[0]["fwhm_mm"]  # really recomputed

    # A measurement without lines keeps the earlier profile outputs and only rewrites the metrics table.
    roi = app.addRoiNode(phantomScene["center"], [2, 2, 2], name="sheet core")
    logic.measure(volumes, roiNodes=[roi], outputTableNode=tableNode)
    assert [row["kind"] for row in rowsFromTableNode(tableNode)] == ["region", "region"]
    assert chart.GetNumberOfPlotSeriesNodes() == 2


def test_failure_leaves_outputs_unchanged_and_adds_no_node(phantomScene):
    app, logic = phantomScene["app"], QualityMetricsMrmlLogic()
    volumes = [phantomScene["coarse"], phantomScene["fine"]]
    tableNode = logic.measure(volumes, lineNodes=[phantomScene["line"]])
    before = rowsFromTableNode(tableNode)
    nodeCount = app.scene.GetNumberOfNodes()

    outside = app.addLineNode(phantomScene["center"], phantomScene["center"] + [0, 0, 40], "too long")
    nodeCount += 1
    with pytest.raises(ValueError, match="too long"):
        logic.measure(volumes, lineNodes=[phantomScene["line"], outside], outputTableNode=tableNode,
                      profileTableNode=logic.profileTableNode, plotChartNode=logic.plotChartNode)
    with pytest.raises(ValueError, match="Nothing to measure"):
        logic.measure(volumes)
    with pytest.raises(ValueError, match="'T1 fine'.*label map|label map"):
        labelMap = app.addVolumeFromArrayAndGeometry(np.zeros((2, 2, 2), np.uint8), np.eye(4), "labels",
                                                     "vtkMRMLLabelMapVolumeNode")
        nodeCount = app.scene.GetNumberOfNodes()
        logic.measure([phantomScene["fine"], labelMap], lineNodes=[phantomScene["line"]], outputTableNode=tableNode)

    after = rowsFromTableNode(tableNode)
    assert len(after) == len(before)
    for rowBefore, rowAfter in zip(before, after):
        for key, value in rowBefore.items():
            assert rowAfter[key] == value or (isinstance(value, float) and math.isnan(value) and math.isnan(rowAfter[key]))
    assert app.scene.GetNumberOfNodes() == nodeCount


def twoToneVolume(slicerApp):
    """Left half 200 +- 20, right half 100 +- 10 (checkerboard pattern: exact SD), corner air 0 +- 5."""
    checker = np.indices((20, 20, 20)).sum(axis=0) % 2 * 2 - 1  # +-1
    array = np.where(np.arange(20)[None, None, :] < 10, 200 + 20 * checker, 100 + 10 * checker).astype(np.float32)
    array[:, :4, :] = 5 * checker[:, :4, :]
    return slicerApp.addVolumeFromArrayAndGeometry(array, np.eye(4), "two tone")


def sampleSd(amplitude, n):
    """SD (n - 1) of n values alternating +-amplitude (n even)."""
    return amplitude * math.sqrt(n / (n - 1))


def test_snr_cnr_and_contrast_ratio_with_the_module_methods(slicerApp):
    volumeNode = twoToneVolume(slicerApp)
    regionA = slicerApp.addRoiNode([4.5, 10.5, 10.5], [4, 4, 4], name="bright")   # 64 voxels, all 200 +- 20
    regionB = slicerApp.addRoiNode([14.5, 10.5, 10.5], [4, 4, 4], name="dark")    # 100 +- 10
    background = slicerApp.addRoiNode([10.5, 1.5, 10.5], [4, 2, 4], name="air")  # 32 voxels, 0 +- 5
    logic = QualityMetricsMrmlLogic()

    tableNode = logic.measureWithMethods([volumeNode], regionANode=regionA, regionBNode=regionB,
                                         backgroundRegionNode=background, snrMethod="background + Rayleigh",
                                         cnrMethod="pooled SD", computeContrastRatio=True)
    rows = {row["measurement"]: row for row in rowsFromTableNode(tableNode)}

    assert rows["bright"]["mean"] == pytest.approx(200) and rows["bright"]["voxels"] == 64
    assert rows["bright"]["sd"] == pytest.approx(sampleSd(20, 64))
    noiseSd = sampleSd(5, 32)
    assert rows["SNR bright / air"]["snr"] == pytest.approx(200 / (noiseSd / 0.655))
    assert rows["SNR dark / air"]["snr"] == pytest.approx(100 / (noiseSd / 0.655))
    pooled = math.sqrt((sampleSd(20, 64) ** 2 + sampleSd(10, 64) ** 2) / 2)
    assert rows["CNR bright - dark"]["cnr"] == pytest.approx(100 / pooled)
    assert rows["CR bright / dark"]["contrast_ratio"] == pytest.approx(2.0)

    logic.measureWithMethods([volumeNode], regionANode=regionA, regionBNode=regionB,
                             backgroundRegionNode=background, snrMethod="same region", cnrMethod="background",
                             computeContrastRatio=False, outputTableNode=tableNode)
    rows = {row["measurement"]: row for row in rowsFromTableNode(tableNode)}
    assert rows["SNR bright"]["snr"] == pytest.approx(200 / sampleSd(20, 64))
    assert rows["CNR bright - dark / air"]["cnr"] == pytest.approx(100 / noiseSd)
    assert not any(name.startswith("CR") for name in rows)

    with pytest.raises(ValueError, match="needs a background"):
        logic.measureWithMethods([volumeNode], regionANode=regionA, snrMethod="background")
    with pytest.raises(ValueError, match="Unknown SNR method"):
        logic.measureWithMethods([volumeNode], regionANode=regionA, snrMethod="magic")


def test_measure_with_points_closed_curve_and_segmentation(slicerApp):
    volumeNode = twoToneVolume(slicerApp)
    points = slicerApp.addPointListNode([[4, 10, 10], [15, 10, 10]], "circles", labels=["wm", "gm"])
    curve = slicerApp.addClosedCurveNode([[2.1, 12.1, 8], [6.9, 12.1, 8], [6.9, 16.9, 8], [2.1, 16.9, 8]], "square")
    mask = np.zeros((20, 20, 20), bool)
    mask[5:8, 10:14, 12:18] = True
    segmentationNode, _ = slicerApp.addSegmentationFromMasks({"lesion": mask}, np.eye(4))

    tableNode = QualityMetricsMrmlLogic().measure(
        [volumeNode], pointNodes=[points], circleDiameterMm=4.0, circlePlane="axial", closedCurveNodes=[curve],
        segmentationNode=segmentationNode, snrSpecs=[{"region": "lesion"}],
        cnrSpecs=[measurement.CnrSpec("wm", "gm")])
    rows = {row["measurement"]: row for row in rowsFromTableNode(tableNode)}

    assert rows["wm"]["voxels"] == 13 and rows["gm"]["voxels"] == 13
    # Centres 3..6 (i) x 13..16 (j) in slice k = 8: 16 voxels, half 220 and half 180.
    assert rows["square"]["voxels"] == 16 and rows["square"]["mean"] == pytest.approx(200)
    assert rows["lesion"]["voxels"] == mask.sum() and rows["lesion"]["mean"] == pytest.approx(100, abs=1)
    assert rows["SNR lesion"]["snr"] == pytest.approx(rows["lesion"]["mean"] / rows["lesion"]["sd"])
    assert rows["CNR wm - gm"]["cnr"] > 0


def test_duplicate_names_are_refused(slicerApp):
    volumeNode = twoToneVolume(slicerApp)
    one = slicerApp.addRoiNode([5, 10, 10], [2, 2, 2], name="same")
    two = slicerApp.addRoiNode([15, 10, 10], [2, 2, 2], name="same")
    with pytest.raises(ValueError, match="Two regions share the name same"):
        QualityMetricsMrmlLogic().measure([volumeNode], roiNodes=[one, two])
    with pytest.raises(ValueError, match="selected twice"):
        QualityMetricsMrmlLogic().measure([volumeNode, volumeNode], roiNodes=[one])
    with pytest.raises(ValueError, match="does not describe a SnrSpec"):
        QualityMetricsMrmlLogic().measure([volumeNode], roiNodes=[one], snrSpecs=[{"signal": "same"}])
    with pytest.raises(ValueError, match="unknown region 'elsewhere'"):
        QualityMetricsMrmlLogic().measure([volumeNode], roiNodes=[one], snrSpecs=[{"region": "elsewhere"}])
    # Two volumes that share a name get unique row names.
    twin = twoToneVolume(slicerApp)
    table = QualityMetricsMrmlLogic().measure([volumeNode, twin], roiNodes=[one])
    names = [row["volume"] for row in rowsFromTableNode(table)]
    assert len(set(names)) == 2 and all(name.startswith("two tone (") for name in names)


def test_export_to_csv_uses_the_core_format(slicerApp, tmp_path):
    volumeNode = twoToneVolume(slicerApp)
    roi = slicerApp.addRoiNode([4.5, 10.5, 10.5], [4, 4, 4], name="bright")
    logic = QualityMetricsMrmlLogic()
    tableNode = logic.measure([volumeNode], roiNodes=[roi])
    path = tmp_path / "metrics.csv"
    logic.exportTableToCsv(tableNode, path)
    expected = tmp_path / "expected.csv"
    measurement.write_rows_csv(logic.lastResult.rows, expected)
    assert path.read_text() == expected.read_text()
    assert [p.name for p in tmp_path.iterdir()] and not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())
