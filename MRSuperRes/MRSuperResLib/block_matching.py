"""Collaborative empirical Wiener filter on groups of similar blocks (BM3D/BM4D's second step), guided by a pilot.

The fixed-block filter of data_consistency.py treats each 4 x 8 x 8 block on its own. Here each reference block is
filtered together with the GROUP_SIZE - 1 blocks most like it on the pilot (same slices, or one slice up or down,
within a few pixels): anatomy repeats within a neighbourhood, the noise does not, so a group separates them better
than one block. The transform is the block's own (2D DCT of each slice patch, DCT across its slices), then a DCT
across the group; each coefficient is kept in proportion pilot^2 / (pilot^2 + sigma^2), and the filtered blocks go
back to their places with BM3D's weights (times a Kaiser window, which softens block edges).

Measured with the quality model on the held-out volumes of `mrsuperres evaluate` (docs/evaluation/
model-comparison.md), as the final pass when denoising: +0.45 dB mean PSNR at x1 over the fixed blocks, +0.15 to
+0.2 dB on the real GE series; enhance() at x1 takes 24-28 s instead of 18 s for 256 x 256 x 176 on the 2-core CPU
(fast model), the step 0.18 s on an H100. When super-resolving it gains only +0.07 to +0.13 dB at x2 for 9-10 s
more on that CPU, so data_consistency.py uses it for denoising (x1) only.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .transforms import dct_matrix

BLOCK = 8  # in-plane block size (pixels), as the fixed-block filter
# Spacing of the reference blocks and reach of the search. Mean PSNR at x1 as the final pass after a fixed-block
# pilot pass, quality model, and the cost of both passes on 24 slices of 256 x 256 on the 2-core CPU: spacing 6,
# +-5 / +-2 pixels: 38.96 dB, 0.07-0.09 s per slice (the fixed blocks alone: 38.51 dB, ~0.085 s); spacing 4,
# +-7 / +-3: 39.01 dB, 0.18 s; the same in both passes: 39.13 dB, 0.35 s.
STEP = 6  # in-plane spacing of the reference blocks (the last row and column are always references)
SEARCH_RADIUS = 5  # in-plane search within +-5 pixels in the reference's own slices...
NEIGHBOUR_SLICE_RADIUS = 1  # ...and in the windows one slice up and down,
NEIGHBOUR_SEARCH_RADIUS = 2  # there within +-2 pixels
GROUP_SIZE = 8  # blocks per group, the reference first
KAISER_BETA = 2.0
# Pixels (block windows x H x W) matched at once. For 16 windows of 256 x 256 slices: 171 candidate offsets x 43 x 43
# reference positions x 16 distances (20 MB), and squared differences of 19 slices x 11 column offsets (55 MB).
MATCH_PIXELS = {"cpu": 16 * 256 * 256, "cuda": 64 * 256 * 256}
# Group elements (blocks x pixels) filtered at once: one transform per group of this size.
ELEMENTS_PER_GROUP = {"cpu": 4_000_000, "cuda": 64_000_000}


def slice_halo(depth: int) -> int:
    """Slices beyond a range that its result depends on: a block of a group may lie NEIGHBOUR_SLICE_RADIUS slices
    off its reference, whose own search reaches as far again."""
    return depth - 1 + 2 * NEIGHBOUR_SLICE_RADIUS


def _grid(length: int, step: int, device) -> torch.Tensor:
    """Top-left positions of the blocks along one axis: every `step`, and the last one always."""
    positions = list(range(0, length - BLOCK + 1, step))
    if positions[-1] != length - BLOCK:
        positions.append(length - BLOCK)
    return torch.tensor(positions, device=device)


def _block_sums(squares: torch.Tensor, step: int) -> torch.Tensor:
    """Sums of BLOCK x BLOCK windows of (..., H, W) at the _grid x _grid positions."""
    rows, cols = squares.shape[-2:]
    sums = F.avg_pool2d(squares, BLOCK, step)
    if (cols - BLOCK) % step:
        sums = torch.cat([sums, F.avg_pool2d(squares[..., :, cols - BLOCK :], BLOCK, step)], -1)
    if (rows - BLOCK) % step:
        last_row = F.avg_pool2d(squares[..., rows - BLOCK :, :], BLOCK, step)
        if (cols - BLOCK) % step:
            corner = squares[..., rows - BLOCK :, cols - BLOCK :].mean((-2, -1), keepdim=True)
            last_row = torch.cat([last_row, corner], -1)
        sums = torch.cat([sums, last_row], -2)
    return sums * (BLOCK * BLOCK)


def _valid_offsets(positions: torch.Tensor, length: int, radius: int) -> int:
    """Fewest in-image offsets within +-radius that any block position along an axis has."""
    shifted = positions[:, None] + torch.arange(-radius, radius + 1, device=positions.device)[None]
    return int(((shifted >= 0) & (shifted <= length - BLOCK)).sum(1).min())


def match_groups(pilot: torch.Tensor, depth: int, first: int, last: int) -> torch.Tensor:
    """Groups for the reference blocks whose first slice is first..last-1 of (S, H, W) `pilot`: (R, G, 3) first
    slice and top-left corner of the G blocks most like each reference on the pilot (squared distance), the
    reference first. References are ordered by first slice, row, column."""
    slices, rows, cols = pilot.shape
    device = pilot.device
    tops, lefts = _grid(rows, STEP, device), _grid(cols, STEP, device)
    radius = SEARCH_RADIUS
    padded = F.pad(pilot[None], (radius, radius, radius, radius), mode="replicate")[0]
    offsets, distances = [], []
    for slice_offset in range(-NEIGHBOUR_SLICE_RADIUS, NEIGHBOUR_SLICE_RADIUS + 1):
        search = SEARCH_RADIUS if slice_offset == 0 else NEIGHBOUR_SEARCH_RADIUS
        span = torch.arange(-search, search + 1, device=device)
        # (row offset, column offset, block start, block row, block column); inf = candidate outside the stack.
        found = torch.full((len(span), len(span), last - first, len(tops), len(lefts)), float("inf"), device=device)
        low, high = max(first, -slice_offset), min(last, slices - depth + 1 - slice_offset)
        for row_index, row_offset in enumerate(span.tolist() if high > low else []):
            # Every column offset at once, as a view: (slices, column offsets, H, W).
            shifted = padded[low + slice_offset : high + slice_offset + depth - 1,
                             radius + row_offset : radius + row_offset + rows, radius - search : radius + search + cols]
            shifted = shifted.unfold(-1, cols, 1).permute(0, 2, 1, 3)
            sums = _block_sums((shifted - pilot[low : high + depth - 1, None]).square_(), STEP)
            if depth > 1:
                sums = sums.unfold(0, depth, 1).sum(-1)  # per slice -> per window of `depth` slices
            found[row_index, :, low - first : high - first] = sums.transpose(0, 1)
        rows_grid, cols_grid = torch.meshgrid(span, span, indexing="ij")
        offsets.append(torch.stack([torch.full_like(rows_grid, slice_offset), rows_grid, cols_grid], -1).reshape(-1, 3))
        distances.append(found.reshape(len(span) ** 2, *found.shape[2:]))
    offsets, distances = torch.cat(offsets), torch.cat(distances)
    inside_rows = (tops[None] + offsets[:, 1:2] >= 0) & (tops[None] + offsets[:, 1:2] <= rows - BLOCK)
    inside_cols = (lefts[None] + offsets[:, 2:3] >= 0) & (lefts[None] + offsets[:, 2:3] <= cols - BLOCK)
    distances.masked_fill_(~(inside_rows[:, None, :, None] & inside_cols[:, None, None, :]), float("inf"))
    distances[int((offsets == 0).all(1).nonzero())] = -1.0  # the reference leads its own group
    # Tiny images: no more blocks per group than every reference finds in its own slices, so that the group size
    # does not depend on which references share a call.
    group = min(GROUP_SIZE, _valid_offsets(tops, rows, radius) * _valid_offsets(lefts, cols, radius))
    best = distances.reshape(len(offsets), -1).T.topk(group, dim=1, largest=False).indices  # (R, G)
    firsts, row_starts, col_starts = torch.meshgrid(torch.arange(first, last, device=device), tops, lefts,
                                                    indexing="ij")
    references = torch.stack([firsts.reshape(-1), row_starts.reshape(-1), col_starts.reshape(-1)], 1)
    return references[:, None, :] + offsets[best]


def _kaiser_window(device) -> torch.Tensor:
    window = torch.from_numpy(np.kaiser(BLOCK, KAISER_BETA)).float().to(device)
    return (window[:, None] * window[None, :]).reshape(-1)


def _group_transform(values: torch.Tensor, across: torch.Tensor, patch_transform: torch.Tensor) -> torch.Tensor:
    """(G x depth, R x pixels) gathered blocks -> (G x depth x R, pixels) coefficients: the DCT across group and
    slices, then the 2D DCT of each patch."""
    return (across @ values).view(-1, patch_transform.shape[0]) @ patch_transform.T


def block_matching_wiener(measured: torch.Tensor, pilot: torch.Tensor, sigma: float, depth: int) -> torch.Tensor:
    """Collaborative Wiener filter of (S, H, W) `measured` slices (white noise of SD `sigma`) guided by `pilot`, in
    blocks of `depth` slices (a thinner stack uses its own thickness)."""
    if sigma <= 0:
        return measured.clone()
    measured, pilot = measured.float().contiguous(), pilot.float().contiguous()
    slices, rows, cols = measured.shape
    if min(rows, cols) < BLOCK:
        raise ValueError(f"slices of {rows} x {cols} pixels are smaller than the {BLOCK} x {BLOCK} blocks")
    depth = min(depth, slices)
    device = measured.device
    pixels = BLOCK * BLOCK
    patch_transform = torch.kron(dct_matrix(BLOCK, device), dct_matrix(BLOCK, device))
    rows_in_block, cols_in_block = torch.meshgrid(torch.arange(BLOCK, device=device),
                                                  torch.arange(BLOCK, device=device), indexing="ij")
    # Flat index of each pixel of a block relative to its first slice's top-left corner: (depth, pixels).
    within = (torch.arange(depth, device=device)[:, None] * (rows * cols)
              + (rows_in_block * cols + cols_in_block).reshape(1, -1))
    window = _kaiser_window(device)
    flat_measured, flat_pilot = measured.reshape(-1), pilot.reshape(-1)
    numerator = torch.zeros(slices * rows * cols, device=device)
    denominator = torch.zeros_like(numerator)
    transforms = {}
    elements = ELEMENTS_PER_GROUP.get(device.type, ELEMENTS_PER_GROUP["cpu"])
    starts = slices - depth + 1
    starts_per_match = max(1, MATCH_PIXELS.get(device.type, MATCH_PIXELS["cpu"]) // (rows * cols))
    for first in range(0, starts, starts_per_match):
        groups = match_groups(pilot, depth, first, min(starts, first + starts_per_match))
        size = groups.shape[1]
        if size not in transforms:  # DCT across the group and across the block's slices
            transforms[size] = torch.kron(dct_matrix(size, device), dct_matrix(depth, device))
        across = transforms[size]
        per_call = max(1, elements // (size * depth * pixels))
        for part in groups.split(per_call):
            count = part.shape[0]
            corners = part[..., 0] * (rows * cols) + part[..., 1] * cols + part[..., 2]  # (R, G)
            # (G x depth, R x pixels): both transforms are single matmuls.
            index = (corners.T[:, None, :, None] + within[None, :, None, :]).reshape(size * depth, count * pixels)
            gain = _group_transform(flat_pilot[index], across, patch_transform).square_()
            gain.div_(gain + sigma**2)
            weight = 1.0 / (gain.square().view(size * depth, count, pixels).sum((0, 2)) + 1e-3)  # (R,)
            coefficients = _group_transform(flat_measured[index], across, patch_transform)
            filtered = across.T @ (gain.mul_(coefficients) @ patch_transform).view(size * depth, -1)
            weights = (weight[:, None] * window).reshape(-1)
            numerator.index_add_(0, index.reshape(-1), filtered.mul_(weights).reshape(-1))
            denominator.index_add_(0, index.reshape(-1), weights.expand(size * depth, -1).reshape(-1))
    return (numerator / denominator).view(slices, rows, cols)
