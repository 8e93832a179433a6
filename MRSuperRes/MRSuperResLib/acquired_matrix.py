"""The matrix a scanner acquired, when it reconstructed on a finer grid by zero-filling k-space (ZIP).

Many clinical series are zero-filled by the scanner ("512" images from a 256 acquisition, or a 256 x 192
acquisition shown as 256 x 256): their resolution is coarser than their voxel spacing, and their spectrum drops
off a cliff at the acquired band's edge. Restoring such a series from its acquired matrix (cropping the empty
band, then super-resolving back onto the grid asked for) uses what the network learned about truncated k-space;
treating the zero-filled grid as measured leaves it blurred. On the held-out volumes, zero-filled x2 by the
scanner at SNR 10-40 and enhanced at x1: +0.1 to +4.9 dB with the acquired matrix (docs/evaluation).

Detection is deliberately conservative: a false cliff would throw measured detail away, so only a drop far
steeper than the spectrum's own decay counts, and partial Fourier with zero-filled lines (a drop to half the
amplitude on one side: 0.6 decades of power in theory, 0.56-0.62 measured on the GE series) does not.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .simulate import spread_slices

SPECTRUM_SLICES = 32  # a spread-out subset of slices gives the mean spectrum as well as all of them
EDGE_BINS = 3  # bins averaged on each side of a candidate edge
MIN_DROP_DECADES = 0.75  # power drop at the edge (log10): partial Fourier's half amplitude gives ~0.6
MIN_DROP_OVER_DECAY = 4.0  # ... and this many times the 90th percentile of the spectrum's own drops
MIN_EDGE_FRACTION = 0.2  # edges closer to the centre than this fraction of Nyquist are not searched
# Axes shorter than this are taken as measured: their few bins give false cliffs (2 of the 36 evaluation inputs at a
# 36 x 28 grid), and scanners zero-fill clinical matrices, not tiny ones.
MIN_GRID = 64
# Where the DICOM header states the matrix, the spectrum need only confirm a drop at that edge (the GE series
# zero-filled at SNR 5-10 drops 0.40-0.63 decades there, under the blind test's guard): this much, and twice the
# spectrum's own drops. A header that does not describe the pixels (resampled, cropped) shows no such drop (at most
# 0.12 decades at wrong sizes on the GE series' own grid, with or without partial Fourier).
MIN_STATED_DROP_DECADES = 0.3
MIN_STATED_DROP_OVER_DECAY = 2.0


def _log_power_profiles(stack: np.ndarray):
    """log10 of the mean power per frequency along rows and along columns of the (S, R, C) slices' spectra.

    The 2D spectrum's power summed over the other axis's frequencies equals (Parseval) the power of the 1D
    transform along this axis summed over the other axis's pixels, so 1D transforms give the same profiles (up to
    a constant factor, which no drop sees)."""
    sums = [np.zeros(stack.shape[1]), np.zeros(stack.shape[2])]
    for image in spread_slices(stack, SPECTRUM_SLICES):  # one slice at a time: numpy's FFT needs ~5 x its output
        image = image - image.mean(dtype=np.float64)
        for axis, total in enumerate(sums):
            power = np.abs(np.fft.fft(image, axis=axis))
            total += (power * power).sum(axis=1 - axis)
    return tuple(np.log10(np.fft.fftshift(total) + 1e-30) for total in sums)  # zero frequency at n // 2


def _drops(profile: np.ndarray) -> np.ndarray:
    """drops[k - EDGE_BINS]: mean log power of the EDGE_BINS bins before k minus that of the EDGE_BINS bins from
    k on, for k = EDGE_BINS .. len(profile) - EDGE_BINS."""
    means = sliding_window_view(profile, EDGE_BINS).mean(axis=1)  # means[k]: bins k .. k + EDGE_BINS - 1
    return means[:-EDGE_BINS] - means[EDGE_BINS:]


def acquired_size(profile: np.ndarray) -> int:
    """Acquired samples along one axis from its centred log-power profile (the grid's size when no cliff)."""
    size = len(profile)
    if size < MIN_GRID:
        return size
    centre = size // 2
    first = centre + max(EDGE_BINS + 1, int(MIN_EDGE_FRACTION * centre))
    # A magnitude image's spectrum is symmetric: the positive half, from the centre outwards, says it all.
    drops = _drops(profile)[first - EDGE_BINS :]  # drops[i]: the edge at bin first + i
    edge = int(np.argmax(drops))
    # The spectrum's own drops, away from the edge (MIN_GRID leaves plenty).
    if drops[edge] < MIN_DROP_DECADES or drops[edge] < MIN_DROP_OVER_DECAY * _own_decay(drops, edge):
        return size
    # The first empty bin is n/2 + 1 from the centre for an even acquisition of n samples (a real image's spectrum
    # is symmetric, so the bin at +n/2 mirrors the acquired -n/2); scanner matrices are even.
    first_empty = first + edge - centre
    return min(size, 2 * (first_empty - 1))


def _own_decay(drops: np.ndarray, edge: int) -> float:
    """90th percentile of the spectrum's drops away from the windows that straddle the edge (0 at least)."""
    own = np.delete(drops, range(max(0, edge - 2 * EDGE_BINS), min(drops.size, edge + 2 * EDGE_BINS + 1)))
    return max(float(np.percentile(own, 90)), 0.0)


def stated_size_confirmed(profile: np.ndarray, samples: int) -> bool:
    """True when the centred log-power profile drops at the edge of `samples` acquired samples (within a bin)."""
    size = len(profile)
    centre = size // 2
    first = centre + max(EDGE_BINS + 1, int(MIN_EDGE_FRACTION * centre))
    drops = _drops(profile)[first - EDGE_BINS :]  # drops[i]: the edge at bin first + i, as in acquired_size
    stated_edge = centre + samples // 2 + 1 - first  # the first empty bin
    if not 0 < stated_edge < drops.size - 1:
        return False
    edge = stated_edge - 1 + int(np.argmax(drops[stated_edge - 1 : stated_edge + 2]))
    return bool(drops[edge] >= MIN_STATED_DROP_DECADES
                and drops[edge] >= MIN_STATED_DROP_OVER_DECAY * _own_decay(drops, edge))


def detect_acquired_matrix(stack: np.ndarray, stated=None) -> tuple:
    """(rows, columns) acquired for (S, R, C) slices: the grid's own size where it shows no zero-filled band.

    stated: (rows, columns) the DICOM header gives for these slices (dicom_acquisition.py), used when the spectrum
    drops at each of its reduced edges, which catches zero-filled series too noisy for the blind test."""
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"expected (slices, rows, columns), got shape {stack.shape}")
    profiles = _log_power_profiles(stack)
    grid = stack.shape[1:]
    if stated is not None and tuple(stated) != tuple(grid) and all(
            s == g or (s < g and stated_size_confirmed(p, s)) for s, g, p in zip(stated, grid, profiles)):
        return tuple(int(s) for s in stated)
    return tuple(acquired_size(profile) for profile in profiles)


def parse_acquired_matrix(value):
    """'auto' (detect), 'off'/None (the grid as measured) or 'RxC' / (rows, columns)."""
    if value is None or value == "off":
        return None
    if value == "auto":
        return "auto"
    if isinstance(value, str):
        try:
            value = tuple(int(part) for part in value.lower().split("x"))
        except ValueError:
            raise ValueError(f"acquired matrix must be 'auto', 'off' or ROWSxCOLUMNS, got {value!r}") from None
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"acquired matrix must be two positive sizes (rows, columns), got {value}")
    return value
