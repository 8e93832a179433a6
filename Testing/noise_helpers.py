"""Test images for the noise estimates: what a real scan with sharp anatomy and air around it looks like."""

import torch


def textured_disc_in_air(sigma, size=96, texture=0.4, batch=6, seed=8):
    """Magnitude images (Rician in the disc, Rayleigh in the air) of a disc of level 100 whose every pixel has its own
    random contrast (+-texture): anatomy at the grid's finest scale, as in a 4 mm EPI slice."""
    generator = torch.Generator().manual_seed(seed)
    rows, cols = torch.meshgrid(torch.arange(size) - size / 2, torch.arange(size) - size / 2, indexing="ij")
    disc = (rows**2 + cols**2 < (0.3 * size) ** 2).float()
    pixels = 1 + texture * (2 * torch.rand((batch, size, size), generator=generator) - 1)
    clean = 100 * disc * pixels
    real = clean + sigma * torch.randn(clean.shape, generator=generator)
    return torch.hypot(real, sigma * torch.randn(clean.shape, generator=generator))
