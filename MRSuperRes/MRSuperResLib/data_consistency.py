"""Data consistency after the network: the measured k-space band comes back from the input, Wiener-weighted.

The network's output is used as the pilot of an empirical Wiener filter (the second step of BM3D/BM4D; without
block matching when super-resolving): on the input's own grid, every block of 4 neighbouring slices x 8 x 8 pixels
of the input is taken to the 3D DCT domain and each coefficient kept in proportion pilot^2 / (pilot^2 + sigma^2).
Where the pilot says there is signal well above the noise (edges, small lesions), the measured value comes back;
where it says noise, the network's denoising stays. The blocks span neighbouring slices because anatomy continues
from slice to slice while the noise does not: that redundancy is what a slice-by-slice network leaves unused.
Blocks overlap (stride 1 across slices, 2 in-plane) and are averaged with BM3D's weights. The filter runs twice,
the second time with the first estimate as pilot. When denoising (x1) the final pass filters each block together
with the blocks most like it (block_matching.py). Finally the residual comes back wherever it is significantly more
than noise (method_noise.py). wiener_tuning.py can scale the sigma of the Wiener passes by a factor chosen per volume
(off by default). Only the band the input measured is changed; what the network added beyond it
(super-resolution) is kept as it is.

Measured on the held-out volumes of `mrsuperres evaluate` with the quality model (docs/evaluation/
model-comparison.md), against the previous 2D single-pass form (8 x 8 blocks): +1.4 dB mean PSNR at x1, +0.5 dB
at x2, +0.06 dB at x3, and the 3 mm lesion keeps its contrast at every scale (x2: 21.3 against 20.4; x3: 14.1
against 12.5; three noise draws each). On the thick-slice GE series, where neighbouring slices differ more, it is
-0.51 to +0.14 dB from the 2D form per row (lowest at x3, SNR 10).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import method_noise, rician_floor
from .block_matching import block_matching_wiener, slice_halo
from .degradation import fourier_resample
from .transforms import dct_matrix

BLOCK = 8  # in-plane block size (pixels)
STRIDE = 2  # in-plane block stride of the final pass
# In-plane stride of the passes before it, which only make a pilot: a quarter of the blocks, -0.04 dB at x1 and
# -0.02 dB at x2 mean PSNR (0.00 at x3); the step takes 15 s instead of 20-23 s on the 2-core CPU for 256 x 256 x 176
# or 512 x 512 x 30 (docs/evaluation/model-comparison.md, benchmarks/results/data-consistency-cost-cpu.md).
PILOT_PASS_STRIDE = 4
DEPTH = 4  # slices per block (stride 1 across slices)
PASSES = 2  # Wiener passes; each later pass uses the previous estimate as pilot
# When super-resolving, the network's output under-represents small bright structures in the measured band, so
# the final pass assumes sigma / scale^FINAL_PASS_NOISE_EXPONENT (sigma / 1.41 at x2; x3 below); earlier
# passes assume sigma and keep their pilot clean. Since the method-noise check brings back what a pass removes from
# a small lesion, the final pass can denoise more than at sigma / scale (the form before session 10). Default
# model against sigma / scale: +0.45 / +0.20 / +0.01 dB mean PSNR at x2 (SNR 10 / 20 / 40), +0.57 / +0.21 / -0.01
# at x3; on the real GE series +0.09 / -0.02 / -0.08 at x2; the x2 lesion 22.5 / 21.3 / 22.2 against limits of
# 21.3 / 20.1 / 20.7 (21.9 / 20.9 / 22.0 before). Exponent 0 (both with grouped final passes) gains up to 0.5 dB
# more on the smooth templates at SNR 10 but loses 0.07 / 0.14 dB on the GE series at SNR 20 / 40
# (docs/evaluation/model-comparison.md, "The final pass after the method-noise check").
FINAL_PASS_NOISE_EXPONENT = 0.5
# At x3 the exponent falls to this (linear from x2). Together with method_noise's lower x3 threshold it keeps the
# 3 mm lesion at every SNR for -0.07 dB at SNR 10; at sigma / sqrt(3) a threshold low enough for the lesion costs
# -0.13 to -0.29 dB there (method_noise.X3_THRESHOLD_FACTOR).
X3_FINAL_PASS_NOISE_EXPONENT = 0.25


def final_pass_noise_exponent(scale: float) -> float:
    """Exponent of the final pass's noise, sigma / scale^exponent, at this scale (output over input pixel size)."""
    return float(np.interp(scale, (2.0, 3.0), (FINAL_PASS_NOISE_EXPONENT, X3_FINAL_PASS_NOISE_EXPONENT)))


# When denoising (x1), the final pass filters groups of similar blocks instead of single blocks (block_matching.py):
# +0.45 dB mean PSNR at x1, +0.15 to +0.2 dB on the real GE series, for 24-28 s instead of 18 s of enhance() at x1
# on the 2-core CPU (256 x 256 x 176, fast model; 0.18 s for the step on an H100). When super-resolving they gain
# only +0.07 to +0.13 dB at x2 (with the method-noise check guarding the lesion) and take the step from 13-15 s to
# 23-25 s on that CPU, so there the fixed blocks stay (docs/evaluation/model-comparison.md).
BLOCK_MATCHING_WHEN_DENOISING = True
BLOCK_MATCHING_WHEN_SUPER_RESOLVING = False
# After the final pass, the residual comes back wherever it is significantly more than noise (method_noise.py).
METHOD_NOISE_CHECK = True
# On a magnitude image the stages use the input less its Rician floor (rician_floor.py), which the network removes.
RICIAN_FLOOR_REMOVED = True
# Pixels (slices x rows x columns of the input grid) per chunk of slices, and per group of blocks transformed at
# once: the overlapping blocks take BLOCK^2 / STRIDE^2 = 16 floats per pixel of the group in each of the several
# tensors alive at once (4 MB each per 256 x 256 slice). A GPU takes larger groups: fewer, larger kernels. Chunks
# only hold slices, so they are large: each chunk recomputes the halo of block windows it shares with its neighbours.
CHUNK_PIXELS = 64 * 256 * 256
GROUP_PIXELS = {"cpu": 4 * 256 * 256, "cuda": 32 * 256 * 256}


def _blocks(images: torch.Tensor, block: int, stride: int):
    """Overlapping block x block tiles of reflect-padded (S, H, W) images, each flattened row by row:
    ((S, block^2, L), padded shape)."""
    rows, cols = images.shape[-2:]
    pad_rows, pad_cols = (-(rows - block)) % stride, (-(cols - block)) % stride
    half = block // 2
    mode = "reflect" if min(rows, cols) > half + max(pad_rows, pad_cols) else "replicate"
    padded = F.pad(images[:, None], (half, half + pad_cols, half, half + pad_rows), mode=mode)
    return F.unfold(padded, block, stride=stride), padded.shape[-2:]


def _along_slices(matrix: torch.Tensor, stack: torch.Tensor) -> torch.Tensor:
    """(count, depth, ...) stack -> matrix applied along its depth axis (the 1D DCT across slices)."""
    return torch.einsum("fd,nd...->nf...", matrix, stack)


def wiener_filter(measured: torch.Tensor, pilot: torch.Tensor, sigma: float, depth: int = DEPTH,
                  block: int = BLOCK, stride: int = STRIDE) -> torch.Tensor:
    """Empirical Wiener filter of (S, H, W) `measured` slices (white noise of SD `sigma`) guided by `pilot`.

    Blocks are depth x block x block, all inside the stack (a stack thinner than `depth` uses its own
    thickness): no slice is repeated, so the noise stays independent across each block. depth=1 filters slice by
    slice.
    """
    if sigma <= 0:
        return measured.clone()
    slices, rows, cols = measured.shape
    depth = min(depth, slices)
    # The 2D DCT of a block flattened row by row is one (block^2 x block^2) matrix: one matmul for all blocks.
    transform = torch.kron(dct_matrix(block, measured.device), dct_matrix(block, measured.device))
    across = dct_matrix(depth, measured.device)
    windows = slices - depth + 1
    group = max(1, GROUP_PIXELS.get(measured.device.type, GROUP_PIXELS["cpu"]) // (depth * rows * cols))
    numerator = denominator = None
    for start in range(0, windows, group):
        count = min(group, windows - start)
        span = slice(start, start + count + depth - 1)
        # (count, depth, H, W): window n holds slices start + n .. start + n + depth - 1, taken along slices first.
        coefficients = []
        for stack in (measured[span].float(), pilot[span].float()):
            stack = _along_slices(across, stack.unfold(0, depth, 1).permute(0, 3, 1, 2))
            tiles, padded_shape = _blocks(stack.reshape(count * depth, rows, cols), block, stride)
            coefficients.append(transform @ tiles)
        measured_coefficients, pilot_coefficients = coefficients
        # In place where possible: these tensors are ~16 x the pixels of the group each, and fresh allocations of
        # that size cost more than the arithmetic on a CPU.
        pilot_power = pilot_coefficients.square_()
        gain = pilot_power.div_(pilot_power + sigma**2)
        filtered = (transform.T @ measured_coefficients.mul_(gain)).view(count, depth, *gain.shape[1:])
        filtered = _along_slices(across.T, filtered)
        # BM3D's aggregation weights: blocks with fewer kept coefficients (less noise left) count more.
        weight = 1.0 / (torch.linalg.vector_norm(gain.view(count, -1, gain.shape[-1]), dim=1).square() + 1e-3)
        filtered.mul_(weight[:, None, None, :])
        folded = F.fold(filtered.reshape(count * depth, *filtered.shape[2:]), padded_shape, block, stride=stride)
        # The weights are one number per block: their fold is a transposed convolution with a block of ones.
        grid = ((padded_shape[0] - block) // stride + 1, (padded_shape[1] - block) // stride + 1)
        ones = torch.ones((1, 1, block, block), device=weight.device, dtype=weight.dtype)
        weights = F.conv_transpose2d(weight.view(count, 1, *grid), ones, stride=stride)  # (count, 1, Hp, Wp)
        if numerator is None:
            numerator = folded.new_zeros((slices, *folded.shape[1:]))
            denominator = torch.zeros_like(numerator)
        # Block row d of window n lands on slice start + n + d.
        target = (start + torch.arange(count, device=measured.device)[:, None]
                  + torch.arange(depth, device=measured.device)[None, :]).reshape(-1)
        numerator.index_add_(0, target, folded)
        denominator.index_add_(0, target, weights.repeat_interleave(depth, dim=0))
    half = block // 2
    return (numerator / denominator)[:, 0, half : half + rows, half : half + cols]


class MeasuredBandRestorer:
    """The Wiener step and the method-noise check over a whole volume, streamed behind the network as its output
    arrives.

    measured: (S, r, c) input slices on their own grid; output: (S, R, C) float32 network output, corrected in
    place; sigma: noise SD of the input. Each stage needs its source a halo of slices ahead (DEPTH - 1; more for the
    grouped pass; method_noise.HALO for the check; before them rician_floor.HALO for the input less its floor), so a
    slice is final once the network has reached the sum of the halos further (or the end of the volume).
    magnitude: the input is a magnitude image, so the stages use it less its Rician floor (rician_floor.py); None
    decides by its values (none negative). noise_scale: factor of sigma for the Wiener passes only (wiener_tuning.py
    chooses it per volume); the floor and the method-noise check keep sigma.
    Memory on the device (the host if it is full): PASSES + 1 arrays of the input's size, plus the input less its
    floor (or on a GPU the input itself).
    """

    def __init__(self, measured: np.ndarray, output: np.ndarray, sigma: float, device, magnitude: bool | None = None,
                 noise_scale: float = 1.0):
        self.measured, self.output, self.device = measured, output, torch.device(device)
        self.depth, passes = DEPTH, PASSES
        self.in_shape, self.out_shape = tuple(measured.shape[1:]), tuple(output.shape[1:])
        # Slices smaller than a block keep the fixed blocks, which pad them.
        grouped = BLOCK_MATCHING_WHEN_DENOISING if self.in_shape == self.out_shape else BLOCK_MATCHING_WHEN_SUPER_RESOLVING
        self.block_matching = grouped and min(self.in_shape) >= BLOCK
        self.scale = math.sqrt(self.out_shape[0] * self.out_shape[1] / (self.in_shape[0] * self.in_shape[1]))
        # Noise each pass assumes: sigma, except the final pass when super-resolving (see FINAL_PASS_NOISE_EXPONENT).
        wiener_sigma = float(sigma) * noise_scale
        self.sigmas = [wiener_sigma] * (passes - 1) + [wiener_sigma / self.scale**final_pass_noise_exponent(self.scale)]
        self.sigma = float(sigma)
        self.strides = [PILOT_PASS_STRIDE] * (passes - 1) + [STRIDE]
        # Slices beyond a chunk that each stage's result depends on: a chunk is computed with them, then cropped.
        # Stages: the Wiener passes, then the method-noise check on the final pass's estimate.
        self.halos = ([DEPTH - 1] * (passes - 1) + [slice_halo(DEPTH) if self.block_matching else DEPTH - 1]
                      + [method_noise.HALO if METHOD_NOISE_CHECK else 0])
        # estimates[0]: the network's output on the input grid; estimates[k]: the k-th Wiener estimate.
        self.estimates = [self._allocate(measured.shape) for _ in range(passes + 1)]
        # The input the stages use: less its floor, filled in as the network's output arrives; otherwise on a GPU
        # the input itself, which then goes over once, not once per pass. The floor is that of the noise the step
        # assumes (strength x sigma): at strength 0 the input stays as it is, floor and all.
        if magnitude is None:
            magnitude = bool(np.min(measured) >= 0)
        self.floor_removed = magnitude and RICIAN_FLOOR_REMOVED and self.sigma > 0
        self.band = None
        if self.floor_removed or self.device.type == "cuda":
            self.band = self._allocate(measured.shape)
        if not self.floor_removed and self.band is not None:
            self.band.copy_(torch.from_numpy(np.ascontiguousarray(measured, dtype=np.float32)))
        self.band_ready = 0 if self.floor_removed else measured.shape[0]
        self.ready = [0] * (passes + 2)  # slices done: pilot, Wiener estimates 1..passes, final output

    def _allocate(self, shape):
        try:
            return torch.empty(shape, dtype=torch.float32, device=self.device)
        except torch.cuda.OutOfMemoryError:
            return torch.empty(shape, dtype=torch.float32)

    def _tensor(self, values):
        if isinstance(values, np.ndarray):
            values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        return values.to(self.device)

    def _chunk_slices(self):
        return max(1, CHUNK_PIXELS // (self.in_shape[0] * self.in_shape[1]))

    def _chunks(self, first, last):
        step = self._chunk_slices()
        return [(start, min(last, start + step)) for start in range(first, last, step)]

    def _estimate(self, source, first, last):
        """Stage source + 1 on slices first..last-1 from estimates[source] (ready up to last + its halo): a Wiener
        pass, or after the final one the method-noise check."""
        halo = self.halos[source]
        low, high = max(0, first - halo), min(self.measured.shape[0], last + halo)
        measured = self.band if self.band is not None else self.measured
        measured, pilot = self._tensor(measured[low:high]), self._tensor(self.estimates[source][low:high])
        passes = len(self.sigmas)
        if source == passes:
            filtered = (method_noise.keep_significant_residual(measured, pilot, self.sigma, self.scale)
                        if METHOD_NOISE_CHECK else pilot)
        elif self.block_matching and source == passes - 1:  # the final pass, grouped
            filtered = block_matching_wiener(measured, pilot, self.sigmas[source], self.depth)
        else:
            filtered = wiener_filter(measured, pilot, self.sigmas[source], self.depth, stride=self.strides[source])
        return filtered[first - low : last - low]

    def advance(self, available: int) -> int:
        """The network's output is final for slices < available; returns how many output slices are final."""
        total = self.measured.shape[0]
        for first, last in self._chunks(self.ready[0], available):
            pilot = self._tensor(self.output[first:last])
            self.estimates[0][first:last] = (fourier_resample(pilot, self.in_shape)
                                             if self.in_shape != self.out_shape else pilot)
            self.ready[0] = last
        if self.floor_removed:
            target = total if self.ready[0] == total else self.ready[0] - rician_floor.HALO
            if target == total or target - self.band_ready >= self._chunk_slices():  # whole chunks, as the stages
                for first, last in self._chunks(self.band_ready, target):
                    self.band[first:last] = self._without_floor(first, last)
                    self.band_ready = last
        stages = len(self.estimates)
        for stage in range(1, stages + 1):
            source_ready = self.ready[stage - 1] if stage > 1 else min(self.ready[0], self.band_ready)
            target = total if source_ready == total else max(self.ready[stage], source_ready - self.halos[stage - 1])
            if target < total and target - self.ready[stage] < self._chunk_slices():
                continue  # wait for a whole chunk: short ones would recompute the shared block windows each time
            for first, last in self._chunks(self.ready[stage], target):
                estimate = self._estimate(stage - 1, first, last)
                if stage < stages:
                    self.estimates[stage][first:last] = estimate
                else:
                    self._correct(first, last, estimate)
                self.ready[stage] = last  # per chunk: a call that fails part-way (GPU memory) resumes here
        return self.ready[stages]

    def _without_floor(self, first, last):
        """Input slices first..last-1 less the Rician floor that the network's output there predicts."""
        low, high = max(0, first - rician_floor.HALO), min(self.measured.shape[0], last + rician_floor.HALO)
        measured, network = self._tensor(self.measured[low:high]), self._tensor(self.estimates[0][low:high])
        return rician_floor.without_floor(measured, network, self.sigma)[first - low : last - low]

    def _correct(self, first, last, estimate):
        """Output slices first..last-1: the measured band becomes `estimate`, the rest stays the network's."""
        correction = estimate - self._tensor(self.estimates[0][first:last])
        if self.in_shape != self.out_shape:
            correction = fourier_resample(correction, self.out_shape)
        self.output[first:last] += correction.cpu().numpy()


class _InputGridRestorer(MeasuredBandRestorer):
    """The step with its result kept on the input grid (the band it decides), the network's output left as it is."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.result = np.empty(self.measured.shape, dtype=np.float32)

    def _correct(self, first, last, estimate):
        self.result[first:last] = estimate.cpu().numpy()


def restored_on_input_grid(measured: np.ndarray, output: np.ndarray, sigma: float, device, magnitude: bool,
                           noise_scale: float = 1.0) -> np.ndarray:
    """The whole step on a (S, r, c) stack at once from the network's `output` (not changed): the result on the
    input's own grid, the band the step decides (beyond it the network's output stays as it is)."""
    restorer = _InputGridRestorer(measured, output, sigma, device, magnitude, noise_scale)
    restorer.advance(measured.shape[0])
    return restorer.result
