"""A 3D denoiser of the band the input measured, on the input's own grid (no zero-filling, no sharpening).

BM4D's lead over the slice networks at x2 lies in that band (docs/evaluation/model-comparison.md): it groups
similar 3D blocks across slices, which a network that sees one to five slices cannot. This MONAI BasicUNet sees
3D windows (16 slices) of the input as measured, told the noise level and the slice spacing / pixel size of the
grid (1 mm 3D series and 5 mm clinical stacks need different things from their neighbours). The whole volume is
covered by monai.inferers.sliding_window_inference with Gaussian blending.
"""

import numpy as np
import torch

ARCHITECTURES = {"unet32-3d": (32, 32, 64, 128, 128, 32), "unet16-3d": (16, 16, 32, 64, 128, 16)}
SPACING_RATIO_RANGE = (0.1, 20.0)  # slice spacing / input-grid pixel seen in training
WINDOW = (16, 96, 96)  # slices, rows, columns per window (multiples of 16: four poolings)
MARGIN = (4, 8, 8)  # replicated voxels around the volume: zero padding inside the net bends its outer voxels


class VolumeDenoiserNet(torch.nn.Module):
    def __init__(self, architecture: str = "unet32-3d"):
        super().__init__()
        from monai.networks.nets import BasicUNet

        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown 3D architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
        self.architecture = architecture
        self.unet = BasicUNet(spatial_dims=3, in_channels=3, out_channels=1, features=ARCHITECTURES[architecture],
                              act=("LeakyReLU", {"negative_slope": 0.1, "inplace": True}), norm=None,
                              upsample="deconv")

    def forward(self, volume: torch.Tensor, noise_level, spacing_ratio) -> torch.Tensor:
        """volume (B, 1, D, H, W) normalised; noise_level and spacing_ratio numbers or (B,) -> (B, 1, D, H, W)."""
        batch = volume.shape[0]

        def constant(values):
            values = torch.as_tensor(values, dtype=volume.dtype, device=volume.device).expand(batch)
            return values.view(-1, 1, 1, 1, 1).expand(-1, 1, *volume.shape[2:])

        ratio = torch.as_tensor(spacing_ratio, dtype=torch.float32, device=volume.device).clamp(*SPACING_RATIO_RANGE)
        return volume + self.unet(torch.cat([volume, constant(noise_level), constant(ratio.log())], dim=1))


def denoise_stack(model: VolumeDenoiserNet, stack: np.ndarray, sigma: float, spacing_ratio: float, device,
                  batch_size: int = 4) -> np.ndarray:
    """Denoise (S, r, c) slices on their own grid: sigma is the noise SD in the stack's units (the user's strength
    already applied), spacing_ratio = slice spacing / pixel size. Returns a new float32 (S, r, c) array."""
    import torch.nn.functional as F
    from monai.inferers import sliding_window_inference

    sample = np.abs(stack[:: max(1, stack.shape[0] // 16)]).ravel()
    level = float(np.percentile(sample, 99)) or float(np.abs(stack).max()) or 1.0
    volume = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32) / level)[None, None].to(device)
    (d, r, c) = MARGIN
    volume = F.pad(volume, (c, c, r, r, d, d), mode="replicate")
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        restored = sliding_window_inference(
            volume, WINDOW, batch_size, lambda window: model(window, sigma / level, spacing_ratio).float(),
            overlap=0.25, mode="gaussian", padding_mode="replicate")
    restored = restored[0, 0, d : d + stack.shape[0], r : r + stack.shape[1], c : c + stack.shape[2]]
    return (restored.float() * level).cpu().numpy()
