"""The restoration network: a MONAI BasicUNet that restores a Fourier-zero-filled (ZIP) slice.

Design (ZIP-then-restore, like the scanner's own zero-filled reconstruction): the input volume is first
resampled to the output grid by k-space zero-filling, so one network serves every scale (1x denoise-only,
2x, 3x) and also inputs that the scanner already zero-filled. The network sees the slice, its two
neighbours along the slice axis (2.5D context) and a constant channel holding the requested noise level
(estimated noise SD x user strength, in normalised units), and predicts a residual added to the slice.
A model with spacing_condition also gets a constant channel holding log(slice spacing / pixel size): how far
its neighbours lie decides how much they can tell about the slice, and 2D series run from 0.5 to 6 mm. (No shipped
model has it; it did not help a five-slice unet48: docs/evaluation/model-comparison.md, session 13.)
"""

import torch

# Architecture presets; the catalogue names one per model file.
ARCHITECTURES = {
    "unet32": {"features": (32, 32, 64, 128, 256, 32)},
    "unet16": {"features": (16, 16, 32, 64, 128, 16)},
    "unet48": {"features": (48, 48, 96, 192, 384, 48)},  # the default quality model (configs/training/README.md)
}

# Slice spacing / pixel size seen in training (0.5-6.5 mm slices, 0.35-1.6 mm pixels); beyond it the network is
# told the nearest ratio it knows.
SPACING_RATIO_RANGE = (0.3, 18.0)


class RestorationNet(torch.nn.Module):
    def __init__(self, architecture: str = "unet32", context_slices: int = 3, spacing_condition: bool = False):
        super().__init__()
        from monai.networks.nets import BasicUNet

        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
        if context_slices % 2 != 1:
            raise ValueError("context_slices must be odd (the restored slice sits in the middle)")
        self.architecture = architecture
        self.context_slices = context_slices
        self.spacing_condition = spacing_condition
        self.unet = BasicUNet(
            spatial_dims=2,
            in_channels=context_slices + 1 + int(spacing_condition),
            out_channels=1,
            features=ARCHITECTURES[architecture]["features"],
            act=("LeakyReLU", {"negative_slope": 0.1, "inplace": True}),
            norm=None,  # no normalisation layers: intensities must be restored, not re-standardised
            upsample="deconv",
        )

    def forward(self, slices: torch.Tensor, noise_level: torch.Tensor, spacing_ratio=None) -> torch.Tensor:
        """slices (B, context, H, W) normalised ZIP input; noise_level (B,) -> restored centre slice (B, 1, H, W).

        spacing_ratio: slice spacing / pixel size, a number or (B,); needed by (and only used by) a model with
        spacing_condition."""
        channels = [slices, self._constant(noise_level, slices)]
        if self.spacing_condition:
            if spacing_ratio is None:
                raise ValueError("this model is conditioned on the slice spacing: pass spacing_ratio")
            ratio = torch.as_tensor(spacing_ratio, dtype=torch.float32, device=slices.device)
            channels.append(self._constant(ratio.clamp(*SPACING_RATIO_RANGE).log().expand(slices.shape[0]), slices))
        centre = slices[:, self.context_slices // 2 : self.context_slices // 2 + 1]
        return centre + self.unet(torch.cat(channels, dim=1))

    @staticmethod
    def _constant(values: torch.Tensor, slices: torch.Tensor) -> torch.Tensor:
        """(B,) values as constant (B, 1, H, W) channels like the slices."""
        return values.to(slices.dtype).view(-1, 1, 1, 1).expand(-1, 1, *slices.shape[-2:])


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
