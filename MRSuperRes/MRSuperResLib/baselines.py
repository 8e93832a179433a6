"""Classical super-resolution / denoising pipelines to compare the network against.

Every method takes a degraded volume (array [k, j, i], IJK-to-RAS) and resamples the two in-plane axes (the voxel
axes other than the slice axis, chosen like the network: see simulate.resolve_slice_axis) by `scale`, returning
the same output shape and geometry as the network: round(n * scale) samples per in-plane axis, spacing divided
by n_out / n_in, output samples at the input positions of degradation.fourier_resample
(simulate.fourier_sample_positions: m * n_in / n_out whenever voxel 0 stays shared), so every method's output
lands on the same grid.

- zero_fill: sinc interpolation by zero-filling k-space (what scanners do; keeps Gibbs ringing and noise).
- bspline: cubic B-spline interpolation (scipy map_coordinates, order 3, mirror boundary).
- bicubic: Keys cubic convolution (a = -0.5) interpolation, the "bicubic" of image editors.
- nlm: 2D non-local means per slice (skimage, fast mode, patch 5, distance 6, h = 0.8 sigma), then zero-fill.
  sigma per slice by wavelet MAD (Donoho: median |finest diagonal detail| / 0.6745, the estimator of
  skimage.restoration.estimate_sigma) with the Haar wavelet, as skimage's needs PyWavelets. Slice-wise 2D like the network and about
  50x faster than 3D NLM; 3D NLM costs minutes per volume on one CPU core.
- bm4d: BM4D (PyPI `bm4d`, only when installed) with the same sigma estimate over all slices, then zero-fill.
"""

import math

import numpy as np

from MRSuperResLib.simulate import (
    array_axis,
    check_volume_array,
    fourier_sample_positions,
    in_plane_shape,
    resampled_geometry,
    resolve_slice_axis,
)

_BATCH_SLICES = 16
_BM4D_MIN_SLICES = 8


def _prepare(array, ijk_to_ras, scale, slice_axis):
    array = check_volume_array(array).astype(np.float32, copy=False)
    try:
        valid = math.isfinite(float(scale)) and float(scale) >= 1
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"scale must be a number >= 1, got {scale!r}")
    ijk_to_ras = np.asarray(ijk_to_ras, dtype=float)
    if ijk_to_ras.shape != (4, 4):
        raise ValueError(f"IJK-to-RAS must be a 4x4 matrix, got shape {ijk_to_ras.shape}")
    voxel_axis = resolve_slice_axis(ijk_to_ras, slice_axis)
    out_shape = in_plane_shape(array.shape, voxel_axis, float(scale))
    return array, ijk_to_ras, array_axis(voxel_axis), out_shape


def _per_slice(array, axis, out_shape, function):
    """Apply function(slices (S, rows, cols), out_rows_cols) -> (S, out_rows, out_cols) along the slice axis."""
    slices = np.moveaxis(array, axis, 0)
    out_rows_cols = tuple(n for a, n in enumerate(out_shape) if a != axis)
    out = np.empty((slices.shape[0],) + out_rows_cols, dtype=np.float32)
    for start in range(0, slices.shape[0], _BATCH_SLICES):
        out[start:start + _BATCH_SLICES] = function(slices[start:start + _BATCH_SLICES], out_rows_cols)
    return np.ascontiguousarray(np.moveaxis(out, 0, axis))


def _fourier(slices, out_rows_cols):
    import torch

    from MRSuperResLib import degradation

    tensor = torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32))
    return degradation.fourier_resample(tensor, out_rows_cols).numpy()


def zero_fill(array, ijk_to_ras, scale=2, slice_axis="auto"):
    """Sinc interpolation by k-space zero-filling. Returns (array float32, ijk_to_ras)."""
    array, ijk_to_ras, axis, out_shape = _prepare(array, ijk_to_ras, scale, slice_axis)
    out = _per_slice(array, axis, out_shape, _fourier)
    return out, resampled_geometry(ijk_to_ras, array.shape, out.shape)


def _bspline(slices, out_rows_cols):
    from scipy.ndimage import map_coordinates

    rows = fourier_sample_positions(slices.shape[1], out_rows_cols[0])
    cols = fourier_sample_positions(slices.shape[2], out_rows_cols[1])
    grid = np.stack(np.meshgrid(rows, cols, indexing="ij"))
    return np.stack([map_coordinates(image, grid, order=3, mode="mirror") for image in slices.astype(np.float64)])


def bspline(array, ijk_to_ras, scale=2, slice_axis="auto"):
    """Cubic B-spline interpolation on the in-plane axes. Returns (array float32, ijk_to_ras)."""
    array, ijk_to_ras, axis, out_shape = _prepare(array, ijk_to_ras, scale, slice_axis)
    out = _per_slice(array, axis, out_shape, _bspline)
    return out, resampled_geometry(ijk_to_ras, array.shape, out.shape)


def keys_weights(n_in, positions, a=-0.5) -> np.ndarray:
    """(n_out, n_in) matrix of Keys cubic convolution weights, mirror boundary (sample -1 = sample 1)."""
    base = np.floor(positions).astype(int)
    matrix = np.zeros((len(positions), n_in))
    for tap in range(-1, 3):
        index = base + tap
        distance = np.abs(positions - index)
        weight = np.where(
            distance <= 1,
            (a + 2) * distance**3 - (a + 3) * distance**2 + 1,
            np.where(distance < 2, a * distance**3 - 5 * a * distance**2 + 8 * a * distance - 4 * a, 0.0),
        )
        if n_in > 1:
            period = 2 * (n_in - 1)
            index = np.mod(index, period)
            index = np.where(index >= n_in, period - index, index)
        else:
            index = np.zeros_like(index)
        np.add.at(matrix, (np.arange(len(positions)), index), weight)
    return matrix


def _bicubic(slices, out_rows_cols):
    row_weights = keys_weights(slices.shape[1], fourier_sample_positions(slices.shape[1], out_rows_cols[0]))
    col_weights = keys_weights(slices.shape[2], fourier_sample_positions(slices.shape[2], out_rows_cols[1]))
    return row_weights @ slices.astype(np.float64) @ col_weights.T  # separable: rows, then columns


def bicubic(array, ijk_to_ras, scale=2, slice_axis="auto"):
    """Keys cubic convolution (bicubic) interpolation on the in-plane axes. Returns (array float32, ijk_to_ras)."""
    array, ijk_to_ras, axis, out_shape = _prepare(array, ijk_to_ras, scale, slice_axis)
    out = _per_slice(array, axis, out_shape, _bicubic)
    return out, resampled_geometry(ijk_to_ras, array.shape, out.shape)


def wavelet_mad_sigma(images) -> float:
    """Gaussian noise SD from the median absolute Haar diagonal detail (HH) coefficient / 0.6745 (Donoho).

    images: one 2D image or a stack (S, rows, cols); coefficients of all slices are pooled.
    """
    images = np.asarray(images, dtype=np.float64)
    images = images[None] if images.ndim == 2 else images
    rows, cols = (images.shape[1] // 2) * 2, (images.shape[2] // 2) * 2
    if rows == 0 or cols == 0:
        return 0.0
    x = images[:, :rows, :cols]
    diagonal = (x[:, 0::2, 0::2] - x[:, 0::2, 1::2] - x[:, 1::2, 0::2] + x[:, 1::2, 1::2]) / 2
    return float(np.median(np.abs(diagonal)) / 0.6745)


def nlm_denoise_slices(slices) -> np.ndarray:
    """2D non-local means on each slice (S, rows, cols), sigma estimated per slice."""
    from skimage.restoration import denoise_nl_means

    out = np.empty(slices.shape, dtype=np.float32)
    for index, image in enumerate(slices.astype(np.float64)):
        sigma = wavelet_mad_sigma(image)
        if sigma <= 0 or min(image.shape) < 3:
            out[index] = image
            continue
        out[index] = denoise_nl_means(image, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5,
                                      patch_distance=6)
    return out


def nlm(array, ijk_to_ras, scale=2, slice_axis="auto"):
    """Non-local means per slice, then zero-fill. Returns (array float32, ijk_to_ras)."""
    array, ijk_to_ras, axis, out_shape = _prepare(array, ijk_to_ras, scale, slice_axis)
    out = _per_slice(array, axis, out_shape, lambda slices, size: _fourier(nlm_denoise_slices(slices), size))
    return out, resampled_geometry(ijk_to_ras, array.shape, out.shape)


def bm4d_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("bm4d") is not None


def bm4d(array, ijk_to_ras, scale=2, slice_axis="auto"):
    """BM4D on the whole volume (sigma by wavelet MAD), then zero-fill. Needs PyPI `bm4d`."""
    if not bm4d_available():
        raise ValueError("the bm4d method needs the `bm4d` package, which is not installed")
    import bm4d as bm4d_package

    array, ijk_to_ras, axis, out_shape = _prepare(array, ijk_to_ras, scale, slice_axis)
    sigma = wavelet_mad_sigma(np.moveaxis(array, axis, 0))
    # BM4D refuses volumes thinner than its blocks (5 voxels in the Wiener stage); thin stacks (the 4-slice
    # sharpness phantom) are mirrored along the slice axis for it and cropped back.
    short = max(0, _BM4D_MIN_SLICES - array.shape[axis])
    padding = [(0, 0)] * 3
    padding[axis] = (0, short)
    padded = np.pad(array, padding, mode="symmetric") if short else array
    denoised = np.asarray(bm4d_package.bm4d(padded, sigma_psd=sigma), dtype=np.float32)
    denoised = np.take(denoised, np.arange(array.shape[axis]), axis=axis)
    out = _per_slice(denoised, axis, out_shape, _fourier)
    return out, resampled_geometry(ijk_to_ras, array.shape, out.shape)


METHODS = {"zero_fill": zero_fill, "bspline": bspline, "bicubic": bicubic, "nlm": nlm, "bm4d": bm4d}


def available_methods() -> list:
    """Names of the classical methods usable here (bm4d only when its package is installed)."""
    return [name for name in METHODS if name != "bm4d" or bm4d_available()]


def run_method(name, array, ijk_to_ras, scale=2, slice_axis="auto"):
    if name not in METHODS:
        raise ValueError(f"unknown classical method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name](array, ijk_to_ras, scale=scale, slice_axis=slice_axis)
