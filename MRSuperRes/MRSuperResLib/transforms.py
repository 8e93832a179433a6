"""The orthonormal DCT shared by the Wiener filters of the data-consistency step."""

import math

import torch


def dct_matrix(size: int, device=None) -> torch.Tensor:
    """Orthonormal DCT-II matrix (rows = frequencies): white noise keeps its variance per coefficient."""
    k = torch.arange(size, dtype=torch.float64).view(-1, 1)
    n = torch.arange(size, dtype=torch.float64).view(1, -1)
    matrix = torch.cos(math.pi * (2 * n + 1) * k / (2 * size)) * math.sqrt(2.0 / size)
    matrix[0] /= math.sqrt(2.0)
    return matrix.to(device=device, dtype=torch.float32)
