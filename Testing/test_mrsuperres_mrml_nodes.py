"""MRSuperRes MRML glue on the real Slicer core: node <-> Volume, input checks, output node placement and
display, NRRD hand-over to the worker. No model needed."""

import hashlib

import numpy as np
import pytest

from MRSuperResLib import mrml_nodes


def obliqueLeftHanded():
    """IJK-to-RAS with rotated axes, anisotropic spacing and a left-handed (mirrored) frame."""
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    directions = rotation @ np.diag([1.0, 1.0, -1.0])  # determinant -1
    matrix = np.eye(4)
    matrix[:3, :3] = directions * np.array([0.8, 0.9, 4.0])
    matrix[:3, 3] = (12.5, -30.0, 7.25)
    return matrix


def nodeChecksum(node):
    """Digest of the voxels and geometry of a volume node."""
    digest = hashlib.sha256()
    imageData = node.GetImageData()
    if imageData is not None and imageData.GetPointData().GetScalars() is not None:
        from vtk.util import numpy_support

        digest.update(numpy_support.vtk_to_numpy(imageData.GetPointData().GetScalars()).tobytes())
        digest.update(str(imageData.GetDimensions()).encode())
    digest.update(mrml_nodes.ijkToRasArray(node).tobytes())
    return digest.hexdigest()


def assertSamePhysicalVolume(arrayA, ijkToRasA, arrayB, ijkToRasB):
    """Both volumes hold the same values at the same RAS positions (axes may be flipped or permuted, as
    Slicer's reader does to make a left-handed grid right-handed)."""
    assert arrayA.size == arrayB.size
    k, j, i = np.indices(arrayB.shape).reshape(3, -1)
    ras = ijkToRasB @ np.vstack([i, j, k, np.ones_like(i)])
    ijkA = (np.linalg.inv(ijkToRasA) @ ras)[:3]
    np.testing.assert_allclose(ijkA, np.rint(ijkA), atol=1e-4)
    iA, jA, kA = np.rint(ijkA).astype(int)
    np.testing.assert_array_equal(arrayA[kA, jA, iA], arrayB[k, j, i])


def test_volume_round_trip_keeps_voxels_and_oblique_left_handed_geometry(slicerApp):
    array = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5) - 20  # negative values too
    node = slicerApp.addVolumeFromArrayAndGeometry(array, obliqueLeftHanded(), "oblique")
    volume = mrml_nodes.volumeFromNode(node)
    np.testing.assert_array_equal(volume.array, array)
    np.testing.assert_allclose(volume.ijk_to_ras, obliqueLeftHanded(), atol=1e-12)
    assert volume.name == "oblique"
    volume.array[0, 0, 0] = 999  # a copy: the node must not change
    assert mrml_nodes.volumeFromNode(node).array[0, 0, 0] == -20

    target = slicerApp.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "target")
    mrml_nodes.updateNodeFromVolume(target, volume)
    np.testing.assert_array_equal(mrml_nodes.volumeFromNode(target).array, volume.array)
    np.testing.assert_allclose(mrml_nodes.ijkToRasArray(target), obliqueLeftHanded(), atol=1e-12)


def test_nrrd_hand_over_keeps_geometry_and_unreadable_result_leaves_node_unchanged(slicerApp, tmp_path):
    array = (np.random.default_rng(1).random((4, 6, 5)) * 1000).astype(np.float32)
    node = slicerApp.addVolumeFromArrayAndGeometry(array, obliqueLeftHanded(), "in")
    path = tmp_path / "input.nrrd"
    mrml_nodes.writeVolumeFile(node, path)
    assert slicerApp.scene.GetNumberOfNodesByClass("vtkMRMLStorageNode") == 0  # no storage node left behind

    # The worker reads the file with SimpleITK: same voxels and geometry (RAS <-> LPS handled by both sides).
    import SimpleITK as sitk

    from MRQualityMetricsLib.volume import volume_from_sitk, volume_to_sitk

    read = volume_from_sitk(sitk.ReadImage(str(path)))
    np.testing.assert_array_equal(read.array, array)
    np.testing.assert_allclose(read.ijk_to_ras, obliqueLeftHanded(), atol=1e-6)

    # The worker's result (written by SimpleITK) comes back through a volume storage node.
    result = read.with_array(read.array * 2)
    resultPath = tmp_path / "enhanced.nrrd"
    sitk.WriteImage(volume_to_sitk(result), str(resultPath))
    output = slicerApp.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "out")
    mrml_nodes.readVolumeFile(resultPath, output)
    assertSamePhysicalVolume(array * 2, obliqueLeftHanded(), mrml_nodes.volumeFromNode(output).array,
                             mrml_nodes.ijkToRasArray(output))

    before = nodeChecksum(output)
    broken = tmp_path / "broken.nrrd"
    broken.write_bytes(b"NRRD0004\ntype: float\ndimension: 3\nsizes: 9 9 9\nencoding: raw\n\n\x00\x01")
    with pytest.raises(ValueError, match="cannot read"):
        mrml_nodes.readVolumeFile(broken, output)
    assert nodeChecksum(output) == before


def rgbScalarNode(slicerApp):
    return slicerApp.addVolumeFromArrayAndGeometry(np.zeros((3, 4, 5, 3), np.uint8), np.eye(4), "rgb in scalar")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda app: app.addVolumeFromArrayAndGeometry(np.zeros((3, 4, 5), np.uint8), np.eye(4), "labels",
                                                       "vtkMRMLLabelMapVolumeNode"), "label map"),
        (lambda app: app.addVolumeFromArrayAndGeometry(np.zeros((3, 4, 5, 3), np.uint8), np.eye(4), "color",
                                                       "vtkMRMLVectorVolumeNode"), "vector/RGB"),
        (rgbScalarNode, "3 components"),
        (lambda app: app.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty"), "no image data"),
        (lambda app: app.addVolumeFromArrayAndGeometry(np.ones((1, 16, 16), np.float32), np.eye(4), "slice"),
         "not a 3D volume"),
        (lambda app: app.addVolumeFromArrayAndGeometry(np.ones((8, 1, 16), np.float32), np.eye(4), "line-ish"),
         "not a 3D volume"),
    ],
)
def test_inputs_that_cannot_be_enhanced_raise_value_error_naming_the_node(slicerApp, make, message):
    node = make(slicerApp)
    before = nodeChecksum(node)
    with pytest.raises(ValueError, match=message) as error:
        mrml_nodes.validateInputVolumeNode(node)
    assert f"'{node.GetName()}'" in str(error.value)
    assert nodeChecksum(node) == before


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels_are_rejected_and_counted(slicerApp, bad):
    array = np.ones((3, 4, 5), np.float32)
    array[1, 2, 3] = bad
    array[2, 0, 0] = bad
    node = slicerApp.addVolumeFromArrayAndGeometry(array, np.eye(4), "nan volume")
    mrml_nodes.validateInputVolumeNode(node, checkVoxels=False)  # the cheap GUI check does not scan voxels
    with pytest.raises(ValueError, match="2 NaN or infinite"):
        mrml_nodes.validateInputVolumeNode(node)


def test_time_point_of_a_sequence_is_rejected(slicerApp):
    import slicer

    scene = slicerApp.scene
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine")
    for index in range(2):
        frame = slicer.vtkMRMLScalarVolumeNode()
        mrml_nodes.updateNodeFromVolume(frame, mrml_nodes.volumeFromNode(
            slicerApp.addVolumeFromArrayAndGeometry(np.full((3, 4, 5), index, np.float32), np.eye(4), "f"),
            validate=False))
        sequence.SetDataNodeAtValue(frame, str(index))
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", "cine browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    slicerApp.logic("Sequences").UpdateProxyNodesFromSequences(browser)
    proxy = browser.GetProxyNode(sequence)
    assert proxy is not None
    with pytest.raises(ValueError, match="sequence 'cine browser'.*4D"):
        mrml_nodes.validateInputVolumeNode(proxy)


def test_output_sits_in_the_input_study_with_its_transform_and_display(slicerApp):
    import slicer

    scene = slicerApp.scene
    inputNode = slicerApp.addVolumeFromArrayAndGeometry(np.ones((3, 4, 5), np.float32), np.eye(4), "PD")
    inputNode.GetDisplayNode().AutoWindowLevelOff()
    inputNode.GetDisplayNode().SetWindowLevel(300, 150)
    transform = slicerApp.addLinearTransformNode(np.diag([1.0, 1.0, 1.0, 1.0]), "registration")
    inputNode.SetAndObserveTransformNodeID(transform.GetID())
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = shNode.CreateSubjectItem(shNode.GetSceneItemID(), "Patient")
    study = shNode.CreateStudyItem(patient, "Study")
    if shNode.GetItemByDataNode(inputNode):
        shNode.SetItemParent(shNode.GetItemByDataNode(inputNode), study)
    else:  # the bare Slicer core has no subject hierarchy plugins that add items for new nodes
        shNode.CreateItem(study, inputNode)
    compositeNodes = [scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]

    outputNode = mrml_nodes.createOutputVolumeNode(inputNode, 2)
    mrml_nodes.updateNodeFromVolume(outputNode, mrml_nodes.volumeFromNode(inputNode))
    mrml_nodes.finishOutputVolumeNode(inputNode, outputNode, "settings text")
    mrml_nodes.showInSliceViews(outputNode, inputNode)

    assert outputNode.GetName() == "PD enhanced ×2"
    assert shNode.GetItemParent(shNode.GetItemByDataNode(outputNode)) == study
    assert outputNode.GetTransformNodeID() == transform.GetID()
    assert outputNode.GetAttribute("MRSuperRes.settings") == "settings text"
    display = outputNode.GetDisplayNode()
    assert (display.GetAutoWindowLevel(), display.GetWindow(), display.GetLevel()) == (0, 300, 150)
    for compositeNode in compositeNodes:
        assert compositeNode.GetBackgroundVolumeID() == outputNode.GetID()
        assert compositeNode.GetForegroundVolumeID() == inputNode.GetID()
        assert compositeNode.GetForegroundOpacity() == pytest.approx(0.5)
    # A second output of the same input gets a unique name.
    assert mrml_nodes.createOutputVolumeNode(inputNode, 2).GetName() != outputNode.GetName()


def test_stated_acquisition_matrix_comes_from_the_nodes_dicom_instance(slicerApp, tmp_path):
    """As Slicer's DICOM module leaves it: instance UIDs in the node's attribute, files in the DICOM database."""
    import pydicom
    from sample_series import copy_sample_slices

    def zero_filled(dataset, position):
        dataset.AcquisitionMatrix = [0, 128, 96, 0]

    folder = copy_sample_slices(tmp_path / "dicom", (7, 8), edit=zero_filled)
    files = {str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID): str(path)
             for path in sorted(folder.glob("*.dcm"))}
    node = slicerApp.addVolumeFromArrayAndGeometry(np.zeros((2, 256, 256), np.int16), np.eye(4), "dicom")
    assert mrml_nodes.statedAcquisitionMatrix(node, files.get) is None  # not loaded from DICOM
    node.SetAttribute("DICOM.instanceUIDs", " ".join(files))
    assert mrml_nodes.statedAcquisitionMatrix(node, files.get) == (128, 96)
    assert mrml_nodes.statedAcquisitionMatrix(node, {}.get) is None  # not in the database
    assert mrml_nodes.statedAcquisitionMatrix(node) is None  # no Slicer DICOM database on the bare core
    small = slicerApp.addVolumeFromArrayAndGeometry(np.zeros((2, 100, 100), np.int16), np.eye(4), "resampled")
    small.SetAttribute("DICOM.instanceUIDs", " ".join(files))
    assert mrml_nodes.statedAcquisitionMatrix(small, files.get) is None  # its slices are not the DICOM images
