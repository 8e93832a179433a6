"""Shared pytest fixtures: a small Slicer application context on the real Slicer core (PyPI ``slicer-core``).

``slicerApp`` (function-scoped: a fresh scene for every test)
    A bare ``vtkMRMLScene`` lacks what the Slicer application adds at startup, so nodes misbehave (no selection or
    interaction node, markups without display defaults, no default color tables). Like ``qSlicerCoreApplication``
    and trame-slicer's ``SlicerApp``, the fixture creates:

    - the scene with a ``vtkMRMLCrosshairNode``;
    - a ``vtkSlicerApplicationLogic`` on it (it adds the ``vtkMRMLSelectionNodeSingleton`` and
      ``vtkMRMLInteractionNodeSingleton`` singletons) with the color logic and its default color nodes;
    - the module logics registered to the scene and to the application logic under their module names:
      Markups, Volumes, Tables, Plots, Segmentations, SubjectHierarchy, Transforms, Sequences, Units
      (Terminologies is left out: slicer-core ships no terminology files);
    - the default segmentation converter rules (closed surface <-> binary labelmap);
    - ``slicer.mrmlScene`` set to the scene, so ``slicer.util`` helpers work (``arrayFromVolume``,
      ``updateVolumeFromArray``, ``addVolumeFromArray``, ``getNode``, ``arrayFromTableColumn`` ...), and
      ``slicer.modules.<name>.logic()`` (lower-case module name, e.g. ``slicer.modules.markups.logic()``)
      returning the registered logics, as inside Slicer. Both are restored after the test.
    There is no ``slicer.app`` (no Qt): code under test must not need the GUI.

    Usage::

        def test_something(slicerApp):
            volumeNode = slicerApp.addVolumeFromArrayAndGeometry(array, ijkToRas, "T1")
            lineNode = slicerApp.addLineNode([0, 0, 0], [10, 0, 0], "septum")
            transformNode = slicerApp.addLinearTransformNode(matrix4x4, "tilt")
            volumeNode.SetAndObserveTransformNodeID(transformNode.GetID())
            segmentationNode, segmentIds = slicerApp.addSegmentationFromMasks({"wm": mask}, ijkToRas)
            slicerApp.logic("Markups")  # or slicerApp.markupsLogic

The factories are also plain functions of this module taking the scene first
(``addVolumeFromArrayAndGeometry(scene, array, ijkToRas, name)`` ...), for use outside the fixture.
"""

import types

import numpy as np
import pytest

from MRQualityMetricsLib.mrml_nodes import vtkMatrixFromArray

# Module name -> class name in the ``slicer`` package (slicer-core); skipped when a build lacks one.
MODULE_LOGIC_CLASSES = {
    "Markups": "vtkSlicerMarkupsLogic",
    "Volumes": "vtkSlicerVolumesLogic",
    "Tables": "vtkSlicerTablesLogic",
    "Plots": "vtkSlicerPlotsLogic",
    "Segmentations": "vtkSlicerSegmentationsModuleLogic",
    "SubjectHierarchy": "vtkSlicerSubjectHierarchyModuleLogic",
    "Transforms": "vtkSlicerTransformLogic",
    "Sequences": "vtkSlicerSequencesLogic",
    "Units": "vtkSlicerUnitsLogic",
}


def addVolumeFromArrayAndGeometry(scene, array, ijkToRas, name, nodeClassName="vtkMRMLScalarVolumeNode"):
    """Volume node (array [k, j, i] or [k, j, i, components]) with the 4x4 IJK-to-RAS geometry and display nodes."""
    import vtk
    from vtk.util import numpy_support

    array = np.ascontiguousarray(array)
    components = array.shape[3] if array.ndim == 4 else 1
    imageData = vtk.vtkImageData()
    imageData.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    vtkArray = numpy_support.numpy_to_vtk(array.reshape(-1, components), deep=True)
    imageData.GetPointData().SetScalars(vtkArray)
    volumeNode = scene.AddNewNodeByClass(nodeClassName, name)
    volumeNode.SetIJKToRASMatrix(vtkMatrixFromArray(ijkToRas))
    volumeNode.SetAndObserveImageData(imageData)
    volumeNode.CreateDefaultDisplayNodes()
    return volumeNode


def _addMarkupsNode(scene, className, name, pointsRas):
    node = scene.AddNewNodeByClass(className, name)
    node.CreateDefaultDisplayNodes()
    for point in np.atleast_2d(np.asarray(pointsRas, dtype=float)):
        node.AddControlPoint(*point)
    return node


def addLineNode(scene, startRas, endRas, name="line"):
    return _addMarkupsNode(scene, "vtkMRMLMarkupsLineNode", name, [startRas, endRas])


def addCurveNode(scene, pointsRas, name="curve", linear=True):
    """Open curve; linear interpolation by default so the polyline between control points is exact."""
    node = _addMarkupsNode(scene, "vtkMRMLMarkupsCurveNode", name, pointsRas)
    if linear:
        node.SetCurveTypeToLinear()
    return node


def addClosedCurveNode(scene, pointsRas, name="closed curve", linear=True):
    node = _addMarkupsNode(scene, "vtkMRMLMarkupsClosedCurveNode", name, pointsRas)
    if linear:
        node.SetCurveTypeToLinear()
    return node


def addPointListNode(scene, pointsRas, name="points", labels=None):
    node = _addMarkupsNode(scene, "vtkMRMLMarkupsFiducialNode", name, pointsRas)
    for index, label in enumerate(labels or []):
        node.SetNthControlPointLabel(index, label)
    return node


def addRoiNode(scene, centerRas, sizeMm, axesRas=None, name="roi"):
    """Box ROI: center, full side lengths along its axes, axes as columns of a 3x3 rotation (default RAS)."""
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", name)
    node.CreateDefaultDisplayNodes()
    objectToNode = np.eye(4)
    if axesRas is not None:
        objectToNode[:3, :3] = np.asarray(axesRas, dtype=float)
    objectToNode[:3, 3] = centerRas
    node.GetObjectToNodeMatrix().DeepCopy(vtkMatrixFromArray(objectToNode))
    node.SetSize(*[float(size) for size in sizeMm])
    node.SetCenter(*[float(center) for center in centerRas])
    return node


def addLinearTransformNode(scene, matrixToParent, name="transform"):
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    node.SetMatrixTransformToParent(vtkMatrixFromArray(matrixToParent))
    return node


def addSegmentationFromMasks(scene, masks, ijkToRas, name="segmentation"):
    """Segmentation node with one binary-labelmap segment per {segment name: bool array [k, j, i]}.

    Returns (segmentationNode, [segmentId, ...]) in the order of ``masks``."""
    import slicer
    import vtk
    from vtk.util import numpy_support

    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentationNode.CreateDefaultDisplayNodes()
    segmentIds = []
    for segmentName, mask in masks.items():
        mask = np.ascontiguousarray(mask, dtype=np.uint8)
        labelmap = slicer.vtkOrientedImageData()
        labelmap.SetDimensions(mask.shape[2], mask.shape[1], mask.shape[0])
        labelmap.GetPointData().SetScalars(numpy_support.numpy_to_vtk(mask.reshape(-1), deep=True,
                                                                      array_type=vtk.VTK_UNSIGNED_CHAR))
        labelmap.SetImageToWorldMatrix(vtkMatrixFromArray(ijkToRas))
        segmentIds.append(segmentationNode.AddSegmentFromBinaryLabelmapRepresentation(labelmap, segmentName))
    return segmentationNode, segmentIds


class SlicerTestApp:
    """Scene + application logic + module logics, configured like the Slicer application (see module docstring)."""

    def __init__(self):
        import slicer
        import vtk

        self.scene = slicer.vtkMRMLScene()
        crosshair = slicer.vtkMRMLCrosshairNode()
        crosshair.SetCrosshairName("default")
        self.scene.AddNode(crosshair)

        self.applicationLogic = slicer.vtkSlicerApplicationLogic()
        self.applicationLogic.SetMRMLScene(self.scene)
        self.applicationLogic.GetColorLogic().SetMRMLScene(self.scene)
        self.applicationLogic.GetColorLogic().AddDefaultColorNodes()
        self.applicationLogic.SetSliceLogics(vtk.vtkCollection())
        self.applicationLogic.SetViewLogics(vtk.vtkCollection())

        self._logics = {"Colors": self.applicationLogic.GetColorLogic()}
        for moduleName, className in MODULE_LOGIC_CLASSES.items():
            logicClass = getattr(slicer, className, None)
            if logicClass is None:
                continue
            logic = logicClass()
            logic.SetMRMLScene(self.scene)
            logic.SetMRMLApplicationLogic(self.applicationLogic)
            self.applicationLogic.SetModuleLogic(moduleName, logic)
            self._logics[moduleName] = logic

        _registerSegmentationConverterRules()

    def logic(self, moduleName):
        return self._logics[moduleName]

    def __getattr__(self, attribute):
        # markupsLogic, volumesLogic, tablesLogic, plotsLogic, segmentationsLogic, subjectHierarchyLogic ...
        if attribute.endswith("Logic") and not attribute.startswith("_"):
            for moduleName, logic in self.__dict__.get("_logics", {}).items():
                if moduleName[0].lower() + moduleName[1:] + "Logic" == attribute:
                    return logic
        raise AttributeError(attribute)

    def moduleNamespace(self):
        """What ``slicer.modules`` offers inside Slicer, limited to ``slicer.modules.<name>.logic()``."""
        modules = types.SimpleNamespace()
        for moduleName, logic in self._logics.items():
            setattr(modules, moduleName.lower(), types.SimpleNamespace(logic=lambda logic=logic: logic))
        return modules

    # Factories bound to this scene (see the module-level functions).
    def addVolumeFromArrayAndGeometry(self, array, ijkToRas, name, nodeClassName="vtkMRMLScalarVolumeNode"):
        return addVolumeFromArrayAndGeometry(self.scene, array, ijkToRas, name, nodeClassName)

    def addLineNode(self, startRas, endRas, name="line"):
        return addLineNode(self.scene, startRas, endRas, name)

    def addCurveNode(self, pointsRas, name="curve", linear=True):
        return addCurveNode(self.scene, pointsRas, name, linear)

    def addClosedCurveNode(self, pointsRas, name="closed curve", linear=True):
        return addClosedCurveNode(self.scene, pointsRas, name, linear)

    def addPointListNode(self, pointsRas, name="points", labels=None):
        return addPointListNode(self.scene, pointsRas, name, labels)

    def addRoiNode(self, centerRas, sizeMm, axesRas=None, name="roi"):
        return addRoiNode(self.scene, centerRas, sizeMm, axesRas, name)

    def addLinearTransformNode(self, matrixToParent, name="transform"):
        return addLinearTransformNode(self.scene, matrixToParent, name)

    def addSegmentationFromMasks(self, masks, ijkToRas, name="segmentation"):
        return addSegmentationFromMasks(self.scene, masks, ijkToRas, name)


def _registerSegmentationConverterRules():
    """The Segmentations module registers these at application startup; register them once per process."""
    import slicer

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    registered = {rule.GetClassName() for rule in factory.GetConverterRules()} if hasattr(
        factory, "GetConverterRules") else set()
    for ruleClassName in ("vtkBinaryLabelmapToClosedSurfaceConversionRule",
                          "vtkClosedSurfaceToBinaryLabelmapConversionRule"):
        if ruleClassName not in registered and hasattr(slicer, ruleClassName):
            factory.RegisterConverterRule(getattr(slicer, ruleClassName)())


@pytest.fixture
def slicerApp():
    """A fresh Slicer application context per test; ``slicer.mrmlScene``/``slicer.modules`` point at it."""
    import slicer

    missing = object()
    previous = {name: getattr(slicer, name, missing) for name in ("mrmlScene", "modules")}
    app = SlicerTestApp()
    slicer.mrmlScene = app.scene
    slicer.modules = app.moduleNamespace()
    try:
        yield app
    finally:
        app.scene.Clear(True)
        for name, value in previous.items():
            if value is missing:
                delattr(slicer, name)
            else:
                setattr(slicer, name, value)
