"""Reconstruction fidelity against a known truth: PSNR, SSIM, NRMSE inside a head mask and over the whole image.

Conventions (the same for every method; the caller gives every method the same crop of the same truth):
- data range = maximum of the reference (truth) volume unless given, for the mask and the whole image alike
  (fastMRI convention: per-volume maximum).
- PSNR = 10 log10(data_range^2 / MSE), MSE over the voxels considered.
- NRMSE = ||test - ref|| / ||ref|| over the voxels considered (skimage's "euclidean" normalisation).
- SSIM: skimage structural_similarity on each 2D slice along the slice axis (processing is slice-wise and
  slices may be thick), 7x7 uniform window, with the given data range; the local SSIM map is averaged over the
  mask voxels (or all voxels). Slices smaller than 7x7 are not allowed.
- Head mask: truth above 10 % of its 99th percentile, closed (2 iterations, 3x3x3), holes filled in 3D and per
  slice, largest connected component kept.
"""

import math

import numpy as np

from MRSuperResLib.simulate import array_axis, resolve_slice_axis

_SSIM_WINDOW = 7


def head_mask(truth, threshold_fraction: float = 0.1) -> np.ndarray:
    """Boolean head/object mask of a truth volume [k, j, i]."""
    from scipy import ndimage

    truth = np.asarray(truth, dtype=np.float64)
    if truth.ndim != 3:
        raise ValueError(f"head mask: expected a 3D volume, got shape {truth.shape}")
    high = np.percentile(truth, 99)
    if not high > 0:
        raise ValueError("head mask: the truth volume has no positive signal")
    mask = truth > threshold_fraction * high
    mask = ndimage.binary_closing(mask, structure=np.ones((3, 3, 3)), iterations=2, border_value=0) | mask
    mask = ndimage.binary_fill_holes(mask)
    for axis in range(3):
        mask = np.stack([ndimage.binary_fill_holes(plane) for plane in np.moveaxis(mask, axis, 0)], axis=axis)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
        mask = labels == (1 + int(np.argmax(sizes)))
    return mask


def _check_pair(test, reference, mask):
    test = np.asarray(test, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if test.shape != reference.shape:
        raise ValueError(f"fidelity: test shape {test.shape} differs from reference shape {reference.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != reference.shape:
            raise ValueError(f"fidelity: mask shape {mask.shape} differs from reference shape {reference.shape}")
        if not mask.any():
            raise ValueError("fidelity: the mask is empty")
    return test, reference, mask


def _data_range(reference, data_range):
    value = float(reference.max()) if data_range is None else float(data_range)
    if not value > 0:
        raise ValueError(f"fidelity: data range must be > 0, got {value}")
    return value


def psnr(test, reference, mask=None, data_range=None) -> float:
    test, reference, mask = _check_pair(test, reference, mask)
    data_range = _data_range(reference, data_range)
    error = (test - reference) if mask is None else (test - reference)[mask]
    mse = float(np.mean(error**2))
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def nrmse(test, reference, mask=None) -> float:
    test, reference, mask = _check_pair(test, reference, mask)
    if mask is not None:
        test, reference = test[mask], reference[mask]
    norm = float(np.linalg.norm(reference))
    if norm == 0:
        raise ValueError("fidelity: NRMSE is undefined for an all-zero reference")
    return float(np.linalg.norm(test - reference)) / norm


def ssim_map(test, reference, data_range=None, slice_axis: int = 0) -> np.ndarray:
    """Local SSIM of each 2D slice along numpy axis `slice_axis`, stacked back to the volume's shape."""
    from skimage.metrics import structural_similarity

    test, reference, _ = _check_pair(test, reference, None)
    data_range = _data_range(reference, data_range)
    if test.ndim == 2:
        test, reference, slice_axis = test[None], reference[None], 0
    planes_test = np.moveaxis(test, slice_axis, 0)
    planes_ref = np.moveaxis(reference, slice_axis, 0)
    if min(planes_ref.shape[1:]) < _SSIM_WINDOW:
        raise ValueError(f"fidelity: slices of shape {planes_ref.shape[1:]} are smaller than the SSIM window {_SSIM_WINDOW}")
    maps = [
        structural_similarity(ref, tst, data_range=data_range, win_size=_SSIM_WINDOW, full=True)[1]
        for tst, ref in zip(planes_test, planes_ref)
    ]
    return np.moveaxis(np.stack(maps), 0, slice_axis)


def ssim(test, reference, mask=None, data_range=None, slice_axis: int = 0) -> float:
    test, reference, mask = _check_pair(test, reference, mask)
    local = ssim_map(test, reference, data_range, slice_axis)
    return float(local.mean() if mask is None else local[mask].mean())


def fidelity_metrics(test, reference, mask, data_range=None, slice_axis: int = 0) -> dict:
    """psnr/ssim/nrmse inside `mask` (suffix _mask) and over the whole image (suffix _whole).

    slice_axis: numpy axis of the [k, j, i] arrays along which SSIM is computed slice by slice.
    """
    test, reference, mask = _check_pair(test, reference, mask)
    if mask is None:
        raise ValueError("fidelity: a mask is required (use head_mask(truth))")
    data_range = _data_range(reference, data_range)
    local = ssim_map(test, reference, data_range, slice_axis)
    return {
        "psnr_mask": psnr(test, reference, mask, data_range),
        "psnr_whole": psnr(test, reference, None, data_range),
        "ssim_mask": float(local[mask].mean()),
        "ssim_whole": float(local.mean()),
        "nrmse_mask": nrmse(test, reference, mask),
        "nrmse_whole": nrmse(test, reference, None),
    }


def slice_array_axis(ijk_to_ras, slice_axis="auto") -> int:
    """numpy axis of the slice direction (same choice as simulation, baselines and the network)."""
    return array_axis(resolve_slice_axis(ijk_to_ras, slice_axis))
