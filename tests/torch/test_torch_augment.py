"""The augmentation technique: random crop with zero padding and horizontal flip, per batch."""

from __future__ import annotations

import time

import pytest
import torch

from gridrun.torch._augment import augment, crop_at, crop_padding, flip_where


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def one_pixel(n: int, size: int, row: int, col: int) -> torch.Tensor:
    x = torch.zeros(n, 1, size, size)
    x[:, :, row, col] = 1.0
    return x


def test_padding_is_an_eighth_of_the_side_and_at_least_one():
    assert crop_padding(32, 32) == (4, 4)
    assert crop_padding(28, 28) == (3, 3)
    assert crop_padding(8, 8) == (1, 1)
    assert crop_padding(4, 16) == (1, 2)


def test_shape_and_dtype_are_unchanged():
    x = torch.rand(16, 3, 32, 32)
    out = augment(x, gen(0))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_same_seed_same_output_other_seed_other_output():
    x = torch.rand(64, 3, 32, 32)
    assert torch.equal(augment(x, gen(1)), augment(x, gen(1)))
    assert not torch.equal(augment(x, gen(1)), augment(x, gen(2)))


@pytest.mark.parametrize("dy", [0, 1, 2])
@pytest.mark.parametrize("dx", [0, 1, 2])
def test_crop_moves_content_by_the_offset(dy, dx):
    x = one_pixel(1, 8, row=3, col=4)
    out = crop_at(x, (1, 1), torch.tensor([dy]), torch.tensor([dx]))
    expected = one_pixel(1, 8, row=3 + 1 - dy, col=4 + 1 - dx)
    assert torch.equal(out, expected)


def test_crop_shifts_in_zeros_and_drops_what_leaves_the_frame():
    x = torch.ones(1, 2, 8, 8)
    out = crop_at(x, (1, 1), torch.tensor([0]), torch.tensor([2]))  # down 1, left 1
    assert (out[:, :, 0, :] == 0).all() and (out[:, :, :, -1] == 0).all()
    assert out.sum() == 2 * 7 * 7
    corner = one_pixel(1, 8, row=7, col=0)
    assert crop_at(corner, (1, 1), torch.tensor([0]), torch.tensor([0])).sum() == 0


def test_flip_mirrors_only_the_masked_images():
    x = one_pixel(2, 8, row=2, col=1)
    out = flip_where(x, torch.tensor([True, False]))
    assert out[0, 0, 2, 6] == 1 and out[0].sum() == 1
    assert torch.equal(out[1], x[1])


def test_every_image_gets_its_own_shift_and_flip():
    # A bright pixel at (16, 6) of a 32x32 image: unflipped it lands in columns 2..10, flipped
    # in 21..29, so each output tells its own offset and flip.
    n, pad = 4096, 4
    out = augment(one_pixel(n, 32, row=16, col=6), gen(0))
    assert (out.flatten(1).sum(1) == 1).all()  # nothing lost, nothing duplicated
    pos = out.flatten(1).argmax(1)
    rows, cols = pos // 32, pos % 32
    flipped = cols > 15
    cols = torch.where(flipped, 31 - cols, cols)
    dys, dxs = rows - 16, cols - 6
    assert dys.abs().max() <= pad and dxs.abs().max() <= pad
    assert len(set(zip(dys.tolist(), dxs.tolist()))) == (2 * pad + 1) ** 2
    assert 0.45 < flipped.float().mean() < 0.55


def test_whole_batch_without_a_per_image_loop_is_fast():
    x = torch.rand(4096, 3, 32, 32)
    augment(x, gen(0))  # warm-up
    start = time.perf_counter()
    augment(x, gen(1))
    assert time.perf_counter() - start < 1.0
