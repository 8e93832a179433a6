"""The restoration network: a MONAI BasicUNet that restores a Fourier-zero-filled (ZIP) slice.

Design (ZIP-then-restore, like the scanner's own zero-filled reconstruction): the input volume is first
resampled to the output grid by k-space zero-filling, so one network serves every scale (1x denoise-only,
2x, 3x) and also inputs that the scanner already zero-filled. The network sees the slice, its two
neighbours along the slice axis (2.5D context) and a constant channel holding the requested noise level
(estimated noise SD x user strength, in normalised units), and predicts a residual added to the slice.
"""

import torch

# Architecture presets; the catalogue names one per model file.
ARCHITECTURES = {
    "unet32": {"features": (32, 32, 64, 128, 256, 32)},
    "unet16": {"features": (16, 16, 32, 64, 128, 16)},
    "unet48": {"features": (48, 48, 96, 192, 384, 48)},  # the default quality model (configs/training/README.md)
}


class RestorationNet(torch.nn.Module):
    def __init__(self, architecture: str = "unet32", context_slices: int = 3):
        super().__init__()
        from monai.networks.nets import BasicUNet

        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
        if context_slices % 2 != 1:
            raise ValueError("context_slices must be odd (the restored slice sits in the middle)")
        self.architecture = architecture
        self.context_slices = context_slices
        self.unet = BasicUNet(
            spatial_dims=2,
            in_channels=context_slices + 1,
            out_channels=1,
            features=ARCHITECTURES[architecture]["features"],
            act=("LeakyReLU", {"negative_slope": 0.1, "inplace": True}),
            norm=None,  # no normalisation layers: intensities must be restored, not re-standardised
            upsample="deconv",
        )

    def forward(self, slices: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        """slices (B, context, H, W) normalised ZIP input; noise_level (B,) -> restored centre slice (B, 1, H, W)."""
        condition = noise_level.to(slices.dtype).view(-1, 1, 1, 1).expand(-1, 1, *slices.shape[-2:])
        centre = slices[:, self.context_slices // 2 : self.context_slices // 2 + 1]
        return centre + self.unet(torch.cat([slices, condition], dim=1))


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
