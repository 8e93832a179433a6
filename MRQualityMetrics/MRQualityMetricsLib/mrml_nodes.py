"""MRML nodes -> the numerical core's objects (Volume, LineSpec, regions), all in world (RAS) coordinates.

Parent transforms are honoured everywhere:
- volumes: a linear parent transform is folded into the IJK-to-RAS matrix; a non-linear (warping) one raises
  ValueError, because measuring would first need a resampling that changes the voxel values; harden the
  transform (Data module, right-click > Harden transform) to measure the warped image deliberately;
- markups: control and curve points are read with the *World* accessors, which apply any transform;
- segments are exported with their parent transform and rasterised on each volume's own world geometry.

slicer and vtk are imported inside the functions, so the module imports outside Slicer.
"""

import numpy as np

from .volume import Volume

# Shapes a point becomes: a circle on one slice (like ImageJ's oval ROI) or a sphere.
POINT_REGION_SHAPES = ("axial", "coronal", "sagittal", "sphere")


def arrayFromVtkMatrix(vtkMatrix) -> np.ndarray:
    return np.array([[vtkMatrix.GetElement(row, column) for column in range(4)] for row in range(4)])


def vtkMatrixFromArray(matrix):
    import vtk

    vtkMatrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            vtkMatrix.SetElement(row, column, float(matrix[row][column]))
    return vtkMatrix


def _nodeLabel(node) -> str:
    return f"'{node.GetName()}'" if node.GetName() else node.GetID() or node.GetClassName()


def nodeToWorldMatrix(node) -> np.ndarray:
    """4x4 matrix from the node's coordinates to world; ValueError if its parent transform is not linear."""
    import vtk

    transformNode = node.GetParentTransformNode()
    if transformNode is None:
        return np.eye(4)
    if not transformNode.IsTransformToWorldLinear():
        raise ValueError(
            f"{_nodeLabel(node)} is under the non-linear transform {_nodeLabel(transformNode)}: measuring it would "
            "require resampling the voxels. Harden the transform first (Data module: right-click > Harden transform)."
        )
    matrix = vtk.vtkMatrix4x4()
    transformNode.GetMatrixTransformToWorld(matrix)
    return arrayFromVtkMatrix(matrix)


def _isSequenceProxy(volumeNode) -> bool:
    scene = volumeNode.GetScene()
    if scene is None:
        return False
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSequenceBrowserNode")):
        if scene.GetNthNodeByClass(index, "vtkMRMLSequenceBrowserNode").IsProxyNodeID(volumeNode.GetID()):
            return True
    return False


def checkScalarVolumeNode(volumeNode):
    """ValueError naming the node unless it is a non-empty, single-component, 3D scalar volume."""
    if volumeNode is None:
        raise ValueError("No volume selected")
    label = _nodeLabel(volumeNode)
    if not volumeNode.IsA("vtkMRMLVolumeNode"):
        raise ValueError(f"{label} is a {volumeNode.GetClassName()}, not a volume")
    if volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
        raise ValueError(f"{label} is a label map volume: measure the intensity image, and use the label map "
                         "as a segmentation to define regions")
    if volumeNode.IsA("vtkMRMLMultiVolumeNode") or _isSequenceProxy(volumeNode):
        raise ValueError(f"{label} is one frame of a 4D (sequence/multi-volume) series: clone the time point to "
                         "measure into its own scalar volume first")
    if (volumeNode.IsA("vtkMRMLVectorVolumeNode") or volumeNode.IsA("vtkMRMLTensorVolumeNode")
            or volumeNode.IsA("vtkMRMLDiffusionWeightedVolumeNode") or not volumeNode.IsA("vtkMRMLScalarVolumeNode")):
        raise ValueError(f"{label} is a {volumeNode.GetClassName()}: only scalar (grayscale) volumes can be "
                         "measured, not vector, RGB, tensor or diffusion volumes")
    imageData = volumeNode.GetImageData()
    if imageData is None or imageData.GetPointData() is None or imageData.GetPointData().GetScalars() is None:
        raise ValueError(f"{label} is empty: it has no voxels")
    if min(imageData.GetDimensions()) < 1 or imageData.GetNumberOfPoints() == 0:
        raise ValueError(f"{label} is empty: dimensions {imageData.GetDimensions()}")
    if imageData.GetNumberOfScalarComponents() != 1:
        raise ValueError(f"{label} has {imageData.GetNumberOfScalarComponents()} components per voxel "
                         "(vector/RGB): only scalar volumes can be measured")


def volumeFromNode(volumeNode, name=None) -> Volume:
    """A copy of the voxels and the world IJK-to-RAS (parent linear transform included) of a scalar volume node."""
    import vtk
    from vtk.util import numpy_support

    checkScalarVolumeNode(volumeNode)
    imageData = volumeNode.GetImageData()
    shapeKji = tuple(reversed(imageData.GetDimensions()))
    array = numpy_support.vtk_to_numpy(imageData.GetPointData().GetScalars()).reshape(shapeKji).copy()
    ijkToRas = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRas)
    worldIjkToRas = nodeToWorldMatrix(volumeNode) @ arrayFromVtkMatrix(ijkToRas)
    return Volume(array=array, ijk_to_ras=worldIjkToRas, name=name or volumeNode.GetName(),
                  metadata={"node_id": volumeNode.GetID()})


def _pointsArray(vtkPoints) -> np.ndarray:
    from vtk.util import numpy_support

    if vtkPoints is None or vtkPoints.GetNumberOfPoints() == 0:
        return np.zeros((0, 3))
    return numpy_support.vtk_to_numpy(vtkPoints.GetData()).astype(float).reshape(-1, 3).copy()


def controlPointsWorld(markupsNode) -> np.ndarray:
    points = [markupsNode.GetNthControlPointPositionWorld(index)
              for index in range(markupsNode.GetNumberOfControlPoints())
              if markupsNode.GetNthControlPointPositionStatus(index) != markupsNode.PositionUndefined]
    return np.array(points, dtype=float).reshape(-1, 3)


def lineSpecFromNode(lineNode):
    """Markups line (its two end points) or open curve (its interpolated polyline) -> LineSpec in world RAS."""
    from .measurement import LineSpec

    if lineNode is None:
        raise ValueError("No line selected")
    label = _nodeLabel(lineNode)
    if lineNode.IsA("vtkMRMLMarkupsClosedCurveNode"):
        raise ValueError(f"{label} is a closed curve: use it as a region, or draw a line or an open curve for a profile")
    if lineNode.IsA("vtkMRMLMarkupsLineNode"):
        points = controlPointsWorld(lineNode)
        if len(points) != 2:
            raise ValueError(f"Line {label} needs 2 placed points, has {len(points)}")
    elif lineNode.IsA("vtkMRMLMarkupsCurveNode"):
        if len(controlPointsWorld(lineNode)) < 2:
            raise ValueError(f"Curve {label} needs at least 2 placed points")
        points = _pointsArray(lineNode.GetCurvePointsWorld())
    else:
        raise ValueError(f"{label} is a {lineNode.GetClassName()}: a profile needs a markups line or open curve")
    if len(points) < 2 or np.linalg.norm(np.diff(points, axis=0), axis=1).sum() <= 0:
        raise ValueError(f"Line {label} has zero length")
    return LineSpec(name=lineNode.GetName(), points_ras=points)


def boxRegionFromRoiNode(roiNode):
    """Markups ROI -> BoxRegion with world center, world side lengths and world axis directions."""
    from .regions import BoxRegion

    label = _nodeLabel(roiNode)
    if not roiNode.IsA("vtkMRMLMarkupsROINode"):
        raise ValueError(f"{label} is a {roiNode.GetClassName()}, not a markups ROI")
    if roiNode.GetNumberOfControlPoints() == 0:
        raise ValueError(f"ROI {label} is not placed")
    center, size = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    roiNode.GetCenterWorld(center)
    roiNode.GetSizeWorld(size)
    axes = np.zeros((3, 3))
    for column, getter in enumerate((roiNode.GetXAxisWorld, roiNode.GetYAxisWorld, roiNode.GetZAxisWorld)):
        axis = [0.0, 0.0, 0.0]
        getter(axis)
        axes[:, column] = np.asarray(axis) / np.linalg.norm(axis)
    if min(size) <= 0:
        raise ValueError(f"ROI {label} has an empty size {tuple(round(s, 3) for s in size)} mm")
    if not np.allclose(axes.T @ axes, np.eye(3), atol=1e-6):
        raise ValueError(f"ROI {label} is sheared by its parent transform: its box is not rectangular")
    return BoxRegion(roiNode.GetName(), np.asarray(center), np.asarray(size), axes)


def pointRegionsFromNode(pointNode, diameterMm=4.0, shape="axial"):
    """Each placed point -> a circle of diameterMm on one plane ("axial", "coronal", "sagittal") or a sphere.

    Region name: the node name for a single point, otherwise the point's label (made unique)."""
    from .regions import CircleRegion, SphereRegion

    label = _nodeLabel(pointNode)
    if not pointNode.IsA("vtkMRMLMarkupsFiducialNode"):
        raise ValueError(f"{label} is a {pointNode.GetClassName()}, not a markups point list")
    if shape not in POINT_REGION_SHAPES:
        raise ValueError(f"Unknown region shape '{shape}' for {label}: use one of {', '.join(POINT_REGION_SHAPES)}")
    if not diameterMm > 0:
        raise ValueError(f"Region diameter must be positive, got {diameterMm} mm")
    indices = [index for index in range(pointNode.GetNumberOfControlPoints())
               if pointNode.GetNthControlPointPositionStatus(index) != pointNode.PositionUndefined]
    if not indices:
        raise ValueError(f"Point list {label} has no placed point")
    regions, used = [], set()
    for index in indices:
        name = pointNode.GetName() if len(indices) == 1 else pointNode.GetNthControlPointLabel(index) or str(index + 1)
        while name in used:
            name = f"{name} ({index + 1})"
        used.add(name)
        center = np.asarray(pointNode.GetNthControlPointPositionWorld(index), dtype=float)
        if shape == "sphere":
            regions.append(SphereRegion(name, center, float(diameterMm)))
        else:
            regions.append(CircleRegion(name, center, float(diameterMm), plane=shape))
    return regions


def polygonRegionFromClosedCurveNode(curveNode):
    """Closed curve -> PolygonRegion on its interpolated (as displayed) world curve points."""
    from .regions import PolygonRegion

    label = _nodeLabel(curveNode)
    if not curveNode.IsA("vtkMRMLMarkupsClosedCurveNode"):
        raise ValueError(f"{label} is a {curveNode.GetClassName()}, not a closed curve")
    if len(controlPointsWorld(curveNode)) < 3:
        raise ValueError(f"Closed curve {label} needs at least 3 placed points")
    points = _pointsArray(curveNode.GetCurvePointsWorld())
    if len(points) > 1 and np.allclose(points[0], points[-1]):
        points = points[:-1]  # the curve repeats its first point to close itself
    return PolygonRegion(curveNode.GetName(), points)


def segmentMaskOnVolume(segmentationNode, segmentId, volume) -> np.ndarray:
    """Boolean mask [k, j, i] of the segment (parent transform applied) on the volume's world voxel grid.

    Nearest-neighbour resampling of the segment's binary labelmap: a voxel belongs to the segment when its
    centre falls in a segment voxel."""
    import slicer
    from vtk.util import numpy_support

    label = _nodeLabel(segmentationNode)
    segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
    if segment is None:
        raise ValueError(f"Segmentation {label} has no segment '{segmentId}'")
    labelmap = slicer.vtkOrientedImageData()
    if not slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(
            segmentationNode, segmentId, labelmap, True):
        raise ValueError(f"Segment '{segment.GetName()}' of {label} has no binary labelmap representation")
    shapeIjk = volume.shape_ijk
    reference = slicer.vtkOrientedImageData()
    reference.SetExtent(0, shapeIjk[0] - 1, 0, shapeIjk[1] - 1, 0, shapeIjk[2] - 1)
    reference.SetImageToWorldMatrix(vtkMatrixFromArray(volume.ijk_to_ras))
    resampled = slicer.vtkOrientedImageData()
    emptyLabelmap = labelmap.IsEmpty() if hasattr(labelmap, "IsEmpty") else labelmap.GetNumberOfPoints() == 0
    if emptyLabelmap:
        return np.zeros(volume.array.shape[-3:], dtype=bool)
    if not slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
            labelmap, reference, resampled, False, False):
        raise ValueError(f"Segment '{segment.GetName()}' of {label} could not be resampled onto {volume.name}")
    if tuple(resampled.GetExtent()) != tuple(reference.GetExtent()):
        raise ValueError(f"Segment '{segment.GetName()}' of {label}: resampling onto {volume.name} gave "
                         f"extent {resampled.GetExtent()} instead of {reference.GetExtent()}")
    values = numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars())
    return (values == segment.GetLabelValue()).reshape(volume.array.shape[-3:])


def segmentRegionsFromNode(segmentationNode, segmentIds=()):
    """Segments (all when segmentIds is empty) -> MaskRegions named after the segments, rasterised per volume."""
    from .regions import MaskRegion

    label = _nodeLabel(segmentationNode)
    if not segmentationNode.IsA("vtkMRMLSegmentationNode"):
        raise ValueError(f"{label} is a {segmentationNode.GetClassName()}, not a segmentation")
    segmentation = segmentationNode.GetSegmentation()
    segmentIds = list(segmentIds) or list(segmentation.GetSegmentIDs())
    if not segmentIds:
        raise ValueError(f"Segmentation {label} has no segments")
    regions = []
    for segmentId in segmentIds:
        segment = segmentation.GetSegment(segmentId)
        if segment is None:
            raise ValueError(f"Segmentation {label} has no segment '{segmentId}'")

        def maskFunction(volume, segmentId=segmentId):
            return segmentMaskOnVolume(segmentationNode, segmentId, volume)

        regions.append(MaskRegion(segment.GetName(), maskFunction))
    return regions


def regionsFromNode(node, circleDiameterMm=4.0, circlePlane="axial"):
    """Any region-defining node -> list of regions (ROI box, point circles/spheres, closed-curve polygon, segments)."""
    if node is None:
        return []
    if node.IsA("vtkMRMLMarkupsROINode"):
        return [boxRegionFromRoiNode(node)]
    if node.IsA("vtkMRMLMarkupsFiducialNode"):
        return pointRegionsFromNode(node, circleDiameterMm, circlePlane)
    if node.IsA("vtkMRMLMarkupsClosedCurveNode"):
        return [polygonRegionFromClosedCurveNode(node)]
    if node.IsA("vtkMRMLSegmentationNode"):
        return segmentRegionsFromNode(node)
    raise ValueError(f"{_nodeLabel(node)} is a {node.GetClassName()}: a region is a markups ROI, point list, "
                     "closed curve or segmentation")
