"""Noise that varies across a volume, as parallel imaging makes it: a smooth map of its relative SD.

SENSE and GRAPPA reconstructions amplify the noise by the g-factor, which varies smoothly across the field of view
(up to 2-3 x at high acceleration). enhance() restores with one noise level per volume: where the noise is higher
it leaves noise, where it is lower it takes detail. With a map g of the noise SD relative to its typical level,
the input divided by g has uniform noise (variance stabilisation); it is restored with one level and the output is
multiplied by g again. g is smooth, so the network sees a mild bias field, which its training includes.

Estimate (estimate_relative_noise_map): the stack is cut into tiles (a sixteenth of the field of view in-plane,
at least MIN_TILE pixels, by SLAB slices); each tile's noise SD is the MAD of the finest diagonal Haar band over its foreground, taken
across pairs of slices too (diagonal_detail), where anatomy inflates it little. The logarithms
are smoothed across tiles by normalised convolution weighted by the foreground samples, which also fills tiles
without foreground, and g is their exponential over the weighted median. Any voxel's value is a trilinear
interpolation between tile centres (RelativeNoiseMap.on_grid), so the map costs little memory on any grid.

Off by default in enhance(): where the noise is uniform the estimate costs up to 0.12 dB, and on thick (5 mm) slices
it follows anatomy; where the noise varies 2-3 x it gains up to 2.6 dB at x1 (docs/evaluation/noise-maps.md).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import noise_estimation

SLAB = 8  # slices per tile
TILES = 16  # tiles per in-plane axis at most...
MIN_TILE = 8  # ...each at least this many pixels wide
MIN_SAMPLES = 64  # foreground samples of the diagonal band a tile needs for an estimate
SMOOTHING_TILES = 0.7  # Gaussian SD of the smoothing across tiles (in tiles)
DENSE_WEIGHTS_MAX = 64  # centres per axis up to which on_grid interpolates by weight matrices


@dataclass
class RelativeNoiseMap:
    """Relative noise SD known at the centres of a coarse grid (slices, rows, columns), in the pixel coordinates of
    the stack it describes; linear in between and constant beyond the outer centres."""

    values: np.ndarray  # (Ts, Tr, Tc), median 1 over the foreground
    centres: tuple  # three 1D arrays of increasing positions

    def on_grid(self, slices, rows, columns) -> np.ndarray:
        """The map at every (slice, row, column) of three 1D position arrays, (len(slices), len(rows), len(columns)),
        float32. Linear interpolation is separable: a coarse map (an estimate's tiles) is interpolated one axis at a
        time by small dense weight matrices (BLAS; ~16 multiply-adds per voxel, no float64 temporaries), a map given
        voxel by voxel by gathering its two neighbours per axis."""
        result = np.asarray(self.values, dtype=np.float32)
        for axis, (centres, positions) in enumerate(zip(self.centres, (slices, rows, columns))):
            lower, fraction = _interpolation_weights(centres, positions)
            fraction = fraction.astype(np.float32)
            if len(centres) <= DENSE_WEIGHTS_MAX:
                weights = np.zeros((len(fraction), len(centres)), dtype=np.float32)
                index = np.arange(len(fraction))
                weights[index, lower] = 1.0 - fraction
                weights[index, np.minimum(lower + 1, len(centres) - 1)] += fraction
                if axis == 0:
                    result = np.tensordot(weights, result, axes=([1], [0]))
                elif axis == 1:
                    result = np.matmul(weights, result)
                else:
                    result = np.matmul(result, weights.T)
                continue
            shape = [1, 1, 1]
            shape[axis] = -1
            fraction = fraction.reshape(shape)
            result = (np.take(result, lower, axis=axis) * (1.0 - fraction)
                      + np.take(result, np.minimum(lower + 1, len(centres) - 1), axis=axis) * fraction)
        return np.ascontiguousarray(result, dtype=np.float32)

    def moved(self, mapping) -> "RelativeNoiseMap":
        """The same map with each axis's centres passed through mapping[axis] (positions on another grid)."""
        return RelativeNoiseMap(self.values, tuple(np.asarray(f(c), dtype=float) for f, c in zip(mapping, self.centres)))


def _interpolation_weights(centres, positions):
    """Index of the centre below each position and the weight of the one above it (linear interpolation, constant
    beyond the outer centres)."""
    centres, positions = np.asarray(centres, dtype=float), np.asarray(positions, dtype=float)
    if centres.size == 1:
        return np.zeros(positions.size, dtype=int), np.zeros(positions.size)
    clipped = np.clip(positions, centres[0], centres[-1])
    lower = np.clip(np.searchsorted(centres, clipped, side="right") - 1, 0, centres.size - 2)
    return lower, (clipped - centres[lower]) / (centres[lower + 1] - centres[lower])


def from_array(relative_sd) -> RelativeNoiseMap:
    """A map given voxel by voxel on the (S, r, c) stack (e.g. a scanner's g-factor map), scaled to median 1.
    Voxels without a value (0, as g-factor maps have outside the object) take the median of the others."""
    values = np.array(relative_sd, dtype=np.float32)
    if values.ndim != 3 or not np.all(np.isfinite(values)) or not (values > 0).any():
        raise ValueError("a noise map must be a 3D array of finite values, positive where the noise is known")
    median = np.median(values[values > 0])
    values[values <= 0] = median
    return RelativeNoiseMap(values / median, tuple(np.arange(n, dtype=float) for n in values.shape))


def _bounds(count: int, tiles: int) -> np.ndarray:
    return np.linspace(0, count, tiles + 1).round().astype(int)


def _tile_counts(rows: int, cols: int) -> tuple:
    return tuple(max(1, min(TILES, n // MIN_TILE)) for n in (rows, cols))


def diagonal_detail(slab: torch.Tensor):
    """The finest diagonal Haar band of a (s, r, c) slab and its local means, across pairs of slices too when there
    are two or more: anatomy continues from slice to slice and the noise does not, so the difference of two slices'
    diagonal bands holds less anatomy than either (on the 1 mm templates at SNR 40 the estimated map correlated
    0.65-0.93 with the true one, against -0.47-0.74 with the in-plane band alone: docs/evaluation/noise-maps.md).
    White noise keeps its SD in it."""
    detail, mean = noise_estimation.haar_diagonal(slab)
    pairs = (slab.shape[0] // 2) * 2
    if pairs == 0:
        return detail, mean
    return (detail[0:pairs:2] - detail[1:pairs:2]) / math.sqrt(2), (mean[0:pairs:2] + mean[1:pairs:2]) / 2


def _tile_estimates(slab: torch.Tensor, level: float, row_bounds, col_bounds):
    """(log SD, weight) per in-plane tile of a (s, r, c) slab: the MAD of diagonal_detail over the tile's
    foreground (the lower median, as torch.median takes it), all tiles at once: the values sorted by tile, then
    each tile's middle one."""
    detail, mean = diagonal_detail(slab)
    foreground = mean > noise_estimation.FOREGROUND_FRACTION * level
    shape = (len(row_bounds) - 1, len(col_bounds) - 1)
    # The band has half the pixels: band row b lies in tile i when row_bounds[i] // 2 <= b < row_bounds[i + 1] // 2.
    row_tile = np.searchsorted(np.asarray(row_bounds[1:-1]) // 2, np.arange(detail.shape[1]), side="right")
    col_tile = np.searchsorted(np.asarray(col_bounds[1:-1]) // 2, np.arange(detail.shape[2]), side="right")
    tiles = torch.from_numpy(row_tile[:, None] * shape[1] + col_tile[None, :]).expand(detail.shape)
    values, order = detail.abs()[foreground].sort()
    tile_of_value = tiles[foreground][order]
    tile_of_value, order = tile_of_value.sort(stable=True)  # grouped by tile, still sorted within each
    values = values[order]
    counts = torch.bincount(tile_of_value, minlength=shape[0] * shape[1])
    middle = (counts.cumsum(0) - counts + (counts - 1).clamp(min=0) // 2).clamp(max=max(0, values.numel() - 1))
    medians = values[middle].double().numpy() if values.numel() else np.zeros(counts.numel())
    estimates, counts = medians / 0.6745, counts.numpy()
    usable = (counts >= MIN_SAMPLES) & (estimates > 0)
    logs = np.where(usable, np.log(np.where(usable, estimates, 1.0)), 0.0)
    return logs.reshape(shape), np.where(usable, counts, 0).astype(float).reshape(shape)


def _smooth(values: np.ndarray, sd: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(values, sd, mode="nearest", truncate=3.0)


def estimate_relative_noise_map(stack) -> RelativeNoiseMap | None:
    """The relative noise SD of a (S, r, c) stack on its own grid; None when no tile has enough foreground."""
    stack = np.asarray(stack)
    slices, rows, cols = stack.shape
    tiles = _tile_counts(rows, cols)
    row_bounds, col_bounds = _bounds(rows, tiles[0]), _bounds(cols, tiles[1])
    slab_bounds = _bounds(slices, max(1, round(slices / SLAB)))
    level = float(np.percentile(np.abs(stack[:: max(1, slices // 16)]), 99))
    logs, weights = [], []
    for first, last in zip(slab_bounds[:-1], slab_bounds[1:]):
        slab = torch.from_numpy(np.ascontiguousarray(stack[first:last], dtype=np.float32))
        slab_logs, slab_weights = _tile_estimates(slab, level, row_bounds, col_bounds)
        logs.append(slab_logs)
        weights.append(slab_weights)
    logs, weights = np.stack(logs), np.stack(weights)
    if weights.sum() <= 0:
        return None
    weights = weights / weights.max()
    # Normalised convolution: the smoothed log SD where tiles have foreground, and their nearest values beyond.
    spread = SMOOTHING_TILES
    support = _smooth(weights, spread)
    smoothed = _smooth(weights * logs, spread) / np.maximum(support, 1e-12)
    while (support < 1e-3).any() and spread < 4 * max(logs.shape):
        spread *= 2
        wider = _smooth(weights, spread)
        filled = _smooth(weights * logs, spread) / np.maximum(wider, 1e-12)
        smoothed = np.where(support < 1e-3, filled, smoothed)
        support = np.maximum(support, wider)
    order = np.argsort(smoothed[weights > 0])
    cumulative = np.cumsum(weights[weights > 0][order])
    median = smoothed[weights > 0][order][np.searchsorted(cumulative, cumulative[-1] / 2)]
    centres = tuple((bounds[:-1] + bounds[1:] - 1) / 2.0 for bounds in (slab_bounds, row_bounds, col_bounds))
    return RelativeNoiseMap(np.exp(smoothed - median), centres)
