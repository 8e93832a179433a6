"""The shared slicerApp fixture sets the scene up like the Slicer application (see Testing/conftest.py)."""

import numpy as np


def test_scene_has_the_application_singletons_and_logics(slicerApp):
    import slicer

    scene = slicerApp.scene
    assert scene.GetNodeByID("vtkMRMLSelectionNodeSingleton").IsA("vtkMRMLSelectionNode")
    assert scene.GetNodeByID("vtkMRMLInteractionNodeSingleton").IsA("vtkMRMLInteractionNode")
    assert scene.GetFirstNodeByClass("vtkMRMLCrosshairNode") is not None
    assert scene.GetFirstNodeByName("Grey") is not None  # default color tables
    for moduleName in ("Markups", "Volumes", "Tables", "Plots", "Segmentations", "SubjectHierarchy"):
        logic = slicerApp.logic(moduleName)
        assert logic.GetMRMLScene() is scene
        assert slicerApp.applicationLogic.GetModuleLogic(moduleName) is logic
    assert slicerApp.markupsLogic is slicerApp.logic("Markups")
    assert slicer.modules.markups.logic() is slicerApp.markupsLogic
    assert slicer.mrmlScene is scene


def test_slicer_util_helpers_work_on_the_fixture_scene(slicerApp):
    import slicer

    ijkToRas = np.diag([0.5, 0.5, 2.0, 1.0])
    volumeNode = slicerApp.addVolumeFromArrayAndGeometry(np.arange(24, dtype=np.int16).reshape(2, 3, 4), ijkToRas, "v")
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(volumeNode), np.arange(24).reshape(2, 3, 4))
    slicer.util.updateVolumeFromArray(volumeNode, np.ones((2, 3, 4), np.float32))
    assert slicer.util.arrayFromVolume(volumeNode).dtype == np.float32
    assert slicer.util.getNode("v") is volumeNode
    line = slicerApp.addLineNode([0, 0, 0], [3, 4, 0], "l")
    assert line.GetLineLengthWorld() == 5.0
    assert slicer.util.arrayFromMarkupsControlPoints(line, world=True).shape == (2, 3)


def test_every_test_gets_a_fresh_scene(slicerApp):
    assert slicerApp.scene.GetFirstNodeByName("v") is None
    assert slicerApp.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 0
