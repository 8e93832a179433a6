"""MRML glue of MRSuperRes: volume node <-> Volume, input checks, output node creation and display.

Imports slicer/vtk lazily; works in the Slicer application and on the bare Slicer core (slicer-core).
Everything works on the nodes' own scene, never on a global one.
"""

import numpy as np

from MRQualityMetricsLib.mrml_nodes import arrayFromVtkMatrix, vtkMatrixFromArray


def _sequenceBrowserShowing(volumeNode):
    """The sequence browser whose current time point this node shows, or None."""
    scene = volumeNode.GetScene()
    if scene is None:
        return None
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSequenceBrowserNode")):
        browser = scene.GetNthNodeByClass(index, "vtkMRMLSequenceBrowserNode")
        if browser.IsProxyNodeID(volumeNode.GetID()):
            return browser
    return None


def validateInputVolumeNode(volumeNode, checkVoxels=True):
    """Raise ValueError naming the problem when a node cannot be enhanced (the node is not modified).

    checkVoxels=False skips the scan for NaN/infinite voxels (cheap enough for every GUI update).
    """
    if volumeNode is None:
        raise ValueError("No input volume selected.")
    name = volumeNode.GetName()
    if volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
        raise ValueError(f"'{name}' is a label map (segment labels), not an MR image; select a scalar volume.")
    if volumeNode.IsA("vtkMRMLVectorVolumeNode") or volumeNode.IsA("vtkMRMLTensorVolumeNode"):
        raise ValueError(
            f"'{name}' is a vector/RGB volume; MRSuperRes needs a scalar MR image "
            "(convert it with the 'Vector to Scalar Volume' module first)."
        )
    if not volumeNode.IsA("vtkMRMLScalarVolumeNode"):
        raise ValueError(f"'{name}' ({volumeNode.GetClassName()}) is not a scalar volume.")
    browser = _sequenceBrowserShowing(volumeNode)
    if browser is not None:
        raise ValueError(
            f"'{name}' is one time point of the sequence '{browser.GetName()}' (4D); MRSuperRes enhances 3D "
            "volumes: copy the time point to a new volume first (Sequences module)."
        )
    imageData = volumeNode.GetImageData()
    if imageData is None or imageData.GetPointData().GetScalars() is None or 0 in imageData.GetDimensions():
        raise ValueError(f"'{name}' has no image data (empty volume).")
    if imageData.GetNumberOfScalarComponents() != 1:
        raise ValueError(
            f"'{name}' has {imageData.GetNumberOfScalarComponents()} components per voxel (vector/RGB); "
            "MRSuperRes needs a scalar MR image."
        )
    dimensions = imageData.GetDimensions()
    if sum(size > 1 for size in dimensions) < 3:
        raise ValueError(
            f"'{name}' is not a 3D volume (size {dimensions[0]}x{dimensions[1]}x{dimensions[2]} voxels); "
            "MRSuperRes needs at least 2 voxels along every axis."
        )
    if not checkVoxels:
        return
    array = volumeFromNode(volumeNode, validate=False).array
    if np.issubdtype(array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise ValueError(f"'{name}' contains {bad} NaN or infinite voxel(s); fix or mask them first.")


def ijkToRasArray(volumeNode):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return arrayFromVtkMatrix(matrix)


def volumeFromNode(volumeNode, validate=True):
    """A Volume with a copy of the node's voxels [k, j, i] and its IJK-to-RAS (node coordinates)."""
    from vtk.util import numpy_support

    from MRQualityMetricsLib.volume import Volume

    if validate:
        validateInputVolumeNode(volumeNode)
    imageData = volumeNode.GetImageData()
    shape = tuple(reversed(imageData.GetDimensions()))
    array = numpy_support.vtk_to_numpy(imageData.GetPointData().GetScalars()).reshape(shape).copy()
    return Volume(array=array, ijk_to_ras=ijkToRasArray(volumeNode), name=volumeNode.GetName())


def statedAcquisitionMatrix(volumeNode, fileForInstance=None):
    """(rows, columns) acquired, as the DICOM header of the node's first instance states them, or None.

    A node loaded by Slicer's DICOM module keeps its instance UIDs in the "DICOM.instanceUIDs" attribute;
    fileForInstance(uid) gives the file (default: slicer.dicomDatabase.fileForInstance). A hint for finding a
    series the scanner zero-filled, so anything missing or inconsistent gives None, never an error."""
    from MRQualityMetricsLib.dicom_acquisition import stated_matrix_of_file

    uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
    if not uids or volumeNode.GetImageData() is None:
        return None
    if fileForInstance is None:
        try:
            import slicer

            fileForInstance = slicer.dicomDatabase.fileForInstance
        except (ImportError, AttributeError):
            return None
    path = fileForInstance(uids[0])
    stated = stated_matrix_of_file(path) if path else None
    columns, rows, _ = volumeNode.GetImageData().GetDimensions()
    # Only where the node's slices are the DICOM images (not resampled or reoriented since): stated <= grid.
    if stated is None or stated[0] > rows or stated[1] > columns:
        return None
    return stated


def updateNodeFromVolume(volumeNode, volume):
    """Replace the node's voxels and geometry with those of a Volume (deep copy)."""
    import vtk
    from vtk.util import numpy_support

    array = np.ascontiguousarray(volume.array)
    if array.ndim != 3:
        raise ValueError(f"{volume.name}: expected a 3D array, got shape {array.shape}")
    imageData = vtk.vtkImageData()
    imageData.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    imageData.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.reshape(-1), deep=True))
    wasModifying = volumeNode.StartModify()
    volumeNode.SetIJKToRASMatrix(vtkMatrixFromArray(volume.ijk_to_ras))
    volumeNode.SetAndObserveImageData(imageData)
    volumeNode.EndModify(wasModifying)


def readVolumeFile(path, volumeNode):
    """Read a volume file (the worker's result) through a volume storage node into volumeNode.

    The file is read into a detached node first, so a file that cannot be read leaves volumeNode unchanged.
    """
    import slicer

    loaded = slicer.vtkMRMLScalarVolumeNode()
    storageNode = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storageNode.SetFileName(str(path))
    storageNode.SetSingleFile(True)
    if not storageNode.ReadData(loaded) or loaded.GetImageData() is None:
        raise ValueError(f"cannot read the enhanced volume from {path}")
    wasModifying = volumeNode.StartModify()
    volumeNode.SetIJKToRASMatrix(vtkMatrixFromArray(ijkToRasArray(loaded)))
    volumeNode.SetAndObserveImageData(loaded.GetImageData())
    volumeNode.EndModify(wasModifying)


def writeVolumeFile(volumeNode, path):
    """Write the node's voxels and geometry to a file (NRRD for the worker) without touching the scene."""
    import slicer

    storageNode = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storageNode.SetFileName(str(path))
    storageNode.UseCompressionOff()
    if not storageNode.WriteData(volumeNode):
        raise OSError(f"cannot write '{volumeNode.GetName()}' to {path}")


def createOutputVolumeNode(inputVolume, scale):
    """New scalar volume node named after the input (inference.result_name), in the input's scene (no voxels yet)."""
    from .inference import result_name

    scene = inputVolume.GetScene()
    name = scene.GenerateUniqueName(result_name(inputVolume.GetName(), scale))
    outputVolume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    return outputVolume


def finishOutputVolumeNode(inputVolume, outputVolume, description=""):
    """Make the output look and sit like the input: same parent transform, display settings and study."""
    outputVolume.SetAndObserveTransformNodeID(inputVolume.GetTransformNodeID())
    if description:
        outputVolume.SetAttribute("MRSuperRes.settings", description)
    if outputVolume.GetDisplayNode() is None:
        outputVolume.CreateDefaultDisplayNodes()
    inputDisplay = inputVolume.GetDisplayNode()
    outputDisplay = outputVolume.GetDisplayNode()
    if inputDisplay is not None and outputDisplay is not None:
        # Same window/level and colours as the input, so that the two look alike when compared.
        outputDisplay.SetAndObserveColorNodeID(inputDisplay.GetColorNodeID())
        outputDisplay.SetAutoWindowLevel(inputDisplay.GetAutoWindowLevel())
        if not inputDisplay.GetAutoWindowLevel():
            outputDisplay.SetWindowLevel(inputDisplay.GetWindow(), inputDisplay.GetLevel())
    placeInInputStudy(inputVolume, outputVolume)


def placeInInputStudy(inputVolume, outputVolume):
    """Put the output next to the input in Subject Hierarchy (the input's study, or wherever it is)."""
    import slicer

    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(inputVolume.GetScene())
    inputItem = shNode.GetItemByDataNode(inputVolume)
    parentItem = shNode.GetItemParent(inputItem) if inputItem else shNode.GetSceneItemID()
    outputItem = shNode.GetItemByDataNode(outputVolume)
    if outputItem:
        shNode.SetItemParent(outputItem, parentItem)
    else:  # the application's subject hierarchy plugins normally add the item; without them, add it here
        shNode.CreateItem(parentItem, outputVolume)


def showInSliceViews(outputVolume, inputVolume, foregroundOpacity=0.5):
    """Output as background and the input as foreground at 50 % in every slice view, for comparison."""
    scene = outputVolume.GetScene()
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        compositeNode = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
        compositeNode.SetBackgroundVolumeID(outputVolume.GetID())
        compositeNode.SetForegroundVolumeID(inputVolume.GetID() if inputVolume is not None else None)
        compositeNode.SetForegroundOpacity(foregroundOpacity)
