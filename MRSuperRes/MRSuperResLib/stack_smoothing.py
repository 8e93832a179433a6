"""Separable Gaussian smoothing of (S, H, W) slice stacks on any torch device."""

import torch
import torch.nn.functional as F

from .simulate import gaussian_kernel


def kernel_tensor(sd: float, device) -> torch.Tensor:
    return torch.from_numpy(gaussian_kernel(sd)).float().to(device)


def smooth_along(stack: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """1D convolution of a (S, H, W) stack along `dim`, mirrored at its ends (repeated when too short to mirror)."""
    moved = stack.movedim(dim, -1)
    shape = moved.shape
    radius = kernel.numel() // 2
    rows = moved.reshape(-1, 1, shape[-1])
    rows = F.pad(rows, (radius, radius), mode="reflect" if shape[-1] > radius else "replicate")
    return F.conv1d(rows, kernel.view(1, 1, -1)).view(shape).movedim(-1, dim)


def gaussian_smooth(stack: torch.Tensor, sd_slices: float, sd_pixels: float) -> torch.Tensor:
    """Gaussian of SD `sd_slices` across slices and `sd_pixels` in-plane."""
    for dim, sd in ((0, sd_slices), (1, sd_pixels), (2, sd_pixels)):
        stack = smooth_along(stack, kernel_tensor(sd, stack.device), dim)
    return stack
