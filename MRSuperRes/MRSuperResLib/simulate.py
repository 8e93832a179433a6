"""Simulate a low-resolution, noisy MR acquisition of a whole 3D volume (the `mrsuperres simulate` command).

The two voxel axes other than the slice axis are the in-plane (k-space) axes. Each slice goes through
degradation.acquire: centred k-space truncation to round(n / scale) samples per in-plane axis, complex
Gaussian noise, optional partial Fourier along the first in-plane (phase-encode) axis, optional apodisation,
a smooth random image phase, then the magnitude. Optional extras before acquisition: a smooth multiplicative
bias field and a through-plane slice-profile blur (no decimation). Optional noise that varies smoothly across the
volume, as parallel imaging's g-factor makes it (noise_variation: the ratio of its largest to its smallest SD).

SNR = mean foreground signal of the clean low-resolution image / noise sigma, where sigma is the standard
deviation of each of the real and imaginary channels of the acquired (unfiltered) data (with varying noise: its
root mean square over the foreground, so the noise power equals that of uniform noise at the same SNR). It is
computed once per volume. Apodisation and partial Fourier then lower the image noise further, as on a scanner.

Geometry (Fourier-resampling convention of degradation.py): the in-plane spacing is multiplied by n_in / n_out and
the output keeps the position of voxel 0 whenever the sizes allow (see fourier_sample_positions: the centred DFT
aligns the samples n // 2; for e.g. 90 -> 45 voxel 0 moves by one input voxel, and the geometry says so). With scanner_zero_fill the result is zero-filled back onto the
input grid instead (the effective resolution is then coarser than the voxel spacing, as on scanners).
"""

import math
from dataclasses import dataclass

import numpy as np

AXIS_NAMES = ("i", "j", "k")
_SLICE_PROFILES = ("gaussian", "rect")
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_BATCH_SLICES = 16  # fixed, so the random stream (and the output) does not depend on memory


def resolve_slice_axis(ijk_to_ras, slice_axis="auto") -> int:
    """Voxel axis (0=i, 1=j, 2=k) of the slice direction.

    "auto": the axis with the largest spacing; among equal spacings (within 0.1 %) the voxel axis whose direction
    is closest to patient superior-inferior (so an isotropic volume is processed in axial slices).
    """
    if slice_axis in (0, 1, 2):
        return int(slice_axis)
    if slice_axis in AXIS_NAMES:
        return AXIS_NAMES.index(slice_axis)
    if slice_axis != "auto":
        raise ValueError(f"slice axis must be 'auto', 'i', 'j' or 'k', got {slice_axis!r}")
    matrix = np.asarray(ijk_to_ras, dtype=float)[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise ValueError(f"invalid voxel spacing {spacing.tolist()} in the IJK-to-RAS matrix")
    tied = np.flatnonzero(spacing >= spacing.max() * (1 - 1e-3))
    superior = np.abs(matrix[2, tied]) / spacing[tied]
    return int(tied[np.argmax(superior)])


def array_axis(voxel_axis: int) -> int:
    """numpy axis of an [k, j, i] array for a voxel axis (0=i, 1=j, 2=k)."""
    return 2 - voxel_axis


def spread_slices(stack, limit: int):
    """Up to `limit` slices of an (S, ...) stack, evenly spread from the first to the last (for estimates that
    one subset of the volume gives as well as all of it)."""
    count = stack.shape[0]
    return stack[np.unique(np.linspace(0, count - 1, min(count, limit)).round().astype(int))]


def in_plane_shape(shape_kji, slice_voxel_axis: int, scale: float) -> tuple:
    """Output array shape [k, j, i] after resampling the in-plane axes by `scale` (round(n * scale))."""
    out = list(shape_kji)
    for voxel_axis in range(3):
        if voxel_axis != slice_voxel_axis:
            out[array_axis(voxel_axis)] = max(1, int(round(shape_kji[array_axis(voxel_axis)] * scale)))
    return tuple(out)


def fourier_sample_positions(n_in: int, n_out: int, positions=None) -> np.ndarray:
    """Input index of each output sample of a centred-DFT resampling (degradation.fourier_resample), or of the
    given (possibly fractional) output positions.

    The centred DFT puts the image origin at index n // 2, so the samples n_in // 2 and n_out // 2 coincide:
    output sample m lies at n_in // 2 + (m - n_out // 2) * n_in / n_out. This equals m * n_in / n_out (voxel 0
    shared) when n_in // 2 == (n_out // 2) * n_in / n_out, e.g. for even n_out dividing n_in, but not in general
    (90 -> 45: output voxel 0 lies at input index 1).
    """
    positions = np.arange(n_out) if positions is None else np.asarray(positions, dtype=float)
    return n_in // 2 + (positions - n_out // 2) * (n_in / n_out)


def resampled_geometry(ijk_to_ras, shape_in_kji, shape_out_kji) -> np.ndarray:
    """IJK-to-RAS of a Fourier-resampled grid: spacing scales by n_in / n_out per axis and voxel 0 moves to
    fourier_sample_positions(n_in, n_out)[0] (no move when the sizes keep voxel 0 shared)."""
    ijk_to_ras = np.asarray(ijk_to_ras, dtype=float)
    matrix = ijk_to_ras.copy()
    first = np.zeros(4)
    first[3] = 1.0
    for voxel_axis in range(3):
        n_in, n_out = shape_in_kji[array_axis(voxel_axis)], shape_out_kji[array_axis(voxel_axis)]
        matrix[:3, voxel_axis] *= n_in / n_out
        first[voxel_axis] = fourier_sample_positions(n_in, n_out)[0]
    matrix[:3, 3] = (ijk_to_ras @ first)[:3]
    return matrix


def check_volume_array(array, name="input") -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"{name}: expected a 3D array [k, j, i], got shape {array.shape}")
    if np.iscomplexobj(array) or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name}: expected real voxel values, got dtype {array.dtype}")
    if min(array.shape) < 1:
        raise ValueError(f"{name}: empty array of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinite voxel values")
    return array


def volume_foreground_mask(array) -> np.ndarray:
    """Foreground of a whole volume: voxels whose magnitude is above 10 % of its 99th percentile.

    Same definition as degradation.foreground_mean, over all slices at once (computed in numpy because
    torch.quantile is limited to 16 M elements).
    """
    magnitude = np.abs(np.asarray(array, dtype=np.float64))
    return magnitude > 0.1 * np.percentile(magnitude, 99)


def volume_foreground_mean(array) -> float:
    """Mean magnitude of the foreground (volume_foreground_mask) of a whole volume."""
    foreground = np.abs(np.asarray(array, dtype=np.float64))[volume_foreground_mask(array)]
    return float(foreground.mean()) if foreground.size else 0.0


@dataclass
class SimulationResult:
    array: np.ndarray  # float32 [k, j, i]
    ijk_to_ras: np.ndarray
    sigma: float  # noise sigma per real/imaginary channel (image intensity units)
    slice_axis: int  # voxel axis 0=i, 1=j, 2=k
    acquired_shape: tuple  # [k, j, i] shape of the acquisition matrix
    noise_map: np.ndarray | None = None  # relative noise SD [k, j, i] on the acquired grid (None: uniform)


def _validate(scale, snr, partial_fourier, apodisation, bias_field, slice_profile_mm, slice_profile,
              noise_variation=1.0):
    try:
        valid_scale = math.isfinite(float(scale)) and float(scale) >= 1
    except (TypeError, ValueError):
        valid_scale = False
    if not valid_scale:
        raise ValueError(f"scale must be a number >= 1, got {scale!r}")
    if snr is not None and not (snr > 0):
        raise ValueError(f"SNR must be > 0 (or None/inf for no noise), got {snr!r}")
    if not 0.5 <= partial_fourier <= 1.0:
        raise ValueError(f"partial Fourier fraction must be between 0.5 and 1, got {partial_fourier}")
    if not 0.0 <= apodisation <= 1.0:
        raise ValueError(f"apodisation strength must be between 0 and 1, got {apodisation}")
    if not (0.0 <= bias_field <= 2.0):
        raise ValueError(f"bias field strength must be between 0 and 2, got {bias_field}")
    if slice_profile_mm is not None and not (slice_profile_mm > 0):
        raise ValueError(f"slice profile FWHM must be > 0 mm, got {slice_profile_mm}")
    if slice_profile not in _SLICE_PROFILES:
        raise ValueError(f"slice profile must be one of {_SLICE_PROFILES}, got {slice_profile!r}")
    if not (1.0 <= noise_variation <= 10.0):
        raise ValueError(f"noise variation (largest / smallest noise SD) must be between 1 and 10, got {noise_variation}")


def bias_field(shape_kji, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative field exp(strength * p), p a random quadratic polynomial scaled to max |p| = 1."""
    axes = [np.linspace(-1, 1, n) for n in shape_kji]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [x, y, z, x * y, y * z, x * z, x**2 - 1 / 3, y**2 - 1 / 3, z**2 - 1 / 3]
    weights = rng.uniform(-1, 1, len(terms))
    poly = sum(weight * term for weight, term in zip(weights, terms)) + np.zeros(shape_kji)
    poly /= max(np.abs(poly).max(), 1e-12)
    return np.exp(strength * poly)


def noise_variation_map(shape, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Relative noise SD over a (S, rows, cols) stack, like a parallel-imaging g-factor map: one smooth bump, off
    centre, across the slices and wider through them, scaled so that its largest value is `ratio` times its
    smallest."""
    centres = rng.uniform(-0.3, 0.3, 3)
    widths = np.array([rng.uniform(1.0, 2.0), *rng.uniform(0.35, 0.7, 2)])
    axes = [np.linspace(-1, 1, n) for n in shape]
    exponent = sum(((axis - centre) / width) ** 2 for axis, centre, width in
                   zip(np.meshgrid(*axes, indexing="ij", sparse=True), centres, widths))
    bump = np.exp(-0.5 * exponent)
    bump = (bump - bump.min()) / max(bump.max() - bump.min(), 1e-12)
    return (1.0 + (ratio - 1.0) * bump).astype(np.float32)


def gaussian_kernel(sigma_voxels: float) -> np.ndarray:
    """Normalised 1D Gaussian sampled at integer voxel offsets, truncated at 4 sigma (at least 3 taps)."""
    radius = max(1, int(math.ceil(4 * sigma_voxels)))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_voxels) ** 2)
    return kernel / kernel.sum()


def slice_profile_kernel(fwhm_voxels: float, profile: str = "gaussian") -> np.ndarray:
    """Normalised 1D kernel of the slice profile sampled at integer voxel offsets.

    gaussian: sigma = FWHM / 2.3548, truncated at 4 sigma. rect: a box of width FWHM voxels whose end samples get
    the fraction of the voxel the box covers (exact area, so a delta slice keeps its integral).
    """
    if profile == "gaussian":
        return gaussian_kernel(fwhm_voxels / _FWHM_PER_SIGMA)
    else:
        half = fwhm_voxels / 2
        radius = int(math.ceil(half + 0.5))
        offsets = np.arange(-radius, radius + 1)
        # Overlap of [offset - 0.5, offset + 0.5] with [-half, half].
        kernel = np.clip(np.minimum(offsets + 0.5, half) - np.maximum(offsets - 0.5, -half), 0, None)
    return kernel / kernel.sum()


def blur_through_plane(array, axis: int, fwhm_voxels: float, profile: str = "gaussian") -> np.ndarray:
    from scipy.ndimage import convolve1d

    return convolve1d(np.asarray(array, dtype=np.float32), slice_profile_kernel(fwhm_voxels, profile), axis=axis,
                      mode="nearest")


def simulate_array(
    array,
    ijk_to_ras,
    scale: float = 2,
    snr: float | None = 20.0,
    partial_fourier: float = 1.0,
    apodisation: float = 0.0,
    bias_field_strength: float = 0.0,
    slice_profile_mm: float | None = None,
    slice_profile: str = "gaussian",
    scanner_zero_fill: bool = False,
    slice_axis="auto",
    seed: int = 0,
    random_phase: bool = True,
    device: str = "cpu",
    noise_variation: float = 1.0,
) -> SimulationResult:
    """Degrade a high-resolution volume [k, j, i] as a scanner with a lower matrix would acquire it.

    snr None or inf: no noise. noise_variation > 1: the noise SD varies smoothly across the volume by that ratio
    (noise_variation_map; SNR then refers to its root mean square over the foreground). Deterministic for a given
    seed. The input is not modified.
    """
    import torch

    from MRSuperResLib import degradation

    array = check_volume_array(array)
    _validate(scale, snr, partial_fourier, apodisation, bias_field_strength, slice_profile_mm, slice_profile,
              noise_variation)
    ijk_to_ras = np.asarray(ijk_to_ras, dtype=float)
    if ijk_to_ras.shape != (4, 4):
        raise ValueError(f"IJK-to-RAS must be a 4x4 matrix, got shape {ijk_to_ras.shape}")
    voxel_axis = resolve_slice_axis(ijk_to_ras, slice_axis)
    axis = array_axis(voxel_axis)
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=device).manual_seed(int(seed))

    truth = np.asarray(array, dtype=np.float32)
    if bias_field_strength > 0:
        truth = truth * bias_field(truth.shape, bias_field_strength, rng).astype(np.float32)
    if slice_profile_mm is not None:
        slice_spacing = float(np.linalg.norm(ijk_to_ras[:3, voxel_axis]))
        truth = blur_through_plane(truth, axis, slice_profile_mm / slice_spacing, slice_profile)

    slices = np.moveaxis(truth, axis, 0)  # (S, rows, cols)
    in_shape = slices.shape[1:]
    acquired = tuple(max(1, int(round(n / scale))) for n in in_shape)
    recon = in_shape if scanner_zero_fill else acquired

    batches = [torch.from_numpy(np.ascontiguousarray(slices[start:start + _BATCH_SLICES])).to(device)
               for start in range(0, slices.shape[0], _BATCH_SLICES)]
    noise_map = None
    if snr is None or math.isinf(snr):
        sigma = 0.0
    else:
        clean = np.concatenate([degradation.fourier_resample(batch, acquired).cpu().numpy() for batch in batches])
        sigma = volume_foreground_mean(clean) / float(snr)
        if sigma <= 0:
            raise ValueError("input has no foreground signal (all voxels zero); cannot set the noise from an SNR")
        if noise_variation > 1.0:
            noise_map = noise_variation_map(clean.shape, noise_variation, rng)
            noise_map /= np.sqrt(np.mean(noise_map[volume_foreground_mask(clean)] ** 2))
    # One smooth phase map for the whole volume (constant through-plane, like a B0/coil phase).
    phase = degradation.smooth_random_phase(in_shape, 1, generator=generator, device=device) if random_phase else None

    out_slices = []
    for start, batch in zip(range(0, slices.shape[0], _BATCH_SLICES), batches):
        out_slices.append(
            degradation.acquire(
                batch,
                acquired,
                sigma,
                recon_shape=recon,
                partial_fourier=partial_fourier,
                partial_fourier_axis=0,
                apodisation=apodisation,
                phase=phase,
                generator=generator,
                noise_map=None if noise_map is None else torch.from_numpy(noise_map[start:start + _BATCH_SLICES]),
            ).cpu().numpy()
        )
    out = np.moveaxis(np.concatenate(out_slices).astype(np.float32), 0, axis)
    acquired_kji = list(array.shape)
    other_axes = [a for a in range(3) if a != axis]
    for a, n in zip(other_axes, acquired):
        acquired_kji[a] = n
    return SimulationResult(
        array=np.ascontiguousarray(out),
        ijk_to_ras=resampled_geometry(ijk_to_ras, array.shape, out.shape),
        sigma=float(sigma),
        slice_axis=voxel_axis,
        acquired_shape=tuple(acquired_kji),
        noise_map=None if noise_map is None else np.ascontiguousarray(np.moveaxis(noise_map, 0, axis)),
    )


def simulate_volume(volume, **kwargs):
    """simulate_array on a Volume; returns (Volume, SimulationResult). Metadata records the degradation."""
    result = simulate_array(volume.array, volume.ijk_to_ras, **kwargs)
    out = volume.with_array(result.array, result.ijk_to_ras, name=f"{volume.name} simulated")
    out.metadata["simulation"] = {
        **{key: value for key, value in kwargs.items() if key != "device"},
        "sigma": result.sigma,
        "slice_axis": AXIS_NAMES[result.slice_axis],
        "acquired_shape_kji": list(result.acquired_shape),
    }
    return out, result
