"""Quality metrics on MRML nodes: the entry point for the module widget and the Slicer Python console.

No Qt and no widget access: everything here runs in a bare Slicer core (pytest with slicer-core) as in Slicer.

Console example::

    from MRQualityMetricsLib.mrml_logic import QualityMetricsMrmlLogic
    from MRQualityMetricsLib.measurement import SnrSpec, CnrSpec
    logic = QualityMetricsMrmlLogic()
    table = logic.measure([getNode("T1 512"), getNode("T1 768")], lineNodes=[getNode("septum")],
                          pointNodes=[getNode("ROIs")], circleDiameterMm=4,
                          snrSpecs=[SnrSpec("wm")], cnrSpecs=[CnrSpec("lesion", "wm")])
    logic.exportTableToCsv(table, "/tmp/metrics.csv")
"""

import math
import os

import numpy as np

from . import mrml_nodes, mrml_tables

# Profile sampling step, as a fraction of the smallest voxel spacing over all measured volumes: one common step
# gives every volume the same sample distances along a line, so the profile table shares its distance column.
PROFILE_STEP_FRACTION = 0.1


# Methods offered by the module, by label: (uses the background region's SD, Rayleigh-corrected).
SNR_METHODS = {"same region": (False, False), "background": (True, False), "background + Rayleigh": (True, True)}
CNR_METHODS = {"pooled SD": (False, False), "background": (True, False), "background + Rayleigh": (True, True)}


def ratioSpecs(signalRegionNames, regionANames, regionBNames, backgroundName, snrMethod, cnrMethod,
               computeContrastRatio=True):
    """SNR specs for every signal region, CNR and contrast ratio of A vs B, for the named methods."""
    from .measurement import CnrSpec, ContrastRatioSpec, SnrSpec

    if snrMethod not in SNR_METHODS:
        raise ValueError(f"Unknown SNR method '{snrMethod}': use one of {', '.join(SNR_METHODS)}")
    if cnrMethod not in CNR_METHODS:
        raise ValueError(f"Unknown CNR method '{cnrMethod}': use one of {', '.join(CNR_METHODS)}")
    snrUsesBackground, snrRayleigh = SNR_METHODS[snrMethod]
    if snrUsesBackground and signalRegionNames and backgroundName is None:
        raise ValueError(f"SNR method '{snrMethod}' needs a background (noise) region")
    snrs = [SnrSpec(name, backgroundName if snrUsesBackground else None, snrRayleigh) for name in signalRegionNames]
    cnrs, contrastRatios = [], []
    if regionANames and regionBNames:
        if len(regionANames) != 1 or len(regionBNames) != 1:
            raise ValueError(f"CNR compares one region A with one region B; got {len(regionANames)} and "
                             f"{len(regionBNames)} regions (use point lists with a single point)")
        cnrUsesBackground, cnrRayleigh = CNR_METHODS[cnrMethod]
        if cnrUsesBackground and backgroundName is None:
            raise ValueError(f"CNR method '{cnrMethod}' needs a background (noise) region")
        cnrs.append(CnrSpec(regionANames[0], regionBNames[0], backgroundName if cnrUsesBackground else None,
                            cnrRayleigh))
        if computeContrastRatio:
            contrastRatios.append(ContrastRatioSpec(regionANames[0], regionBNames[0]))
    return snrs, cnrs, contrastRatios


def _checkUniqueNames(names, what):
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Two {what} share the name {', '.join(duplicates)}: rename the markups or segments")


def _asSpecs(specs, specClass, what):
    """Core spec objects, or dicts of their fields (handy in the console)."""
    converted = []
    for spec in specs or ():
        if isinstance(spec, specClass):
            converted.append(spec)
        elif isinstance(spec, dict):
            try:
                converted.append(specClass(**spec))
            except TypeError as error:
                raise ValueError(f"{what}: {spec!r} does not describe a {specClass.__name__}: {error}") from None
        else:
            raise ValueError(f"{what}: expected {specClass.__name__} or a dict of its fields, got {spec!r}")
    return converted


class QualityMetricsMrmlLogic:
    """Measures volumes on markups/segmentations and writes tables and plots; caller-owned outputs are reused."""

    def __init__(self, scene=None):
        self._scene = scene
        self.lastResult = None  # MeasurementResult of the last successful measure()
        self.profileTableNode = None  # profile table and chart of the last measure() with lines
        self.plotChartNode = None

    @property
    def scene(self):
        if self._scene is not None:
            return self._scene
        import slicer

        return slicer.mrmlScene

    # Nodes -> core objects

    @staticmethod
    def volumesFromNodes(volumeNodes):
        """Scalar volume nodes -> Volumes named after the nodes (made unique); ValueError on a bad node."""
        volumeNodes = [node for node in volumeNodes or () if node is not None]
        if not volumeNodes:
            raise ValueError("Select at least one volume to measure")
        ids = [node.GetID() for node in volumeNodes]
        duplicates = {nodeId for nodeId in ids if ids.count(nodeId) > 1}
        if duplicates:
            raise ValueError(f"Volume selected twice: {', '.join(sorted(duplicates))}")
        names = [node.GetName() or node.GetID() for node in volumeNodes]
        volumes = []
        for node, name in zip(volumeNodes, names):
            uniqueName = name if names.count(name) == 1 else f"{name} ({node.GetID()})"
            volumes.append(mrml_nodes.volumeFromNode(node, uniqueName))
        return volumes

    @staticmethod
    def regionsFromNodes(roiNodes=(), pointNodes=(), circleDiameterMm=4.0, circlePlane="axial",
                         closedCurveNodes=(), segmentationNode=None, segmentIds=()):
        regions = []
        for node in roiNodes or ():
            regions.append(mrml_nodes.boxRegionFromRoiNode(node))
        for node in pointNodes or ():
            regions.extend(mrml_nodes.pointRegionsFromNode(node, circleDiameterMm, circlePlane))
        for node in closedCurveNodes or ():
            regions.append(mrml_nodes.polygonRegionFromClosedCurveNode(node))
        if segmentationNode is not None:
            regions.extend(mrml_nodes.segmentRegionsFromNode(segmentationNode, segmentIds))
        elif segmentIds:
            raise ValueError("Segment IDs were given without a segmentation node")
        _checkUniqueNames([region.name for region in regions], "regions")
        return regions

    # Measurement

    def measure(self, volumeNodes, lineNodes=(), roiNodes=(), pointNodes=(), circleDiameterMm=4.0,
                circlePlane="axial", closedCurveNodes=(), segmentationNode=None, segmentIds=(), snrSpecs=(),
                cnrSpecs=(), contrastRatioSpecs=(), outputTableNode=None, profileTableNode=None,
                plotChartNode=None, stepMm=None):
        """Measure every volume with the same markups (one row per volume and measurement) and return the table.

        - lineNodes: markups lines / open curves -> FWHM, ERD, ERS (profile table + overlaid plot are written to
          profileTableNode / plotChartNode, created when None; see self.profileTableNode / self.plotChartNode).
        - roiNodes, pointNodes (circle of circleDiameterMm on circlePlane "axial"/"coronal"/"sagittal", or
          "sphere"), closedCurveNodes, segmentationNode (+ segmentIds, all when empty) -> region statistics.
        - snrSpecs / cnrSpecs / contrastRatioSpecs: core SnrSpec / CnrSpec / ContrastRatioSpec (or dicts) naming
          regions by name (node name; point label for multi-point lists; segment name).
        - stepMm: profile sampling step; default 0.1 x the smallest voxel spacing of all volumes.
        Everything is computed before any node is created or changed: on error (ValueError) outputs are untouched.
        """
        from . import measurement

        regions = self.regionsFromNodes(roiNodes, pointNodes, circleDiameterMm, circlePlane, closedCurveNodes,
                                        segmentationNode, segmentIds)
        return self._measureAndWrite(
            volumeNodes, lineNodes, regions,
            _asSpecs(snrSpecs, measurement.SnrSpec, "SNR"),
            _asSpecs(cnrSpecs, measurement.CnrSpec, "CNR"),
            _asSpecs(contrastRatioSpecs, measurement.ContrastRatioSpec, "contrast ratio"),
            outputTableNode, profileTableNode, plotChartNode, stepMm)

    def measureWithMethods(self, volumeNodes, lineNode=None, regionANode=None, regionBNode=None,
                           backgroundRegionNode=None, segmentationNode=None, circleDiameterMm=4.0,
                           circlePlane="axial", snrMethod="same region", cnrMethod="pooled SD",
                           computeContrastRatio=True, outputTableNode=None, profileTableNode=None,
                           plotChartNode=None, stepMm=None):
        """The module's form: regions by role (A, B, background; each a ROI, point list or closed curve) and
        SNR/CNR methods by name (SNR_METHODS, CNR_METHODS).

        SNR is reported for every signal region (A, B and the segments); CNR and the contrast ratio compare A with
        B when both are given (each must then be a single region). Background-based methods need the background.
        """
        def regionsOf(node):
            return mrml_nodes.regionsFromNode(node, circleDiameterMm, circlePlane)

        regionsA, regionsB, background = regionsOf(regionANode), regionsOf(regionBNode), regionsOf(backgroundRegionNode)
        segments = mrml_nodes.segmentRegionsFromNode(segmentationNode) if segmentationNode is not None else []
        if len(background) > 1:
            raise ValueError(f"The background '{backgroundRegionNode.GetName()}' must be one region "
                             f"(it has {len(background)} points)")
        regions = regionsA + regionsB + background + segments
        _checkUniqueNames([region.name for region in regions], "regions")
        snrs, cnrs, contrastRatios = ratioSpecs(
            [region.name for region in regionsA + regionsB + segments], [region.name for region in regionsA],
            [region.name for region in regionsB], background[0].name if background else None,
            snrMethod, cnrMethod, computeContrastRatio)
        return self._measureAndWrite(volumeNodes, [lineNode] if lineNode is not None else [], regions, snrs, cnrs,
                                     contrastRatios, outputTableNode, profileTableNode, plotChartNode, stepMm)

    def _measureAndWrite(self, volumeNodes, lineNodes, regions, snrs, cnrs, contrastRatios, outputTableNode,
                         profileTableNode, plotChartNode, stepMm):
        from . import measurement

        volumes = self.volumesFromNodes(volumeNodes)
        lines = [mrml_nodes.lineSpecFromNode(node) for node in lineNodes or ()]
        lineNames = [line.name for line in lines]
        _checkUniqueNames(lineNames, "lines")
        if not (lines or regions):
            raise ValueError("Nothing to measure: add a line, ROI, point, closed curve or segmentation")
        if stepMm is None and lines:
            stepMm = PROFILE_STEP_FRACTION * min(float(np.min(volume.spacing)) for volume in volumes)
        result = measurement.measure(volumes, lines=lines, regions=regions, snrs=snrs, cnrs=cnrs,
                                     contrast_ratios=contrastRatios, step_mm=stepMm)

        # Only now touch the scene: complete results or nothing.
        firstName = volumes[0].name
        if outputTableNode is None:
            outputTableNode = self.scene.AddNewNodeByClass("vtkMRMLTableNode", f"{firstName} quality metrics")
        mrml_tables.updateTableFromRows(outputTableNode, result.rows, measurement.COLUMNS)
        if lines:
            volumeNames = [volume.name for volume in volumes]
            if profileTableNode is None:
                profileTableNode = self.scene.AddNewNodeByClass("vtkMRMLTableNode", f"{firstName} line profiles")
            mrml_tables.updateProfileTable(profileTableNode, result.profiles, volumeNames, lineNames)
            if plotChartNode is None:
                plotChartNode = self.scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{firstName} line profiles")
            mrml_tables.updateProfilePlot(plotChartNode, profileTableNode, volumeNames, lineNames, result.profiles)
            self.profileTableNode, self.plotChartNode = profileTableNode, plotChartNode
        self.lastResult = result
        return outputTableNode

    # Study statistics and export

    def computeStudyStatistics(self, cases, reconstructions=None, outputTableNode=None):
        """Paired statistics across cases (seed 000, Table 5) -> table node.

        cases: a CASES.csv path or a table node holding such a table (the core's formats: long case /
        reconstruction / metric / value, or measurement rows with a case column), or {case name: measurement
        table node} where every table measured the same reconstructions in the same volume order.
        reconstructions: labels of the two reconstructions; for {case: table} they name the first and second
        volume of each table (default: the volume names, which must then be the same in every case)."""
        from . import study_stats

        if isinstance(cases, dict):
            records = studyRecordsFromTables(cases, reconstructions)
            name = "study"
        elif hasattr(cases, "GetTable"):
            import tempfile

            # The core parses both CASES formats from CSV; go through a temporary copy of the table.
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "cases.csv")
                mrml_tables.writeTableCsv(cases, path)
                records = study_stats.read_cases_csv(path)
            name = cases.GetName()
        else:
            records = study_stats.read_cases_csv(cases)
            name = os.path.splitext(os.path.basename(os.fspath(cases)))[0]
        statistics = study_stats.paired_study_statistics(records, reconstructions)
        if outputTableNode is None:
            outputTableNode = self.scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} statistics")
        mrml_tables.updateTableFromRows(outputTableNode, statistics,
                                        mrml_tables.studyColumnSpecs(study_stats.STUDY_COLUMNS))
        return outputTableNode

    @staticmethod
    def exportTableToCsv(tableNode, path):
        """Write a table node to CSV atomically with the core's writer: a measurement table gives the same file
        as `mrqualitymetrics measure`."""
        if tableNode is None:
            raise ValueError("No table to export")
        return mrml_tables.writeTableCsv(tableNode, os.fspath(path))



def studyRecordsFromTables(tablesByCase, reconstructions=None):
    """{case: measurement table} -> [(case, reconstruction, metric, value)] for study_stats; metric names are
    "<measurement> <column>" with the columns of each row's kind (as the core reads result CSVs)."""
    from .study_stats import RESULT_METRICS_BY_KIND

    if not tablesByCase:
        raise ValueError("No cases given for the study statistics")
    records = []
    for case, tableNode in tablesByCase.items():
        rows = mrml_tables.rowsFromTableNode(tableNode)
        volumes = list(dict.fromkeys(row["volume"] for row in rows))
        if reconstructions is not None and len(volumes) != len(reconstructions):
            raise ValueError(f"Case '{case}': table '{tableNode.GetName()}' has {len(volumes)} volumes "
                             f"({', '.join(volumes)}), expected one per reconstruction ({', '.join(reconstructions)})")
        for row in rows:
            index = volumes.index(row["volume"])
            label = reconstructions[index] if reconstructions is not None else row["volume"]
            for column in RESULT_METRICS_BY_KIND.get(row["kind"], ()):
                value = row.get(column)
                if isinstance(value, float) and math.isfinite(value):
                    records.append((str(case), label, f"{row['measurement']} {column}", value))
    return records
