"""MRML nodes -> core objects on the real Slicer core: geometry with parent transforms, markups in world
coordinates, regions (ROI, points, closed curve, segments) and clear errors for nodes that cannot be measured."""

import numpy as np
import pytest
from geometry_helpers import homogeneous, rotation

from MRQualityMetricsLib import mrml_nodes
from MRQualityMetricsLib.region_stats import region_statistics
from MRQualityMetricsLib.regions import BoxRegion, CircleRegion, SphereRegion
from MRQualityMetricsLib.volume import make_ijk_to_ras


def transformPoints(matrix, points):
    points = np.atleast_2d(points)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def test_volume_geometry_includes_the_parent_linear_transform(slicerApp):
    ijkToRas = make_ijk_to_ras([0.6, 0.5, 1.2], rotation([1, 2, 3], 25), [-10, 4, 7])
    array = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    volumeNode = slicerApp.addVolumeFromArrayAndGeometry(array, ijkToRas, "oblique")
    parent = homogeneous(rotation([0, 1, 0], 30), [5, -3, 2])
    grandParent = homogeneous(rotation([1, 0, 0], -15), [1, 2, 3])
    outer = slicerApp.addLinearTransformNode(grandParent, "outer")
    inner = slicerApp.addLinearTransformNode(parent, "inner")
    inner.SetAndObserveTransformNodeID(outer.GetID())
    volumeNode.SetAndObserveTransformNodeID(inner.GetID())

    volume = mrml_nodes.volumeFromNode(volumeNode)

    np.testing.assert_allclose(volume.ijk_to_ras, grandParent @ parent @ ijkToRas, atol=1e-9)
    np.testing.assert_array_equal(volume.array, array)
    assert volume.array.dtype == np.int16 and volume.name == "oblique"
    np.testing.assert_allclose(volume.spacing, [0.6, 0.5, 1.2])
    # A copy: changing it leaves the node's voxels alone.
    volume.array[0, 0, 0] = 999
    assert slicerApp.scene.GetNodeByID(volumeNode.GetID()).GetImageData().GetScalarComponentAsDouble(0, 0, 0, 0) == 0


def test_non_linear_parent_transform_is_refused(slicerApp):
    import vtk

    volumeNode = slicerApp.addVolumeFromArrayAndGeometry(np.zeros((3, 4, 5)), np.eye(4), "warped")
    warp = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for point in ([0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10], [5, 5, 5]):
        source.InsertNextPoint(point)
        target.InsertNextPoint(np.add(point, [0, 0, 1.0 if point == [5, 5, 5] else 0.0]))
    warp.SetSourceLandmarks(source)
    warp.SetTargetLandmarks(target)
    warp.SetBasisToR()
    transformNode = slicerApp.scene.AddNewNodeByClass("vtkMRMLTransformNode", "thin plate")
    transformNode.SetAndObserveTransformToParent(warp)
    volumeNode.SetAndObserveTransformNodeID(transformNode.GetID())
    with pytest.raises(ValueError, match="non-linear transform 'thin plate'.*Harden"):
        mrml_nodes.volumeFromNode(volumeNode)


@pytest.mark.parametrize(
    "className, array, message",
    [
        ("vtkMRMLVectorVolumeNode", np.zeros((3, 4, 5, 3), np.uint8), "only scalar"),
        ("vtkMRMLLabelMapVolumeNode", np.zeros((3, 4, 5), np.uint8), "label map"),
        ("vtkMRMLScalarVolumeNode", np.zeros((3, 4, 5, 2), np.float32), "2 components"),
    ],
)
def test_unmeasurable_volumes_raise(slicerApp, className, array, message):
    node = slicerApp.addVolumeFromArrayAndGeometry(array, np.eye(4), "bad", className)
    with pytest.raises(ValueError, match=message):
        mrml_nodes.volumeFromNode(node)


def test_empty_and_sequence_volumes_raise(slicerApp):
    empty = slicerApp.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "nothing")
    with pytest.raises(ValueError, match="'nothing' is empty"):
        mrml_nodes.volumeFromNode(empty)
    with pytest.raises(ValueError, match="No volume"):
        mrml_nodes.volumeFromNode(None)

    frame = slicerApp.addVolumeFromArrayAndGeometry(np.ones((3, 4, 5)), np.eye(4), "frame")
    sequence = slicerApp.scene.AddNewNodeByClass("vtkMRMLSequenceNode", "dynamic")
    sequence.SetDataNodeAtValue(frame, "0")
    browser = slicerApp.scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", "browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    browser.AddProxyNode(frame, sequence, False)
    assert browser.IsProxyNodeID(frame.GetID())
    with pytest.raises(ValueError, match="4D"):
        mrml_nodes.volumeFromNode(frame)


def test_line_and_curve_points_are_read_in_world_coordinates(slicerApp):
    toWorld = homogeneous(rotation([0, 0, 1], 90), [10, 0, 0])
    transformNode = slicerApp.addLinearTransformNode(toWorld, "move")
    lineNode = slicerApp.addLineNode([1, 2, 3], [4, 6, 3], "septum")
    lineNode.SetAndObserveTransformNodeID(transformNode.GetID())
    curveNode = slicerApp.addCurveNode([[0, 0, 0], [3, 0, 0], [3, 4, 0]], "bend")
    curveNode.SetAndObserveTransformNodeID(transformNode.GetID())

    line = mrml_nodes.lineSpecFromNode(lineNode)
    curve = mrml_nodes.lineSpecFromNode(curveNode)

    assert line.name == "septum"
    np.testing.assert_allclose(line.points_ras, transformPoints(toWorld, [[1, 2, 3], [4, 6, 3]]), atol=1e-9)
    # The linear curve's interpolated points follow its two segments: total length 7 mm, through the corner.
    lengths = np.linalg.norm(np.diff(curve.points_ras, axis=0), axis=1)
    assert lengths.sum() == pytest.approx(7.0, abs=1e-6)
    np.testing.assert_allclose(curve.points_ras[0], transformPoints(toWorld, [0, 0, 0])[0], atol=1e-9)
    np.testing.assert_allclose(curve.points_ras[-1], transformPoints(toWorld, [3, 4, 0])[0], atol=1e-9)
    assert np.min(np.linalg.norm(curve.points_ras - transformPoints(toWorld, [3, 0, 0]), axis=1)) < 1e-6


def test_bad_lines_raise(slicerApp):
    onePoint = slicerApp.scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", "half")
    onePoint.AddControlPoint(0, 0, 0)
    with pytest.raises(ValueError, match="'half' needs 2 placed points, has 1"):
        mrml_nodes.lineSpecFromNode(onePoint)
    with pytest.raises(ValueError, match="zero length"):
        mrml_nodes.lineSpecFromNode(slicerApp.addLineNode([1, 1, 1], [1, 1, 1], "dot"))
    closed = slicerApp.addClosedCurveNode([[0, 0, 0], [5, 0, 0], [0, 5, 0]], "loop")
    with pytest.raises(ValueError, match="closed curve"):
        mrml_nodes.lineSpecFromNode(closed)


def test_roi_becomes_a_box_in_world_coordinates(slicerApp):
    axes = rotation([0, 0, 1], 30)
    roiNode = slicerApp.addRoiNode([1, 2, 3], [4, 6, 8], axes, "box")
    toWorld = homogeneous(rotation([1, 0, 0], 90), [0, 10, 0])
    roiNode.SetAndObserveTransformNodeID(slicerApp.addLinearTransformNode(toWorld).GetID())

    box = mrml_nodes.boxRegionFromRoiNode(roiNode)

    assert isinstance(box, BoxRegion) and box.name == "box"
    np.testing.assert_allclose(box.center_ras, transformPoints(toWorld, [1, 2, 3])[0], atol=1e-9)
    np.testing.assert_allclose(box.size_mm, [4, 6, 8], atol=1e-9)
    np.testing.assert_allclose(box.axes_ras, toWorld[:3, :3] @ axes, atol=1e-9)


def test_roi_voxel_count_on_a_volume(slicerApp):
    # 1 mm voxels; a 5 x 5 x 3 mm box centred on a voxel centre holds 5 x 5 x 3 voxel centres.
    volumeNode = slicerApp.addVolumeFromArrayAndGeometry(np.ones((20, 20, 20)), np.eye(4), "grid")
    shift = slicerApp.addLinearTransformNode(homogeneous(translation=[2, 0, 0]))
    roiNode = slicerApp.addRoiNode([8, 10, 10], [5, 5, 3], name="cube")
    roiNode.SetAndObserveTransformNodeID(shift.GetID())
    box = mrml_nodes.boxRegionFromRoiNode(roiNode)
    volume = mrml_nodes.volumeFromNode(volumeNode)
    mask = box.mask(volume)
    assert mask.sum() == 75
    k, j, i = np.nonzero(mask)
    assert (i.min(), i.max(), j.min(), j.max(), k.min(), k.max()) == (8, 12, 8, 12, 9, 11)


def test_points_become_circles_or_spheres(slicerApp):
    volume = mrml_nodes.volumeFromNode(
        slicerApp.addVolumeFromArrayAndGeometry(np.ones((20, 20, 20)), np.eye(4), "grid"))
    pointNode = slicerApp.addPointListNode([[10, 10, 10], [5, 5, 5]], "rois", labels=["wm", "csf"])
    circles = mrml_nodes.pointRegionsFromNode(pointNode, 4.0, "axial")
    assert [region.name for region in circles] == ["wm", "csf"]
    assert all(isinstance(region, CircleRegion) and region.plane == "axial" for region in circles)
    # Lattice points within 2 mm of the centre in one axial slice: 1 + 4 + 4 + 4.
    mask = circles[0].mask(volume)
    assert mask.sum() == 13 and set(np.nonzero(mask)[0]) == {10}

    single = slicerApp.addPointListNode([[10, 10, 10]], "lesion")
    (sphere,) = mrml_nodes.pointRegionsFromNode(single, 4.0, "sphere")
    assert isinstance(sphere, SphereRegion) and sphere.name == "lesion"
    assert sphere.mask(volume).sum() == 33  # lattice points in a ball of radius 2

    with pytest.raises(ValueError, match="Unknown region shape 'oblique'"):
        mrml_nodes.pointRegionsFromNode(single, 4.0, "oblique")
    with pytest.raises(ValueError, match="no placed point"):
        mrml_nodes.pointRegionsFromNode(slicerApp.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "e"))


def test_closed_curve_becomes_a_polygon_on_one_slice(slicerApp):
    volume = mrml_nodes.volumeFromNode(
        slicerApp.addVolumeFromArrayAndGeometry(np.ones((20, 20, 20)), np.eye(4), "grid"))
    square = [[7.1, 7.1, 10], [12.9, 7.1, 10], [12.9, 12.9, 10], [7.1, 12.9, 10]]
    polygon = mrml_nodes.polygonRegionFromClosedCurveNode(slicerApp.addClosedCurveNode(square, "square"))
    mask = polygon.mask(volume)
    assert mask.sum() == 25 and set(np.nonzero(mask)[0]) == {10}  # centres 8..12 in i and j


def test_segments_are_rasterised_on_each_volume_grid(slicerApp):
    # Segment drawn on a 1 mm grid; measured on a 0.5 mm grid of the same field of view and on a moved volume.
    mask = np.zeros((10, 12, 14), bool)
    mask[2:5, 3:6, 4:8] = True
    segmentationNode, (segmentId,) = slicerApp.addSegmentationFromMasks({"white matter": mask}, np.eye(4))
    coarse = mrml_nodes.volumeFromNode(slicerApp.addVolumeFromArrayAndGeometry(np.ones((10, 12, 14)), np.eye(4), "c"))
    fine = mrml_nodes.volumeFromNode(slicerApp.addVolumeFromArrayAndGeometry(
        np.ones((20, 24, 28)), make_ijk_to_ras([0.5, 0.5, 0.5], origin=[-0.25, -0.25, -0.25]), "f"))

    (region,) = mrml_nodes.segmentRegionsFromNode(segmentationNode)
    assert region.name == "white matter"
    np.testing.assert_array_equal(region.mask(coarse), mask)
    assert region.mask(fine).sum() == mask.sum() * 8
    np.testing.assert_array_equal(region.mask(fine)[::2, ::2, ::2], mask)

    # A transform on the segmentation moves the segment in world space.
    segmentationNode.SetAndObserveTransformNodeID(
        slicerApp.addLinearTransformNode(homogeneous(translation=[1, 0, 0])).GetID())
    np.testing.assert_array_equal(region.mask(coarse), np.roll(mask, 1, axis=2))
    assert region_statistics(coarse, region).voxels == mask.sum()

    with pytest.raises(ValueError, match="no segment 'missing'"):
        mrml_nodes.segmentRegionsFromNode(segmentationNode, ["missing"])


def test_regions_from_node_dispatches_and_rejects_other_nodes(slicerApp):
    assert isinstance(mrml_nodes.regionsFromNode(slicerApp.addRoiNode([0, 0, 0], [1, 1, 1]))[0], BoxRegion)
    assert mrml_nodes.regionsFromNode(None) == []
    with pytest.raises(ValueError, match="a region is a markups ROI"):
        mrml_nodes.regionsFromNode(slicerApp.addLineNode([0, 0, 0], [1, 0, 0], "not a region"))
