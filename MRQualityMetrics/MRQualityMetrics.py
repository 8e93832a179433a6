import importlib
import logging
from typing import Annotated, Union

import qt
import slicer
import vtk
from slicer import (
    vtkMRMLMarkupsClosedCurveNode,
    vtkMRMLMarkupsCurveNode,
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLMarkupsLineNode,
    vtkMRMLMarkupsROINode,
    vtkMRMLPlotChartNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from MRQualityMetricsLib.mrml_logic import CNR_METHODS, SNR_METHODS, QualityMetricsMrmlLogic
from MRQualityMetricsLib.mrml_nodes import POINT_REGION_SHAPES

# Library modules reloaded by the module's "Reload" button (developer mode), dependencies first.
LIBRARY_MODULES = [
    "MRQualityMetricsLib.volume", "MRQualityMetricsLib.line_profile", "MRQualityMetricsLib.edge_metrics",
    "MRQualityMetricsLib.regions", "MRQualityMetricsLib.region_stats", "MRQualityMetricsLib.snr",
    "MRQualityMetricsLib.measurement", "MRQualityMetricsLib.study_stats", "MRQualityMetricsLib.mrml_nodes",
    "MRQualityMetricsLib.mrml_tables", "MRQualityMetricsLib.mrml_logic",
]
AUTO_UPDATE_DELAY_MS = 300  # recompute once the markups stop moving for this long
MARKUPS_EVENTS = ("PointModifiedEvent", "PointEndInteractionEvent", "PointRemovedEvent", "TransformModifiedEvent")


#
# MRQualityMetrics
#


class MRQualityMetrics(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MR Quality Metrics")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["MRSuperRes contributors"]
        self.parent.helpText = _("""
Objective MRI image-quality metrics measured on markups, identically on every reconstruction:
line-profile sharpness (FWHM, edge rise distance and slope) across a thin structure, and region statistics with
SNR, CNR and contrast ratio (same-region, background-noise with optional Rayleigh correction, pooled SD).
One set of markups, placed in physical space, measures each selected volume at its own resolution.
Results go to a table (column descriptions state each formula) and the profiles to a plot.
See the <a href="https://github.com/mrsuperres/SlicerMRSuperRes">extension documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Metric definitions follow the MRI deep-learning reconstruction studies cited in the extension documentation
(line profiles across the septum pellucidum; ImageJ-style circular ROIs) and NEMA MS 1 for SNR.
""")


#
# MRQualityMetricsParameterNode
#


@parameterNodeWrapper
class MRQualityMetricsParameterNode:
    """
    Node fields use Union[..., None] (not "X | None") so that Slicer versions before PEP 604 support work.
    inputVolume1..4 - volumes measured with the same markups (1 required).
    lineNode - line or open curve for the profile sharpness metrics.
    regionANode, regionBNode - signal regions (ROI box, point list: circles/spheres, closed curve).
    backgroundRegionNode - noise region for the background SNR/CNR methods.
    segmentationNode - every segment becomes a region.
    circleDiameterMm, circlePlane - size and shape of the region drawn around each point.
    snrMethod, cnrMethod, computeContrastRatio - which formulas are reported.
    autoUpdate - recompute when the markups move.
    outputTable, profileTable, plotChart - outputs, created when empty and reused afterwards.
    """

    inputVolume1: Union[vtkMRMLScalarVolumeNode, None]
    inputVolume2: Union[vtkMRMLScalarVolumeNode, None]
    inputVolume3: Union[vtkMRMLScalarVolumeNode, None]
    inputVolume4: Union[vtkMRMLScalarVolumeNode, None]
    lineNode: Union[vtkMRMLMarkupsLineNode, vtkMRMLMarkupsCurveNode, None]
    regionANode: Union[vtkMRMLMarkupsROINode, vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsClosedCurveNode, None]
    regionBNode: Union[vtkMRMLMarkupsROINode, vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsClosedCurveNode, None]
    backgroundRegionNode: Union[vtkMRMLMarkupsROINode, vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsClosedCurveNode, None]
    segmentationNode: Union[vtkMRMLSegmentationNode, None]
    circleDiameterMm: Annotated[float, WithinRange(1, 20)] = 4.0
    circlePlane: Annotated[str, Choice(list(POINT_REGION_SHAPES))] = "axial"
    snrMethod: Annotated[str, Choice(list(SNR_METHODS))] = "same region"
    cnrMethod: Annotated[str, Choice(list(CNR_METHODS))] = "pooled SD"
    computeContrastRatio: bool = True
    autoUpdate: bool = False
    outputTable: Union[vtkMRMLTableNode, None]
    profileTable: Union[vtkMRMLTableNode, None]
    plotChart: Union[vtkMRMLPlotChartNode, None]


#
# MRQualityMetricsWidget
#


class MRQualityMetricsWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._observedMarkups = []
        self._computing = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MRQualityMetrics.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = MRQualityMetricsLogic()

        self._autoUpdateTimer = qt.QTimer()
        self._autoUpdateTimer.setSingleShot(True)
        self._autoUpdateTimer.setInterval(AUTO_UPDATE_DELAY_MS)
        self._autoUpdateTimer.timeout.connect(self.onAutoUpdate)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.exportCsvButton.connect("clicked(bool)", self.onExportCsvButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._autoUpdateTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # Auto-update keeps running while other modules are shown: the observations stay.
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onReload(self) -> None:
        for name in LIBRARY_MODULES:
            module = importlib.import_module(name)
            importlib.reload(module)
        super().onReload()

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume1:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode and not firstVolumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.inputVolume1 = firstVolumeNode

    def setParameterNode(self, inputParameterNode: MRQualityMetricsParameterNode | None) -> None:
        if self._parameterNode:
            if self._parameterNodeGuiTag is not None:
                self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
                self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with a "SlicerParameterName" property in the .ui are bound here, both ways.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        self._checkCanApply()
        self._observeMarkups()
        if self._parameterNode and self._parameterNode.autoUpdate and not self._computing:
            self._autoUpdateTimer.start()

    def _checkCanApply(self) -> None:
        parameters = self._parameterNode
        missing = []
        if not parameters or not parameters.inputVolume1:
            missing.append(_("select Volume 1"))
        if parameters and not (parameters.lineNode or parameters.regionANode or parameters.regionBNode
                               or parameters.backgroundRegionNode or parameters.segmentationNode):
            missing.append(_("select or place a line, a region or a segmentation"))
        self.ui.applyButton.enabled = not missing
        self.ui.applyButton.toolTip = (_("Measure every selected volume with the same markups.") if not missing
                                       else _("To compute: ") + "; ".join(missing))
        self.ui.exportCsvButton.enabled = bool(parameters and parameters.outputTable)

    def _observeMarkups(self) -> None:
        """While auto-update is on, moving any selected markup schedules one recomputation."""
        for node in self._observedMarkups:
            for eventName in MARKUPS_EVENTS:
                self.removeObserver(node, getattr(slicer.vtkMRMLMarkupsNode, eventName), self.onMarkupsModified)
        self._observedMarkups = []
        parameters = self._parameterNode
        if not parameters or not parameters.autoUpdate:
            return
        for node in (parameters.lineNode, parameters.regionANode, parameters.regionBNode,
                     parameters.backgroundRegionNode):
            if node is not None and node not in self._observedMarkups:
                for eventName in MARKUPS_EVENTS:
                    self.addObserver(node, getattr(slicer.vtkMRMLMarkupsNode, eventName), self.onMarkupsModified)
                self._observedMarkups.append(node)

    def onMarkupsModified(self, caller=None, event=None) -> None:
        if not self._computing:
            self._autoUpdateTimer.start()

    def _compute(self) -> None:
        self._computing = True
        try:
            tableNode = self.logic.measureFromParameterNode(self._parameterNode)
        finally:
            self._computing = False
        rows = tableNode.GetNumberOfRows()
        self.ui.statusLabel.text = _("{rows} rows in '{table}'.").format(rows=rows, table=tableNode.GetName())
        return tableNode

    def onApplyButton(self) -> None:
        self.ui.statusLabel.text = ""
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the quality metrics."), waitCursor=True):
            tableNode = self._compute()
            self.logic.showResultsInLayout(tableNode, self._parameterNode.plotChart
                                           if self._parameterNode.lineNode else None)

    def onAutoUpdate(self) -> None:
        """Recompute quietly: while a markup is being moved an error is shown in the status line, not a dialog."""
        if not self._parameterNode or not self._parameterNode.autoUpdate or not self.ui.applyButton.enabled:
            return
        try:
            self._compute()
        except ValueError as error:
            self.ui.statusLabel.text = _("Not updated: {error}").format(error=error)

    def onExportCsvButton(self) -> None:
        tableNode = self._parameterNode.outputTable if self._parameterNode else None
        if tableNode is None:
            return
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), _("Export metrics"),
                                              tableNode.GetName() + ".csv", _("CSV files (*.csv)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to export the table."), waitCursor=True):
            self.logic.exportTableToCsv(tableNode, path)
            self.ui.statusLabel.text = _("Saved {path}").format(path=path)


#
# MRQualityMetricsLogic
#


class MRQualityMetricsLogic(ScriptedLoadableModuleLogic, QualityMetricsMrmlLogic):
    """Module logic = QualityMetricsMrmlLogic (measure, measureWithMethods, computeStudyStatistics,
    exportTableToCsv; usable from the Python console) + parameter node handling and result display."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        QualityMetricsMrmlLogic.__init__(self)

    def getParameterNode(self):
        return MRQualityMetricsParameterNode(super().getParameterNode())

    def measureFromParameterNode(self, parameters):
        """Measure what the module form selects; created outputs are stored back in the parameter node."""
        volumes = [volume for volume in (parameters.inputVolume1, parameters.inputVolume2, parameters.inputVolume3,
                                         parameters.inputVolume4) if volume is not None]
        tableNode = self.measureWithMethods(
            volumes, lineNode=parameters.lineNode, regionANode=parameters.regionANode,
            regionBNode=parameters.regionBNode, backgroundRegionNode=parameters.backgroundRegionNode,
            segmentationNode=parameters.segmentationNode, circleDiameterMm=parameters.circleDiameterMm,
            circlePlane=parameters.circlePlane, snrMethod=parameters.snrMethod, cnrMethod=parameters.cnrMethod,
            computeContrastRatio=parameters.computeContrastRatio, outputTableNode=parameters.outputTable,
            profileTableNode=parameters.profileTable, plotChartNode=parameters.plotChart)
        with slicer.util.NodeModify(parameters.parameterNode):
            parameters.outputTable = tableNode
            if parameters.lineNode is not None:
                parameters.profileTable = self.profileTableNode
                parameters.plotChart = self.plotChartNode
        return tableNode

    @staticmethod
    def showResultsInLayout(tableNode, plotChartNode=None) -> None:
        """Switch to a layout with a table view (and a plot view) and show the results there."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:
            return
        layout = (slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView if plotChartNode
                  else slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        layoutManager.setLayout(layout)
        applicationLogic = slicer.app.applicationLogic()
        selectionNode = applicationLogic.GetSelectionNode()
        selectionNode.SetActiveTableID(tableNode.GetID())
        applicationLogic.PropagateTableSelection()
        if plotChartNode is not None:
            selectionNode.SetActivePlotChartID(plotChartNode.GetID())
            applicationLogic.PropagatePlotChartSelection()


#
# MRQualityMetricsTest
#


class MRQualityMetricsTest(ScriptedLoadableModuleTest):
    """Self-test inside Slicer: a synthetic Gaussian sheet, a line across it, FWHM against 2.3548 sigma."""

    SIGMA_MM = 1.5

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_FwhmOfSyntheticSheet()
        self.setUp()
        self.test_FailureKeepsTable()

    def _sheetVolume(self, spacing, name):
        """Bright Gaussian sheet (SD SIGMA_MM along R) through the origin; volume centred on the origin."""
        import numpy as np

        shape = (20, 20, int(round(24 / spacing)))  # k, j, i
        ijkToRas = np.diag([spacing, 1.0, 1.0, 1.0])
        ijkToRas[:3, 3] = -(np.array(shape[::-1]) - 1) / 2 * np.array([spacing, 1.0, 1.0])
        x = ijkToRas[0, 3] + spacing * np.arange(shape[2])
        array = np.broadcast_to(100 + 400 * np.exp(-0.5 * (x / self.SIGMA_MM) ** 2), shape).astype(np.float32)
        return slicer.util.addVolumeFromArray(array, ijkToRas, name)

    def _line(self):
        lineNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", "septum")
        lineNode.AddControlPoint(-8, 0, 0)
        lineNode.AddControlPoint(8, 0, 0)
        return lineNode

    def test_FwhmOfSyntheticSheet(self):
        self.delayDisplay("Measuring FWHM on two resolutions")
        volumes = [self._sheetVolume(0.5, "sheet 0.5 mm"), self._sheetVolume(0.25, "sheet 0.25 mm")]
        logic = MRQualityMetricsLogic()
        tableNode = logic.measure(volumes, lineNodes=[self._line()])
        expected = 2.3548 * self.SIGMA_MM
        fwhm = slicer.util.arrayFromTableColumn(tableNode, "fwhm_mm")
        self.assertEqual(len(fwhm), 2)
        for value in fwhm:
            self.assertAlmostEqual(value / expected, 1.0, delta=0.02)  # trilinear broadening ~1 % at 0.5 mm
        self.assertEqual(logic.plotChartNode.GetNumberOfPlotSeriesNodes(), 2)
        logging.info(f"FWHM {list(fwhm)} mm, expected {expected:.4f} mm")
        self.delayDisplay("Test passed")

    def test_FailureKeepsTable(self):
        self.delayDisplay("A failing measurement leaves the table as it was")
        volume = self._sheetVolume(0.5, "sheet")
        logic = MRQualityMetricsLogic()
        lineNode = self._line()
        tableNode = logic.measure([volume], lineNodes=[lineNode])
        before = slicer.util.arrayFromTableColumn(tableNode, "fwhm_mm").copy()
        lineNode.SetNthControlPointPosition(1, 80, 0, 0)  # far outside the volume
        with self.assertRaises(ValueError):
            logic.measure([volume], lineNodes=[lineNode], outputTableNode=tableNode)
        self.assertEqual(list(slicer.util.arrayFromTableColumn(tableNode, "fwhm_mm")), list(before))
        self.delayDisplay("Test passed")
