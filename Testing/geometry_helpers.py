"""Rotation and homogeneous-matrix helpers shared by the MRML tests."""

import numpy as np


def rotation(axis, degrees):
    """3x3 rotation about `axis` by `degrees` (Rodrigues)."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    angle = np.radians(degrees)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def homogeneous(rotationMatrix=None, translation=(0, 0, 0)):
    """4x4 matrix from a 3x3 rotation (identity when None) and a translation."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.eye(3) if rotationMatrix is None else rotationMatrix
    matrix[:3, 3] = translation
    return matrix
