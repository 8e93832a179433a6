"""Enhance a volume: Fourier zero-fill (ZIP) the in-plane axes, then restore slice by slice with the network.

Memory stays bounded: slices are zero-filled and restored in batches (with their neighbours for 2.5D
context) and written into the preallocated output. On CUDA out-of-memory the batch is halved, then the
run continues on the CPU. Intensities are normalised per slice stack exactly as in training
(99th percentile), and restored on output. A Wiener data-consistency step then brings the band the input
measured back from the input wherever the network's output says it holds signal (data_consistency.py).
"""

import threading
import warnings

import numpy as np

from .simulate import (
    array_axis,
    check_volume_array,
    fourier_sample_positions,
    in_plane_shape,
    resampled_geometry,
    resolve_slice_axis,
    spread_slices,
)

SCALES = (1, 2, 3)
NOISE_SLICES = 24
# The blind estimate reads up to this multiple of the noise in the air before the cap acts: 1.25 is the upper
# quartile of that ratio in training batches (median 0.91), so only inputs beyond what the network saw are capped.
# (1.0 gained more on real EPI series but cost smooth templates up to 0.36 dB: docs/evaluation/real-scans.md.)
BLIND_TO_AIR_LIMIT = 1.25
CROP_SLICES = 32  # slices per k-space crop of a scanner-zero-filled input, and per division by a noise map
_MODEL_CACHE = {}


class EnhanceCancelled(RuntimeError):
    """Raised when the cancel event is set during enhance()."""


def output_geometry(ijk_to_ras, shape_kji, scale, slice_axis="auto"):
    """(output shape [k, j, i], output IJK-to-RAS) of enhance(), without running it."""
    axis = resolve_slice_axis(ijk_to_ras, slice_axis)
    out_shape = in_plane_shape(tuple(shape_kji), axis, scale)
    return out_shape, resampled_geometry(ijk_to_ras, tuple(shape_kji), out_shape)


def resolve_device(device="auto"):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available (use --device auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return torch.device(device)


def model_for(model_id=None, device="auto", models_dir=None):
    """The catalogue model enhance() runs: model_id, else the catalogue's default for the device that `device`
    resolves to (the quality model on GPUs, the fast one on CPUs)."""
    from .model_catalog import get_model

    return get_model(model_id, resolve_device(device).type, models_dir)


def _model(info, device):
    import torch

    key = (info.id, str(info.file), str(device))
    if key not in _MODEL_CACHE:
        from .model_catalog import build_model

        _MODEL_CACHE.clear()  # keep one model resident
        # channels-last convolutions run ~1.7x faster on CPUs (oneDNN) and no slower on GPUs.
        _MODEL_CACHE[key] = build_model(info).to(device, memory_format=torch.channels_last)
    return _MODEL_CACHE[key]


def _validate(array, scale, denoise):
    array = check_volume_array(array)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if not 0.0 <= float(denoise) <= 1.0:
        raise ValueError(f"denoise strength must be between 0 and 1, got {denoise}")
    return array


# Replicated pixels around each slice: without them the network's zero padding bends the outer ~3 output
# pixels of a slice whose border is not dark by up to 4 % (a constant image must stay constant).
BORDER_MARGIN = 8


def _pad_to_multiple(tensor, multiple=16, margin=BORDER_MARGIN):
    """Replicate-pad `margin` pixels on every side, then up to a multiple of `multiple` (the U-Net's poolings)."""
    import torch.nn.functional as F

    rows, cols = tensor.shape[-2:]
    pad_rows, pad_cols = (-(rows + 2 * margin)) % multiple, (-(cols + 2 * margin)) % multiple
    tensor = F.pad(tensor, (margin, margin + pad_cols, margin, margin + pad_rows), mode="replicate")
    return tensor, rows, cols


def _to_device(slices, device):
    import torch

    return torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32)).to(device)


def _zip(tensor, out_rows_cols):
    """k-space zero-fill of (S, R, C) slices to out_rows_cols (the slices themselves when already there)."""
    from .degradation import fourier_resample

    if tuple(tensor.shape[-2:]) == tuple(out_rows_cols):
        return tensor
    return fourier_resample(tensor, out_rows_cols)


def _volume_noise_sigma(stack, out_rows_cols, device):
    """Noise SD of the volume (absolute units): median over slices with foreground of the blind estimate the
    network was trained with (noise_estimation.estimate_noise_sigma_blind), at most BLIND_TO_AIR_LIMIT times the
    noise read in the air (noise_estimation.estimate_background_sigma) where the air can be read."""
    import torch

    from .noise_estimation import estimate_background_sigma, estimate_noise_sigma_blind

    # Noise is one level for the whole volume: a spread-out subset of slices estimates it as well as all of them.
    subset = _to_device(spread_slices(stack, NOISE_SLICES), device)
    estimates = []
    for start in range(0, subset.shape[0], 8):  # 8 at a time: their zero-filled copies may be 9x larger
        input_grid = subset[start : start + 8]
        estimates.append(estimate_noise_sigma_blind(_zip(input_grid, out_rows_cols), input_grid).cpu())
    values = torch.cat(estimates)
    values = values[values > 0]
    blind = float(values.median()) if values.numel() else 0.0
    air = estimate_background_sigma(subset)
    return blind if air is None else min(blind, BLIND_TO_AIR_LIMIT * air)


def _from_acquired_matrix(stack, acquired_matrix, stated_matrix=None):
    """The (S, r, c) slices as acquired: the empty band of a scanner-zero-filled grid cropped away."""
    from .acquired_matrix import detect_acquired_matrix, parse_acquired_matrix
    from .degradation import fourier_resample

    acquired_matrix = parse_acquired_matrix(acquired_matrix)
    grid = tuple(stack.shape[1:])
    if acquired_matrix is None:
        return stack
    if acquired_matrix == "auto":
        acquired = detect_acquired_matrix(stack, stated_matrix)
    else:
        acquired = acquired_matrix
    if any(a > g for a, g in zip(acquired, grid)):
        raise ValueError(f"acquired matrix {acquired[0]}x{acquired[1]} is larger than the slices' grid "
                         f"{grid[0]}x{grid[1]}")
    if tuple(acquired) == grid:
        return stack
    if acquired_matrix == "auto":
        evidence = ("the DICOM header's acquisition matrix, confirmed by the spectrum"
                    if stated_matrix is not None and tuple(acquired) == tuple(stated_matrix) else "the spectrum")
        warnings.warn(f"the slices ({grid[0]}x{grid[1]}) look zero-filled by the scanner from {acquired[0]}x"
                      f"{acquired[1]} ({evidence}): restoring from the acquired matrix (acquired_matrix='off' treats "
                      "the grid as measured)", stacklevel=3)
    import torch

    # A few slices at a time: the whole stack's complex spectrum would take 4 x its memory at once.
    cropped = np.empty((stack.shape[0], *acquired), dtype=np.float32)
    for first in range(0, stack.shape[0], CROP_SLICES):
        chunk = torch.from_numpy(np.ascontiguousarray(stack[first : first + CROP_SLICES]))
        cropped[first : first + CROP_SLICES] = fourier_resample(chunk, acquired).numpy()
    return cropped


def spacing_ratio(out_geometry, axis) -> float:
    """Slice spacing / mean in-plane pixel size of the output grid (what a spacing-conditioned model is told)."""
    spacings = np.linalg.norm(np.asarray(out_geometry, dtype=float)[:3, :3], axis=0)
    return float(spacings[axis] / np.delete(spacings, axis).mean())


def context_indices(first, last, half, count):
    """(n, 2 half + 1) stack indices of slices first..last-1 and their `half` neighbours each side. Past an end of
    the stack a neighbour is taken from the other side of its centre (mirrored about the centre, not the edge):
    a repeated slice would hand the network copies of the centre's own noise, which it never saw in training."""
    centre = np.arange(first, last)[:, None]
    offsets = np.arange(-half, half + 1)[None, :]
    indices = centre + offsets
    indices = np.clip(np.where((indices < 0) | (indices >= count), centre - offsets, indices), 0, count - 1)
    if count > 1:  # a stack too short for the mirror: the centre's nearest other slice
        nearest = np.where(centre + 1 < count, centre + 1, centre - 1)
        indices = np.where((indices == centre) & (offsets != 0), nearest, indices)
    return indices


def _restore_batch(model, stack, first, last, out_rows_cols, sigma, denoise, device, ratio=None):
    """Restore slices first..last-1 of the (S, R, C) stack; returns (n, R', C') float32 numpy.
    ratio: slice spacing / output pixel size (used by spacing-conditioned models)."""
    import torch

    context = model.context_slices
    indices = context_indices(first, last, context // 2, stack.shape[0])
    needed, position = np.unique(indices, return_inverse=True)  # zero-fill each slice once
    zipped = _zip(_to_device(stack[needed], device), out_rows_cols)
    windows = zipped[torch.from_numpy(position.reshape(indices.shape)).to(zipped.device)]  # (n, context, R', C')
    flat = windows.reshape(windows.shape[0], -1)
    # 99th percentile of |x|: robust to outliers, and positive for images with negative values too.
    sample = flat[:, :: max(1, flat.shape[1] // 65536)].abs()
    levels = sample.kthvalue(max(1, int(0.99 * sample.shape[1])), dim=1).values  # a selection, not a sort
    levels = torch.where(levels > 0, levels, flat.abs().amax(1)).clamp(min=1e-12)
    inputs, rows, cols = _pad_to_multiple(windows / levels.view(-1, 1, 1, 1))
    inputs = inputs.contiguous(memory_format=torch.channels_last)
    condition = (denoise * sigma / levels).float()
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        restored = model(inputs, condition, ratio)
    restored = restored[:, 0, BORDER_MARGIN : BORDER_MARGIN + rows, BORDER_MARGIN : BORDER_MARGIN + cols]
    return (restored.float() * levels.view(-1, 1, 1)).cpu().numpy()


def _relative_noise(noise_map, stack, grid, voxel_array_axis):
    """The noise map of the (S, r, c) `stack` (cropped from a `grid`-sized one when the scanner zero-filled it) in
    its pixel coordinates, or None for one noise level: noise_map None / "off", "auto" (estimated from the stack),
    or an array of relative noise SD on the input volume's own grid."""
    from . import noise_map as maps

    if noise_map is None or (isinstance(noise_map, str) and noise_map == "off"):
        return None
    if isinstance(noise_map, str):
        if noise_map != "auto":
            raise ValueError(f"noise map must be 'auto', 'off' or an array, got {noise_map!r}")
        return maps.estimate_relative_noise_map(stack)
    given = np.moveaxis(np.asarray(noise_map), voxel_array_axis, 0)
    if given.shape != (stack.shape[0], *grid):
        raise ValueError(f"the noise map's shape {np.moveaxis(given, 0, voxel_array_axis).shape} is not the input's")
    # A pixel of the grid lies where the Fourier resampling from the acquired matrix put it.
    return maps.from_array(given).moved((lambda x: x, *(
        (lambda x, n=n, size=size: fourier_sample_positions(n, size, x)) for n, size in zip(stack.shape[1:], grid))))


def _divided_by_map(stack, relative_noise):
    """A new (S, r, c) stack: `stack` over the map, a few slices at a time (no stack-sized map at once)."""
    divided = np.empty(stack.shape, dtype=np.float32)
    pixels = [np.arange(n) for n in stack.shape[1:]]
    for first in range(0, stack.shape[0], CROP_SLICES):
        last = min(stack.shape[0], first + CROP_SLICES)
        np.divide(stack[first:last], relative_noise.on_grid(np.arange(first, last), *pixels), out=divided[first:last])
    return divided


def _tuned_noise_scale(model, stack, out_rows_cols, sigma, device, ratio, batch_size, magnitude):
    """The factor of sigma for the Wiener step of this volume (wiener_tuning.py), chosen at full strength on a slab;
    1 where it is off, when super-resolving, or where the GPU runs out of memory for it."""
    import torch

    from . import wiener_tuning
    from .data_consistency import restored_on_input_grid

    if not wiener_tuning.ENABLED or (tuple(stack.shape[1:]) != tuple(out_rows_cols)
                                     and not wiener_tuning.WHEN_SUPER_RESOLVING):
        return 1.0

    def network(slab):
        return np.concatenate([_restore_batch(model, slab, first, min(len(slab), first + batch_size), out_rows_cols,
                                              sigma, 1.0, device, ratio) for first in range(0, len(slab), batch_size)])

    def restore(slab, output, factor):
        return restored_on_input_grid(slab, output, sigma, device, magnitude, factor)

    first, last = wiener_tuning.slab_bounds(stack)
    try:
        return wiener_tuning.choose_noise_scale(stack[first:last], sigma, network, restore)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        warnings.warn("GPU out of memory while choosing the Wiener step's noise level: using the estimate as it is",
                      stacklevel=3)
        return 1.0


def enhance(array, ijk_to_ras, scale=2, denoise=1.0, device="auto", slice_axis="auto", batch_size=None,
            model_id=None, progress=None, cancel: threading.Event | None = None, models_dir=None,
            data_consistency=True, acquired_matrix="auto", stated_matrix=None, noise_map="off"):
    """Super-resolve (scale 2 or 3) and/or denoise (any scale, 1 = denoise only) a volume.

    array [k, j, i] real values; returns (float32 array, IJK-to-RAS) on the output grid, which lies on the
    input in physical space (see output_geometry). data_consistency=False returns the network's output alone,
    without the Wiener step that brings the measured band back from the input (data_consistency.py).
    acquired_matrix: "auto" detects a series the scanner zero-filled and restores it from the matrix it acquired
    (acquired_matrix.py); (rows, columns) of the slices says it; None or "off" treats the grid as measured.
    stated_matrix: (rows, columns) = (j, i) the DICOM header states (Volume.metadata["acquisition_matrix"]); "auto"
    uses it where the slices are the k slices and their spectrum drops at its edges.
    noise_map: for noise that varies across the volume (parallel imaging): "auto" estimates a smooth map of its
    relative SD (noise_map.py), an array of the input's shape gives it (a g-factor map); the input divided by it is
    restored with one noise level and the output multiplied by it again. "off" (default) assumes one level.
    """
    import torch

    array = _validate(array, scale, denoise)
    magnitude = float(array.min()) >= 0  # a magnitude image: Rician noise, non-negative output
    ijk_to_ras = np.asarray(ijk_to_ras, dtype=float)
    axis = resolve_slice_axis(ijk_to_ras, slice_axis)
    out_shape, out_geometry = output_geometry(ijk_to_ras, array.shape, scale, axis)
    torch_device = resolve_device(device)
    info = model_for(model_id, torch_device.type, models_dir)
    model = _model(info, torch_device)

    stack = np.moveaxis(array, array_axis(axis), 0).astype(np.float32, copy=False)
    out_stack_shape = np.moveaxis(np.empty(out_shape, dtype=bool), array_axis(axis), 0).shape
    out_rows_cols = out_stack_shape[1:]
    grid = stack.shape[1:]
    stack = _from_acquired_matrix(stack, acquired_matrix, stated_matrix if axis == 2 else None)
    relative_noise = _relative_noise(noise_map, stack, grid, array_axis(axis))
    if relative_noise is not None:  # a new array: the input is never changed
        stack = _divided_by_map(stack, relative_noise)
        out_positions = [fourier_sample_positions(n, size) for n, size in zip(stack.shape[1:], out_rows_cols)]
    output = np.empty(out_stack_shape, dtype=np.float32)
    sigma = _volume_noise_sigma(stack, out_rows_cols, torch_device) if denoise > 0 else 0.0
    pixels = out_rows_cols[0] * out_rows_cols[1]
    if batch_size is None:  # 512 x 512 output slices per batch: 16 on a GPU (~2.3 GB), 4 on a CPU
        batch_size = max(1, (16 if torch_device.type == "cuda" else 4) * 512 * 512 // pixels)
    ratio = spacing_ratio(out_geometry, axis)
    restorer = None
    if data_consistency:
        from .data_consistency import MeasuredBandRestorer

        # The noise the Wiener step assumes is the network's condition (strength 0 keeps the measured band as is),
        # times the factor that suits this volume at full strength.
        noise_scale = _tuned_noise_scale(model, stack, out_rows_cols, sigma, torch_device, ratio, batch_size, magnitude)
        restorer = MeasuredBandRestorer(stack, output, denoise * sigma, torch_device, magnitude=magnitude,
                                        noise_scale=noise_scale)
    total, done, finished, rescaled = stack.shape[0], 0, 0, 0
    while finished < total:
        if cancel is not None and cancel.is_set():
            raise EnhanceCancelled("enhancement cancelled")
        last = min(total, done + batch_size)
        try:
            if done < last:
                output[done:last] = _restore_batch(model, stack, done, last, out_rows_cols, sigma, denoise,
                                                   torch_device, ratio)
                done = last
            # The Wiener step follows a few slices behind the network; a slice counts once it is final.
            finished = restorer.advance(done) if restorer is not None else done
            if relative_noise is not None and finished > rescaled:  # final slices go back to the input's noise map
                output[rescaled:finished] *= relative_noise.on_grid(np.arange(rescaled, finished), *out_positions)
                rescaled = finished
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if batch_size > 1:
                batch_size = max(1, batch_size // 2)
                warnings.warn(f"GPU out of memory: retrying with batches of {batch_size} slices", stacklevel=2)
            else:
                warnings.warn("GPU out of memory even for one slice: continuing on the CPU (slower)", stacklevel=2)
                torch_device = torch.device("cpu")
                model = _model(info, torch_device)
                if restorer is not None:
                    restorer.device = torch_device
            continue
        if progress is not None:
            progress(finished, total)
    if magnitude:
        np.maximum(output, 0, out=output)
    return np.moveaxis(output, 0, array_axis(axis)), out_geometry


def result_name(input_name, scale):
    """Name of an enhanced volume, the same in the module, the console and the CLI: 'T2 enhanced ×2', or
    'T2 denoised' for scale 1."""
    return f"{input_name} denoised" if int(scale) == 1 else f"{input_name} enhanced \u00d7{int(scale)}"


def enhance_volume(volume, scale=2, **kwargs):
    """enhance() on a MRQualityMetricsLib Volume; the result is named by result_name(). A DICOM series' stated
    acquisition matrix (its metadata) helps find a zero-filled one."""
    kwargs.setdefault("stated_matrix", volume.metadata.get("acquisition_matrix"))
    array, geometry = enhance(volume.array, volume.ijk_to_ras, scale=scale, **kwargs)
    return volume.with_array(array, ijk_to_ras=geometry, name=result_name(volume.name, scale))
