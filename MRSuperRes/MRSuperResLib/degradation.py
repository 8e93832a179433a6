"""MRI acquisition physics on 2D slices, batched in torch (CPU or GPU).

Used both by the training pipeline (on the GPU, thousands of slices a second) and by the
`mrsuperres simulate` command (on a whole volume). Conventions:
- The last two tensor dimensions are the in-plane axes (rows, columns); leading dimensions are batch.
- Centred orthonormal DFT. Resizing k-space keeps the DC sample at index n // 2, so a volume and its
  Fourier-resampled version share the position of their first voxel and the spacing divides by the factor
  (a sample m of the output lies at input index m * n_in / n_out).
- Intensities are preserved by resizing (a constant image stays the same constant).
- Noise sigma is the standard deviation of each of the real and imaginary image channels. Because the
  DFT is orthonormal and resizing rescales intensity, sigma per voxel stays the same after Fourier
  zero-filling (the noise only becomes correlated).
"""

import math

import torch


def fft2c(images: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D DFT over the last two dimensions."""
    shifted = torch.fft.ifftshift(images, dim=(-2, -1))
    return torch.fft.fftshift(torch.fft.fft2(shifted, norm="ortho"), dim=(-2, -1))


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """Inverse of fft2c."""
    shifted = torch.fft.ifftshift(kspace, dim=(-2, -1))
    return torch.fft.fftshift(torch.fft.ifft2(shifted, norm="ortho"), dim=(-2, -1))


def _centre_slices(size_from: int, size_to: int):
    """Index ranges that align the DC samples (at n // 2) of two centred spectra."""
    offset = size_from // 2 - size_to // 2
    if size_from >= size_to:  # cropping: take size_to samples from the larger spectrum (offset can be 0 either way)
        return slice(offset, offset + size_to), slice(0, size_to)
    return slice(0, size_from), slice(-offset, -offset + size_from)


def resize_kspace(kspace: torch.Tensor, shape) -> torch.Tensor:
    """Crop (truncate) or zero-pad a centred spectrum to `shape` (rows, columns)."""
    rows, cols = int(shape[0]), int(shape[1])
    out = kspace.new_zeros(kspace.shape[:-2] + (rows, cols))
    src_r, dst_r = _centre_slices(kspace.shape[-2], rows)
    src_c, dst_c = _centre_slices(kspace.shape[-1], cols)
    out[..., dst_r, dst_c] = kspace[..., src_r, src_c]
    return out


def _intensity_factor(shape_from, shape_to) -> float:
    return math.sqrt((shape_to[0] * shape_to[1]) / (shape_from[0] * shape_from[1]))


def fourier_resample(images: torch.Tensor, shape) -> torch.Tensor:
    """Resample real or complex images to `shape` by k-space truncation or zero-filling (sinc interpolation).

    Returns a complex tensor when the input is complex, else the real part.
    """
    in_shape = tuple(images.shape[-2:])
    kspace = resize_kspace(fft2c(images), shape)
    out = ifft2c(kspace) * _intensity_factor(in_shape, shape)
    return out if images.is_complex() else out.real


def apodisation_window(shape, strength: float, device=None) -> torch.Tensor:
    """Separable k-space filter that scanners apply against ringing.

    strength 0 = none (box), 1 = full Hann. The window is (1 - strength) + strength * hann.
    """
    windows = []
    for n in shape:
        position = torch.arange(n, device=device, dtype=torch.float32) - n // 2
        hann = 0.5 * (1 + torch.cos(math.pi * position / (n / 2 + 1)))
        windows.append((1 - strength) + strength * hann)
    return windows[0][:, None] * windows[1][None, :]


def partial_fourier_mask(shape, fraction: float, axis: int = 0, device=None) -> torch.Tensor:
    """Mask keeping `fraction` (0.5..1) of the phase-encode lines along `axis`; the missing ones are zero-filled."""
    if not 0.5 <= fraction <= 1.0:
        raise ValueError(f"partial Fourier fraction must be between 0.5 and 1, got {fraction}")
    n = shape[axis]
    keep_from = n - int(round(fraction * n))
    line_mask = torch.ones(n, device=device)
    line_mask[:keep_from] = 0
    return line_mask[:, None].expand(shape) if axis == 0 else line_mask[None, :].expand(shape)


def complex_noise(shape, sigma, generator=None, device=None) -> torch.Tensor:
    """Complex Gaussian noise, each channel with standard deviation sigma (broadcast over batch)."""
    real = torch.randn(shape, generator=generator, device=device)
    imag = torch.randn(shape, generator=generator, device=device)
    return torch.complex(real, imag) * sigma


def acquire(
    truth: torch.Tensor,
    acquired_shape,
    sigma,
    recon_shape=None,
    partial_fourier: float = 1.0,
    partial_fourier_axis: int = 0,
    apodisation: float = 0.0,
    phase: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    noise_map: torch.Tensor | None = None,
) -> torch.Tensor:
    """Simulate the magnitude image a scanner reconstructs from a high-resolution truth.

    truth: real (..., H, W) high-resolution object. acquired_shape: the acquisition matrix (fewer samples =
    lower resolution). sigma: noise std per real/imaginary channel on the acquired grid (scalar or a tensor
    broadcastable to the batch, shaped (..., 1, 1)). recon_shape: grid the scanner reconstructs on by
    zero-filling (default: acquired_shape). phase: optional smooth image phase (radians), making partial
    Fourier and noise behave as on real complex data. noise_map: optional relative noise SD per pixel of the
    acquired grid (..., *acquired_shape), as parallel imaging's g-factor makes it: the noise is drawn in the image
    domain and multiplied by it (None: white noise in k-space, the same draws as before the option existed).
    Returns the magnitude image on recon_shape: Rician in tissue, Rayleigh in air.
    """
    recon_shape = tuple(acquired_shape) if recon_shape is None else tuple(recon_shape)
    complex_truth = truth.to(torch.complex64)
    if phase is not None:
        complex_truth = complex_truth * torch.exp(1j * phase)
    kspace = resize_kspace(fft2c(complex_truth), acquired_shape) * _intensity_factor(truth.shape[-2:], acquired_shape)
    noise = complex_noise(kspace.shape, 1.0, generator=generator, device=kspace.device)
    if noise_map is not None:  # white in the image domain, then shaped by the map: the FFT keeps it white otherwise
        noise = fft2c(noise * noise_map.to(kspace.device))
    kspace = kspace + noise * torch.as_tensor(sigma, device=kspace.device)
    sampling = torch.ones(tuple(acquired_shape), device=kspace.device)
    if partial_fourier < 1.0:
        sampling = sampling * partial_fourier_mask(tuple(acquired_shape), partial_fourier, partial_fourier_axis, kspace.device)
    if apodisation > 0:
        sampling = sampling * apodisation_window(tuple(acquired_shape), apodisation, kspace.device)
    kspace = kspace * sampling
    image = ifft2c(resize_kspace(kspace, recon_shape)) * _intensity_factor(acquired_shape, recon_shape)
    return image.abs()


def smooth_random_phase(shape, batch: int, max_radians: float = math.pi, generator=None, device=None) -> torch.Tensor:
    """Low-order polynomial phase maps (B, H, W), like B0/coil phase in real MR data."""
    rows = torch.linspace(-1, 1, shape[0], device=device)[:, None]
    cols = torch.linspace(-1, 1, shape[1], device=device)[None, :]
    basis = torch.stack([torch.ones_like(rows * cols), rows + 0 * cols, cols + 0 * rows, rows * cols, rows**2 + 0 * cols, cols**2 + 0 * rows])
    weights = (torch.rand((batch, basis.shape[0]), generator=generator, device=device) * 2 - 1) * max_radians / 2
    return torch.einsum("bc,chw->bhw", weights, basis)


def foreground_mean(images: torch.Tensor) -> torch.Tensor:
    """Mean signal of the foreground (voxels above 10 % of the 99th percentile), per image (..., 1, 1)."""
    flat = images.flatten(-2)
    high = torch.quantile(flat.float(), 0.99, dim=-1, keepdim=True)
    mask = flat > 0.1 * high
    mean = (flat * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)
    return mean[..., None]


def sigma_for_snr(clean_images: torch.Tensor, snr) -> torch.Tensor:
    """Noise sigma giving SNR = mean foreground signal / sigma (per image, shape (..., 1, 1)).

    snr is a scalar or one value per leading index of clean_images.
    """
    snr = torch.as_tensor(snr, device=clean_images.device, dtype=torch.float32)
    return foreground_mean(clean_images) / snr.reshape(snr.shape + (1, 1))
