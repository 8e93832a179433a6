"""SuperResMrmlLogic on the real Slicer core: settings and node checks, and the promise that failure or cancel
leaves the scene as it was (no new node; a caller-supplied output keeps its content; no temporary files)."""

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from sample_series import copy_sample_slices

from MRSuperResLib import model_catalog, mrml_nodes
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


# With the shipped model (CPU), on three slices of the bundled GE PD sample.

CPU_MODEL = model_catalog.get_model(None, "cpu").id  # the fast model the catalogue picks for CPUs


def sample_slices(folder, indices):
    """Volume read from copies of some sample slices (see sample_series.copy_sample_slices)."""
    from MRQualityMetricsLib.volume_io import read_volume

    return read_volume(copy_sample_slices(folder, indices), name="GEBrainPD")


@pytest.fixture(scope="module")
def pd3(tmp_path_factory):
    return sample_slices(tmp_path_factory.mktemp("pd3") / "dicom", (11, 12, 13))


@pytest.fixture(scope="module")
def pd8(tmp_path_factory):
    return sample_slices(tmp_path_factory.mktemp("pd8") / "dicom", range(6, 14))


def add_volume(app, volume):
    return app.addVolumeFromArrayAndGeometry(volume.array, volume.ijk_to_ras, volume.name)


def test_blocking_process_creates_the_named_output_in_the_study_and_shows_it(slicerApp, pd3):
    import slicer

    app = slicerApp
    inputNode = add_volume(app, pd3)
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(app.scene)
    study = shNode.CreateStudyItem(shNode.CreateSubjectItem(shNode.GetSceneItemID(), "Patient"), "Brain")
    shNode.CreateItem(study, inputNode)
    views = [app.scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(2)]
    inputState = [entry for entry in scene_state(app.scene) if entry[0] == inputNode.GetID()]
    before = mrml_nodes.volumeFromNode(inputNode).array.copy()
    progress = []

    outputNode = SuperResMrmlLogic().process(inputNode, scale=2, denoise=1.0, device="cpu",
                                             progress=lambda done, total: progress.append((done, total)))
    assert outputNode.GetName() == "GEBrainPD enhanced ×2"
    result = mrml_nodes.volumeFromNode(outputNode)
    assert result.array.shape == (3, 512, 512) and np.all(np.isfinite(result.array))
    expected = pd3.ijk_to_ras.copy()
    expected[:3, :2] /= 2
    np.testing.assert_allclose(result.ijk_to_ras, expected, atol=1e-9)
    assert result.array.mean() == pytest.approx(before.mean(), rel=0.05)
    assert progress[-1] == (3, 3)
    assert shNode.GetItemParent(shNode.GetItemByDataNode(outputNode)) == study
    assert all(v.GetBackgroundVolumeID() == outputNode.GetID() and v.GetForegroundVolumeID() == inputNode.GetID()
               and v.GetForegroundOpacity() == pytest.approx(0.5) for v in views)
    assert f"model={CPU_MODEL} scale=2 denoise=1" in outputNode.GetAttribute("MRSuperRes.settings")  # the model run
    np.testing.assert_array_equal(mrml_nodes.volumeFromNode(inputNode).array, before)  # input untouched
    assert inputState[0] in scene_state(app.scene)  # same id, name, voxels and geometry


def test_caller_supplied_output_node_receives_the_result(slicerApp, pd3):
    app = slicerApp
    inputNode = add_volume(app, pd3)
    target = app.addVolumeFromArrayAndGeometry(np.zeros((2, 2, 2), np.int16), np.eye(4), "my result")
    returned = SuperResMrmlLogic().process(inputNode, target, scale=1, device="cpu", modelId=CPU_MODEL)
    assert returned is target and target.GetName() == "my result"
    assert mrml_nodes.volumeFromNode(target).array.shape == (3, 256, 256)
    np.testing.assert_allclose(mrml_nodes.ijkToRasArray(target), pd3.ijk_to_ras, atol=1e-9)


def test_worker_path_gives_the_blocking_result(slicerApp, pd3):
    app = slicerApp
    inputNode = add_volume(app, pd3)
    logic = SuperResMrmlLogic()
    blocking = mrml_nodes.volumeFromNode(logic.process(inputNode, scale=2, device="cpu", modelId=CPU_MODEL,
                                                       show=False))
    job = logic.startProcessing(inputNode, scale=2, device="cpu", modelId=CPU_MODEL, python=sys.executable)
    assert job.worker.wait(timeout=300) == 0, job.worker.log_lines
    assert job.progress == (3, 3)
    outputNode = logic.finishProcessing(job)
    background = mrml_nodes.volumeFromNode(outputNode)
    assert outputNode.GetName() == "GEBrainPD enhanced ×2_1"  # the first result keeps its name
    assert job.worker.model_id == CPU_MODEL and f"model={CPU_MODEL} " in outputNode.GetAttribute("MRSuperRes.settings")
    np.testing.assert_allclose(background.ijk_to_ras, blocking.ijk_to_ras, atol=1e-6)
    np.testing.assert_allclose(background.array, blocking.array, atol=1e-3 * blocking.array.max())
    assert not job.tempDir.exists()


def test_a_noise_map_request_reaches_both_paths_and_the_settings(slicerApp, pd3, monkeypatch):
    from MRSuperResLib import inference

    calls = []
    enhance = inference.enhance
    monkeypatch.setattr(inference, "enhance", lambda *args, **kwargs: calls.append(kwargs["noise_map"])
                        or enhance(*args, **kwargs))
    inputNode = add_volume(slicerApp, pd3)
    logic = SuperResMrmlLogic()
    plain = logic.process(inputNode, scale=1, device="cpu", modelId=CPU_MODEL, show=False)
    mapped = logic.process(inputNode, scale=1, device="cpu", modelId=CPU_MODEL, show=False, noiseMap=True)
    assert calls == ["off", "auto"]
    assert "noiseMap" not in plain.GetAttribute("MRSuperRes.settings")
    assert mapped.GetAttribute("MRSuperRes.settings").endswith(" noiseMap=auto")
    job = logic.startProcessing(inputNode, scale=1, device="cpu", modelId=CPU_MODEL, noiseMap=True)
    try:
        assert job.worker.command[job.worker.command.index("--noise-map") + 1] == "auto"
        assert job.settings["noiseMap"] is True
    finally:
        logic.cancelProcessing(job)


def test_a_dicom_nodes_stated_acquisition_matrix_reaches_both_paths(slicerApp, tmp_path, monkeypatch):
    """A node loaded from a zero-filled DICOM series (instance UIDs in its attribute, files in Slicer's DICOM
    database): the blocking path restores it from the matrix the header states, the worker is told it."""
    import types

    import pydicom
    import slicer
    from sample_series import copy_zero_filled_slices

    from MRQualityMetricsLib.volume_io import read_volume

    folder = copy_zero_filled_slices(tmp_path / "dicom", range(7, 11), (128, 128), 10.0, [0, 128, 128, 0])
    files = {str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID): str(path)
             for path in sorted(folder.glob("*.dcm"))}
    monkeypatch.setattr(slicer, "dicomDatabase", types.SimpleNamespace(fileForInstance=files.get), raising=False)
    node = add_volume(slicerApp, read_volume(folder, name="zero-filled"))
    node.SetAttribute("DICOM.instanceUIDs", " ".join(files))
    logic = SuperResMrmlLogic()
    with pytest.warns(UserWarning, match=r"from 128x128 \(the DICOM header's acquisition matrix"):
        logic.process(node, scale=1, device="cpu", modelId=CPU_MODEL, show=False)
    job = logic.startProcessing(node, scale=1, device="cpu", modelId=CPU_MODEL)
    try:
        assert job.worker.command[job.worker.command.index("--stated-matrix") + 1] == "128x128"
    finally:
        logic.cancelProcessing(job)


def test_cancel_mid_run_kills_the_worker_and_leaves_the_scene_unchanged(slicerApp, pd8):
    import time

    app = slicerApp
    inputNode = add_volume(app, pd8)
    previous = app.addVolumeFromArrayAndGeometry(np.full((2, 3, 4), 5, np.int16), np.eye(4), "previous result")
    folders, state = temp_job_folders(), scene_state(app.scene)
    logic = SuperResMrmlLogic()
    job = logic.startProcessing(inputNode, previous, scale=3, device="cpu", batchSize=1, modelId=CPU_MODEL,
                                python=sys.executable)
    deadline = time.monotonic() + 120
    while job.progress is None and time.monotonic() < deadline:
        job.worker.poll()
        time.sleep(0.05)
    assert job.progress is not None and job.progress[0] < 8, "the worker never reported progress"
    logic.cancelProcessing(job)
    assert job.worker.cancelled and not job.worker.is_running() and job.worker.return_code != 0
    assert not job.tempDir.exists() and temp_job_folders() == folders
    assert scene_state(app.scene) == state  # no new node; the chosen output keeps its previous content
    with pytest.raises(RuntimeError, match="cancelled"):
        logic.finishProcessing(job)
    assert scene_state(app.scene) == state


def test_blocking_cancel_event_leaves_the_scene_unchanged(slicerApp, pd3):
    import threading

    from MRSuperResLib.inference import EnhanceCancelled

    app = slicerApp
    inputNode = add_volume(app, pd3)
    state = scene_state(app.scene)
    cancel = threading.Event()
    with pytest.raises(EnhanceCancelled):
        SuperResMrmlLogic().process(inputNode, device="cpu", batchSize=1, modelId=CPU_MODEL, cancel=cancel,
                                    progress=lambda done, total: cancel.set())
    assert scene_state(app.scene) == state


def test_corrupt_weights_fail_in_the_worker_with_the_checksum_reason(slicerApp, pd3, tmp_path):
    import os
    import shutil

    models = tmp_path / "models"
    shutil.copytree(model_catalog.DEFAULT_MODELS_DIR, models)
    weights = models / model_catalog.get_model(CPU_MODEL).file.name
    weights.chmod(0o644)
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated download
    app = slicerApp
    inputNode = add_volume(app, pd3)
    state = scene_state(app.scene)
    logic = SuperResMrmlLogic()
    job = logic.startProcessing(inputNode, device="cpu", modelId=CPU_MODEL, python=sys.executable,
                                env=dict(os.environ, MRSUPERRES_MODELS_DIR=str(models)))
    with pytest.raises(RuntimeError, match="Enhancement failed: checksum mismatch"):
        logic.finishProcessing(job)
    assert scene_state(app.scene) == state
