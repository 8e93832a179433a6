"""The collaborative Wiener filter on groups of similar blocks (MRSuperResLib.block_matching), on known signals."""

import pytest
import torch

from MRSuperResLib import block_matching
from MRSuperResLib.block_matching import block_matching_wiener, match_groups
from MRSuperResLib.data_consistency import wiener_filter


def _random(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _mse(a, b):
    return float((a - b).square().mean())


def test_groups_hold_the_planted_copies_of_their_reference():
    pilot = _random((3, 32, 32), 1)
    reference = pilot[1, 12:20, 12:20].clone()  # a reference block: rows and columns on the 6-pixel grid
    pilot[1, 15:23, 10:18] = reference  # the same slice, 3 rows down and 2 columns left
    pilot[2, 10:18, 13:21] = reference  # the next slice, 2 rows up and 1 column right
    groups = match_groups(pilot, depth=1, first=0, last=3)
    tops = block_matching._grid(32, block_matching.STEP, None).tolist()
    index = (1 * len(tops) + tops.index(12)) * len(tops) + tops.index(12)
    group = [tuple(block) for block in groups[index].tolist()]
    assert group[0] == (1, 12, 12) and len(group) == block_matching.GROUP_SIZE
    assert set(group[1:3]) == {(1, 15, 10), (2, 10, 13)}


def test_every_group_lies_inside_the_stack_and_leads_with_its_reference():
    slices, rows, cols, depth = 6, 20, 27, 4
    groups = match_groups(_random((slices, rows, cols), 2), depth, first=0, last=slices - depth + 1)
    assert (groups[..., 0] >= 0).all() and (groups[..., 0] <= slices - depth).all()
    assert (groups[..., 1] >= 0).all() and (groups[..., 1] <= rows - 8).all()
    assert (groups[..., 2] >= 0).all() and (groups[..., 2] <= cols - 8).all()
    assert len({tuple(block) for block in groups[:, 0].tolist()}) == groups.shape[0]  # each reference once


@pytest.mark.parametrize("pilot_factor, expected", [(0.0, "zero"), (1e6, "measured")])
def test_gain_follows_the_pilot(pilot_factor, expected):
    measured = 50 + 10 * _random((5, 24, 24), 3)
    filtered = block_matching_wiener(measured, pilot_factor * measured, 10.0, depth=4)
    wanted = torch.zeros_like(measured) if expected == "zero" else measured
    torch.testing.assert_close(filtered, wanted, atol=1e-3, rtol=1e-4)


def test_without_noise_the_measurement_comes_back_and_constants_stay_constant():
    measured = 50 + 10 * _random((5, 24, 24), 4)
    torch.testing.assert_close(block_matching_wiener(measured, measured * 0, 0.0, depth=4), measured)
    constant = torch.full((5, 24, 24), 80.0)
    torch.testing.assert_close(block_matching_wiener(constant, constant, 5.0, depth=4), constant, atol=1e-3, rtol=0)


def test_repeated_structure_is_denoised_better_than_with_single_blocks():
    """A random texture (no few DCT coefficients hold it) that repeats every 4 rows, within the search: a group of
    copies concentrates it in few coefficients of the DCT across the group, and the noise is left out."""
    truth = (100 + 20 * _random((1, 4, 48), 8)).repeat(4, 12, 1)
    measured = truth + 15 * _random(truth.shape, 5)
    pilot = truth + 5 * _random(truth.shape, 6)
    grouped = block_matching_wiener(measured, pilot, 15.0, depth=4)
    single = wiener_filter(measured, pilot, 15.0, depth=4)
    assert _mse(grouped, truth) < 0.9 * _mse(single, truth) and _mse(single, truth) < 0.2 * _mse(measured, truth)


def test_tiny_slices_take_smaller_groups_and_smaller_ones_are_refused():
    measured = 50 + 10 * _random((2, 8, 9), 7)
    # Two references (columns 0 and 1), each with one row offset x two column offsets inside the slice.
    assert match_groups(measured, depth=2, first=0, last=1).shape == (2, 2, 3)
    assert torch.isfinite(block_matching_wiener(measured, measured, 5.0, depth=4)).all()
    with pytest.raises(ValueError, match="smaller than the 8 x 8 blocks"):
        block_matching_wiener(torch.ones(3, 7, 20), torch.ones(3, 7, 20), 5.0, depth=4)
