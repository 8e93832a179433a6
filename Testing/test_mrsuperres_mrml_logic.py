"""SuperResMrmlLogic on the real Slicer core: settings and node checks, and the promise that failure or cancel
leaves the scene as it was (no new node; a caller-supplied output keeps its content; no temporary files)."""

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from MRSuperResLib import mrml_nodes
from MRSuperResLib.mrml_logic import SuperResMrmlLogic, validateSettings


def temp_job_folders():
    return set(Path(tempfile.gettempdir()).glob("MRSuperRes-*"))


def scene_state(scene):
    """Node ids, names and volume checksums: what 'the scene is unchanged' means."""
    import hashlib

    state = []
    for index in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(index)
        entry = [node.GetID(), node.GetName()]
        if node.IsA("vtkMRMLVolumeNode") and node.GetImageData() is not None:
            entry.append(hashlib.sha256(mrml_nodes.volumeFromNode(node, validate=False).array.tobytes()).hexdigest())
            entry.append(mrml_nodes.ijkToRasArray(node).round(9).tobytes())
        state.append(tuple(entry))
    return state


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        (dict(scale=4), "scale"), (dict(scale=2.5), "scale"), (dict(denoise=1.2), "denoise"),
        (dict(denoise=-0.01), "denoise"), (dict(device="gpu"), "device"), (dict(sliceAxis="z"), "slice axis"),
        (dict(batchSize=0), "batch size"),
    ],
)
def test_settings_out_of_range(settings, fragment):
    values = dict(scale=2, denoise=1.0, device="auto", sliceAxis="auto", batchSize=None) | settings
    with pytest.raises(ValueError, match=fragment):
        validateSettings(**values)


def test_bad_nodes_are_refused_before_anything_starts(slicerApp):
    app = slicerApp
    image = app.addVolumeFromArrayAndGeometry(np.ones((3, 8, 8), np.float32), np.eye(4), "PD")
    labels = app.addVolumeFromArrayAndGeometry(np.zeros((3, 8, 8), np.uint8), np.eye(4), "labels",
                                               "vtkMRMLLabelMapVolumeNode")
    single = app.addVolumeFromArrayAndGeometry(np.ones((1, 8, 8), np.float32), np.eye(4), "one slice")
    logic = SuperResMrmlLogic()
    folders, state = temp_job_folders(), scene_state(app.scene)
    with pytest.raises(ValueError, match="differ from the input"):
        logic.startProcessing(image, image)
    with pytest.raises(ValueError, match="must be a scalar volume"):
        logic.startProcessing(image, labels)
    with pytest.raises(ValueError, match="label map"):
        logic.startProcessing(labels)
    with pytest.raises(ValueError, match="not a 3D volume"):
        logic.process(single)
    with pytest.raises(ValueError, match="No input volume"):
        logic.startProcessing(None)
    assert temp_job_folders() == folders and scene_state(app.scene) == state


def test_failed_worker_leaves_the_scene_and_the_output_node_unchanged(slicerApp):
    app = slicerApp
    rng = np.random.default_rng(5)
    image = app.addVolumeFromArrayAndGeometry(rng.random((3, 8, 8)).astype(np.float32), np.eye(4), "PD")
    previous = app.addVolumeFromArrayAndGeometry(np.full((2, 4, 4), 7, np.int16), np.diag([2, 2, 2, 1.0]), "old")
    logic = SuperResMrmlLogic()
    for outputVolume in (None, previous):
        folders, state = temp_job_folders(), scene_state(app.scene)
        job = logic.startProcessing(image, outputVolume, modelId="no-such-model", python=sys.executable)
        assert job.tempDir.is_dir() and (job.tempDir / "input.nrrd").is_file()
        with pytest.raises(RuntimeError, match="Enhancement failed: .+"):
            logic.finishProcessing(job)
        assert not job.tempDir.exists() and temp_job_folders() == folders
        assert scene_state(app.scene) == state


def test_failure_while_importing_removes_the_created_node(slicerApp):
    app = slicerApp
    image = app.addVolumeFromArrayAndGeometry(np.ones((3, 8, 8), np.float32), np.eye(4), "PD")
    state = scene_state(app.scene)

    def failingFill(node):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        SuperResMrmlLogic._importResult(image, None, 2, "", True, failingFill)
    assert scene_state(app.scene) == state
