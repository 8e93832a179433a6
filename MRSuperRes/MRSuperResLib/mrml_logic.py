"""MRSuperRes logic on MRML nodes, without Qt: a blocking path for the Python console, scripts and tests, and a
background path (worker process) that the module widget polls.

Either way the scene is left as it was when processing fails or is cancelled: the output node is only created
(or overwritten) once the enhanced volume exists, and a node created here is removed again if importing fails.

Console use::

    from MRSuperResLib.mrml_logic import SuperResMrmlLogic
    outputVolume = SuperResMrmlLogic().process(getNode("MRHead"), scale=2, denoise=1.0)
"""

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from MRSuperResLib import mrml_nodes

SCALES = (1, 2, 3)
DEVICES = ("auto", "cuda", "cpu")
SLICE_AXES = ("auto", "i", "j", "k")


def validateSettings(scale, denoise, device, sliceAxis, batchSize):
    """Raise ValueError naming the first setting that is out of range."""
    if int(scale) != scale or int(scale) not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")
    if not 0.0 <= float(denoise) <= 1.0:
        raise ValueError(f"denoise must be between 0 and 1, got {denoise}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if sliceAxis not in SLICE_AXES:
        raise ValueError(f"slice axis must be one of {SLICE_AXES}, got {sliceAxis!r}")
    if batchSize is not None and int(batchSize) < 1:
        raise ValueError(f"batch size must be at least 1, got {batchSize}")


def settingsDescription(scale, denoise, device, sliceAxis, modelId, noiseMap=False):
    return (f"MRSuperRes model={modelId or 'default'} scale={int(scale)} denoise={float(denoise):g} "
            f"device={device} sliceAxis={sliceAxis}" + (" noiseMap=auto" if noiseMap else ""))


@dataclass
class ProcessingJob:
    """A background enhancement: the worker process and what is needed to import or discard its result."""

    inputVolume: object
    outputVolume: object  # caller-supplied node, or None: created when the result is imported
    settings: dict
    tempDir: Path
    resultPath: Path
    worker: object = None
    messages: list = field(default_factory=list)

    @property
    def progress(self):
        """(done, total) of the latest progress report, or None."""
        return self.worker.progress if self.worker is not None else None


class SuperResMrmlLogic:
    """Enhances scalar volume nodes; owns no widgets, callable from the Python console."""

    def process(self, inputVolume, outputVolume=None, scale=2, denoise=1.0, device="auto", sliceAxis="auto",
                batchSize=None, modelId=None, progress=None, cancel=None, show=True, noiseMap=False):
        """Enhance inputVolume in this process (blocking) and return the output node.

        outputVolume: node to overwrite, or None to create "<input> enhanced ×<scale>".
        noiseMap: the noise varies across the image (parallel imaging): denoise each region for its own level.
        progress(done, total): optional callback; cancel: optional threading.Event (inference.EnhanceCancelled).
        """
        validateSettings(scale, denoise, device, sliceAxis, batchSize)
        self._checkOutputNode(inputVolume, outputVolume)
        volume = mrml_nodes.volumeFromNode(inputVolume)  # validates the input node
        from MRSuperResLib import inference  # torch and monai: only for a valid input

        modelId = inference.model_for(modelId, device).id
        outArray, outIjkToRas = inference.enhance(
            volume.array, volume.ijk_to_ras, scale=int(scale), denoise=float(denoise), device=device,
            slice_axis=sliceAxis, batch_size=batchSize, model_id=modelId, progress=progress, cancel=cancel,
            stated_matrix=mrml_nodes.statedAcquisitionMatrix(inputVolume), noise_map="auto" if noiseMap else "off",
        )
        result = volume.with_array(outArray, ijk_to_ras=outIjkToRas)
        description = settingsDescription(scale, denoise, device, sliceAxis, modelId, noiseMap)
        return self._importResult(inputVolume, outputVolume, scale, description, show,
                                  lambda node: mrml_nodes.updateNodeFromVolume(node, result))

    # Background path: startProcessing -> (poll job.worker) -> finishProcessing or cancelProcessing.

    def startProcessing(self, inputVolume, outputVolume=None, scale=2, denoise=1.0, device="auto",
                        sliceAxis="auto", batchSize=None, modelId=None, python=None, env=None, noiseMap=False):
        """Write the input to a temporary NRRD and start the worker; returns a ProcessingJob to poll."""
        from MRSuperResLib import worker_process

        validateSettings(scale, denoise, device, sliceAxis, batchSize)
        self._checkOutputNode(inputVolume, outputVolume)
        mrml_nodes.validateInputVolumeNode(inputVolume)
        tempDir = Path(tempfile.mkdtemp(prefix="MRSuperRes-"))
        settings = dict(scale=int(scale), denoise=float(denoise), device=device, sliceAxis=sliceAxis,
                        batchSize=batchSize, modelId=modelId, noiseMap=bool(noiseMap))
        job = ProcessingJob(inputVolume, outputVolume, settings, tempDir, tempDir / "enhanced.nrrd")
        try:
            inputPath = tempDir / "input.nrrd"
            mrml_nodes.writeVolumeFile(inputVolume, inputPath)
            command = worker_process.build_worker_command(
                inputPath, job.resultPath, scale=scale, denoise=denoise, device=device, slice_axis=sliceAxis,
                batch_size=batchSize, model_id=modelId, python=python,
                stated_matrix=mrml_nodes.statedAcquisitionMatrix(inputVolume), noise_map=bool(noiseMap),
            )
            job.worker = worker_process.WorkerProcess(command, env=env)
        except Exception:
            shutil.rmtree(tempDir, ignore_errors=True)
            raise
        return job

    def finishProcessing(self, job, show=True):
        """Import the result of a finished worker into the output node; raise RuntimeError if it failed."""
        try:
            returnCode = job.worker.wait()
            if job.worker.cancelled:
                raise RuntimeError("Enhancement was cancelled.")
            if returnCode != 0 or not job.resultPath.is_file():
                raise RuntimeError(f"Enhancement failed: {job.worker.error_message()}")
            s = job.settings
            modelId = job.worker.model_id or s["modelId"]  # the worker names the model it ran
            description = settingsDescription(s["scale"], s["denoise"], s["device"], s["sliceAxis"], modelId,
                                              s["noiseMap"])
            return self._importResult(job.inputVolume, job.outputVolume, s["scale"], description, show,
                                      lambda node: mrml_nodes.readVolumeFile(job.resultPath, node))
        finally:
            shutil.rmtree(job.tempDir, ignore_errors=True)

    def cancelProcessing(self, job):
        """Kill the worker (and its children) and delete its files; the scene is not touched."""
        try:
            if job.worker is not None:
                job.worker.cancel()
        finally:
            shutil.rmtree(job.tempDir, ignore_errors=True)

    # Helpers

    @staticmethod
    def _checkOutputNode(inputVolume, outputVolume):
        if outputVolume is None:
            return
        if inputVolume is not None and outputVolume.GetID() == inputVolume.GetID():
            raise ValueError("The output volume must differ from the input volume (the input is never modified).")
        if not outputVolume.IsA("vtkMRMLScalarVolumeNode") or outputVolume.IsA("vtkMRMLLabelMapVolumeNode"):
            raise ValueError(f"Output '{outputVolume.GetName()}' must be a scalar volume node.")

    @staticmethod
    def _importResult(inputVolume, outputVolume, scale, description, show, fill):
        """Create the output node if needed, fill it; remove a created node again if filling fails."""
        created = outputVolume is None
        if created:
            outputVolume = mrml_nodes.createOutputVolumeNode(inputVolume, scale)
        try:
            fill(outputVolume)
            mrml_nodes.finishOutputVolumeNode(inputVolume, outputVolume, description)
        except Exception:
            if created:
                scene = outputVolume.GetScene()
                for displayNode in [outputVolume.GetNthDisplayNode(i) for i in range(outputVolume.GetNumberOfDisplayNodes())]:
                    scene.RemoveNode(displayNode)
                scene.RemoveNode(outputVolume)
            raise
        if show:
            mrml_nodes.showInSliceViews(outputVolume, inputVolume)
        return outputVolume
