"""The technique catalogue's batch augmentations: affine, colour jitter, random erasing,
mixup, cutmix and the named policies. Each test checks that an op acts as documented, not
only that it runs."""

from __future__ import annotations


import pytest
import torch

from gridrun.torch._augment import (ERASE_AREA, POLICIES, affine_at, apply_policy, augment,
                                    color_jitter, cutmix, jitter_at, mixup, random_affine,
                                    random_crop, random_erasing, random_flip, sample_beta)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 16, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """Random pixels in [0.1, 0.9]: no symmetry, no zeros, room for brightness either way."""
    return 0.1 + 0.8 * torch.rand(n, c, h, w, generator=gen(seed))


def one_pixel(size: int, row: int, col: int) -> torch.Tensor:
    x = torch.zeros(1, 1, size, size)
    x[0, 0, row, col] = 1.0
    return x


def bright(out: torch.Tensor) -> list[list[int]]:
    """(row, col) of the pixels above 1/2 of a one-image, one-channel batch."""
    return (out[0, 0] > 0.5).nonzero().tolist()


# Every random op of the module, as (name, function of (x, generator)).
OPS = {
    "crop": lambda x, g: random_crop(x, (4, 4), g),
    "flip": random_flip,
    "augment": augment,
    "rotation": lambda x, g: random_affine(x, g, rotation=30),
    "zoom": lambda x, g: random_affine(x, g, zoom=0.3),
    "shear": lambda x, g: random_affine(x, g, shear=30),
    "affine_reflect": lambda x, g: random_affine(x, g, rotation=20, zoom=0.2, shear=10,
                                                 fill="reflect"),
    "brightness": lambda x, g: color_jitter(x, g, brightness=0.5),
    "contrast": lambda x, g: color_jitter(x, g, contrast=0.5),
    "saturation": lambda x, g: color_jitter(x, g, saturation=0.5),
    "hue": lambda x, g: color_jitter(x, g, hue=0.2),
    "erasing": lambda x, g: random_erasing(x, g, p=1.0),
    "strong": lambda x, g: apply_policy("strong", x, g),
}


# ---------------------------------------------------------------- every op

@pytest.mark.parametrize("name", OPS)
def test_op_changes_pixels_and_keeps_shape_dtype_device(name):
    x = images()
    out = OPS[name](x, gen(0))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    changed = (out != x).flatten(1).any(1)
    assert changed.float().mean() >= 0.25  # flip: each image with probability 1/2
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", OPS)
def test_same_seed_same_output_and_same_numbers_drawn(name):
    x = images()
    g1, g2 = gen(3), gen(3)
    out1, out2 = OPS[name](x, g1), OPS[name](x, g2)
    assert torch.equal(out1, out2)
    assert torch.equal(g1.get_state(), g2.get_state())
    assert not torch.equal(g1.get_state(), gen(3).get_state())  # it did draw
    # Consumption depends on the batch size, not on the pixels.
    g3 = gen(3)
    OPS[name](torch.rand(16, 3, 32, 32), g3)
    assert torch.equal(g3.get_state(), g1.get_state())
    assert not torch.equal(OPS[name](x, gen(4)), out1)


@pytest.mark.parametrize("call, draws", [
    (lambda x, g: random_affine(x, g, rotation=10), lambda g: torch.rand(
        16, 3, generator=g, dtype=torch.float64)),
    (lambda x, g: color_jitter(x, g, hue=0.1), lambda g: torch.rand(16, 4, generator=g)),
    (lambda x, g: random_erasing(x, g, p=0.5), lambda g: torch.rand(
        16, 5, generator=g, dtype=torch.float64)),
])
def test_ops_draw_the_documented_numbers(call, draws):
    g, expected = gen(5), gen(5)
    call(images(), g)
    draws(expected)
    assert torch.equal(g.get_state(), expected.get_state())


@pytest.mark.parametrize("call, channels", [
    (lambda x, g: random_affine(x, g), 3),
    (lambda x, g: random_affine(x, g, rotation=0, zoom=0.0, shear=0, fill="reflect"), 3),
    (lambda x, g: color_jitter(x, g), 3),
    (lambda x, g: color_jitter(x, g), 1),  # no saturation or hue: any channel count
    (lambda x, g: random_erasing(x, g, p=0), 3),
    (lambda x, g: apply_policy("none", x, g), 3),
])
def test_zero_strength_returns_the_input_and_draws_nothing(call, channels):
    x, g = images(c=channels), gen(0)
    assert call(x, g) is x
    assert torch.equal(g.get_state(), gen(0).get_state())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", OPS)
def test_a_seed_gives_the_same_result_on_cpu_and_gpu(name):
    x = images()
    cpu = OPS[name](x, gen(7))
    gpu = OPS[name](x.cuda(), gen(7))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- affine

def test_rotation_turns_content_clockwise_about_the_centre():
    x = one_pixel(9, row=4, col=7)  # 3 pixels right of the centre (4, 4)
    out = affine_at(x, torch.tensor([90.0]), torch.ones(1), torch.zeros(1))
    assert bright(out) == [[7, 4]]  # 3 pixels below it
    out = affine_at(x, torch.tensor([180.0]), torch.ones(1), torch.zeros(1))
    assert bright(out) == [[4, 1]]


def test_rotation_keeps_angles_true_on_a_non_square_image():
    x = torch.zeros(1, 1, 16, 8)
    x[0, 0, 11, 3:5] = 1.0  # 3.5 rows below the centre, on the middle columns
    out = affine_at(x, torch.tensor([-90.0]), torch.ones(1), torch.zeros(1))
    cols = sorted({c for _, c in bright(out)})
    assert cols == [7]  # 3.5 columns right of the centre, not stretched to the edge


def test_shear_shifts_rows_in_proportion_to_their_distance_from_the_centre():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 2, 4] = x[0, 0, 7, 4] = 1.0  # 2 above and 3 below the centre column
    out = affine_at(x, torch.zeros(1), torch.ones(1), torch.tensor([45.0]))
    assert bright(out) == [[2, 2], [7, 7]]


def test_zoom_scales_distances_from_the_centre():
    x = one_pixel(9, row=4, col=6)  # 2 right of the centre
    assert bright(affine_at(x, torch.zeros(1), torch.tensor([1.5]), torch.zeros(1))) == [[4, 7]]
    assert affine_at(x, torch.zeros(1), torch.tensor([0.5]),
                     torch.zeros(1))[0, 0, 4, 5].item() > 0.2
    # Zooming out of an all-ones image leaves zeros at the border with constant fill.
    out = affine_at(torch.ones(1, 1, 16, 16), torch.zeros(1), torch.tensor([0.8]),
                    torch.zeros(1))
    assert out[0, 0, 0].max() < 0.5 and out[0, 0, 8, 8] == pytest.approx(1.0)


def test_random_affine_ranges_bound_each_images_transform():
    # One bright pixel 10 right of the centre: after a rotation of at most 20 degrees
    # it stays in a thin wedge; shift and scale left alone, its distance stays 10.
    n, size = 256, 33
    x = one_pixel(size, row=16, col=26).expand(n, 1, size, size)
    out = random_affine(x, gen(0), rotation=20)
    pos = out.flatten(1).argmax(1)
    dy, dx = (pos // size - 16).float(), (pos % size - 16).float()
    angles = torch.rad2deg(torch.atan2(dy, dx))
    assert angles.abs().max() <= 20 + 6  # one pixel at radius 10 is ~6 degrees
    assert angles.min() < -10 and angles.max() > 10  # both directions, not only one
    assert ((dx ** 2 + dy ** 2).sqrt() - 10).abs().max() <= 1.0


def test_fill_modes_give_different_borders_on_a_rotated_image():
    ones = torch.ones(1, 1, 16, 16)
    turn = (torch.tensor([45.0]), torch.ones(1), torch.zeros(1))
    corners = [(0, 0), (0, -1), (-1, 0), (-1, -1)]
    constant = affine_at(ones, *turn, fill="constant")
    assert all(constant[0, 0, r, c] == 0 for r, c in corners)
    for fill in ("nearest", "reflect"):
        out = affine_at(ones, *turn, fill=fill)
        torch.testing.assert_close(out, ones)
    # On a non-constant image the three fills all differ, and only at the border.
    x = images(1, 1, 16, 16)
    outs = {f: affine_at(x, *turn, fill=f) for f in ("constant", "nearest", "reflect")}
    for a, b in [("constant", "nearest"), ("constant", "reflect"), ("nearest", "reflect")]:
        assert not torch.allclose(outs[a], outs[b])
        torch.testing.assert_close(outs[a][..., 6:10, 6:10], outs[b][..., 6:10, 6:10])
    # random_affine passes its fill through.
    assert not torch.equal(random_affine(ones, gen(0), rotation=45, fill="constant"),
                           random_affine(ones, gen(0), rotation=45, fill="nearest"))


def test_nearest_repeats_the_edge_and_reflect_mirrors_the_image():
    # A left-to-right ramp zoomed out to half size: columns 2..5 hold the image.
    x = torch.linspace(0, 1, 8).expand(1, 1, 8, 8).clone()
    half = (torch.zeros(1), torch.tensor([0.5]), torch.zeros(1))
    row = {f: affine_at(x, *half, fill=f)[0, 0, 4] for f in ("constant", "nearest", "reflect")}
    inside = row["constant"][2:6]
    assert (row["constant"][[0, 1, 6, 7]] == 0).all()
    torch.testing.assert_close(row["nearest"][2:6], inside)
    torch.testing.assert_close(row["reflect"][2:6], inside)
    torch.testing.assert_close(row["nearest"][:2], torch.zeros(2))  # the edge: 0 on the left
    torch.testing.assert_close(row["nearest"][6:], torch.ones(2))   # and 1 on the right
    torch.testing.assert_close(row["reflect"][:2], inside[[1, 0]])  # mirrored at the edge
    torch.testing.assert_close(row["reflect"][6:], inside[[3, 2]])


@pytest.mark.parametrize("kwargs", [
    {"rotation": -1}, {"rotation": 181}, {"zoom": 1.0}, {"zoom": -0.1}, {"shear": 90},
    {"shear": -5}, {"rotation": float("nan")}, {"rotation": 10, "fill": "wrap"},
])
def test_random_affine_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        random_affine(images(), gen(0), **kwargs)


# ---------------------------------------------------------------- colour

def test_brightness_scales_each_images_pixel_sum_within_the_range():
    x = 0.5 * torch.rand(256, 3, 8, 8, generator=gen(0))  # 0.5 * 1.4 < 1: no clamping
    out = color_jitter(x, gen(1), brightness=0.4)
    ratio = out.flatten(1).sum(1) / x.flatten(1).sum(1)
    assert ratio.min() >= 0.6 - 1e-5 and ratio.max() <= 1.4 + 1e-5
    assert ratio.min() < 0.7 and ratio.max() > 1.3  # spread over the range, per image
    # One factor per image: every pixel of an image scaled alike.
    torch.testing.assert_close(out, x * ratio[:, None, None, None])


def test_brightness_is_clamped_to_one():
    out = color_jitter(torch.full((64, 1, 4, 4), 0.9), gen(0), brightness=0.5)
    assert out.max() == 1.0 and (out == 1.0).any() and (out < 0.9).any()


def test_contrast_blends_with_the_mean_gray():
    x = images(4)
    gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).mean((1, 2))
    flat = jitter_at(x, contrast=torch.zeros(4))
    torch.testing.assert_close(flat, gray[:, None, None, None].expand_as(x))
    torch.testing.assert_close(jitter_at(x, contrast=torch.ones(4)), x)
    half = jitter_at(x, contrast=torch.full((4,), 0.5))
    assert (half.std((1, 2, 3)) < 0.6 * x.std((1, 2, 3))).all()
    out = color_jitter(x, gen(0), contrast=0.5)
    assert not torch.allclose(out, x)


def test_saturation_zero_is_grayscale_and_one_is_the_image():
    x = images(4)
    gray = jitter_at(x, saturation=torch.zeros(4))
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    torch.testing.assert_close(jitter_at(x, saturation=torch.ones(4)), x)


def test_hue_turns_the_colour_circle_and_keeps_value():
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    torch.testing.assert_close(jitter_at(red, hue=torch.tensor([1 / 3]))[0, :, 0, 0],
                               torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(jitter_at(red, hue=torch.tensor([-1 / 3]))[0, :, 0, 0],
                               torch.tensor([0.0, 0.0, 1.0]))
    x = images(8)
    torch.testing.assert_close(jitter_at(x, hue=torch.zeros(8)), x)
    out = color_jitter(x, gen(0), hue=0.3)
    assert not torch.allclose(out, x, atol=1e-3)
    torch.testing.assert_close(out.amax(1), x.amax(1))  # HSV value is the largest channel
    torch.testing.assert_close(out.amin(1), x.amin(1))  # and saturation is kept too


@pytest.mark.parametrize("kwargs", [{"saturation": 0.2}, {"hue": 0.1},
                                    {"brightness": 0.1, "hue": 0.1}])
@pytest.mark.parametrize("channels", [1, 4])
def test_saturation_and_hue_need_rgb(kwargs, channels):
    with pytest.raises(ValueError, match="RGB"):
        color_jitter(images(c=channels), gen(0), **kwargs)


def test_brightness_and_contrast_work_on_one_channel():
    x = images(c=1)
    assert not torch.equal(color_jitter(x, gen(0), brightness=0.3, contrast=0.3), x)


@pytest.mark.parametrize("kwargs", [{"brightness": -0.1}, {"contrast": 1.5},
                                    {"saturation": 2.0}, {"hue": 0.6}])
def test_color_jitter_rejects_out_of_range_strengths(kwargs):
    with pytest.raises(ValueError):
        color_jitter(images(), gen(0), **kwargs)


# ---------------------------------------------------------------- erasing

def erased_rectangles(x: torch.Tensor, out: torch.Tensor) -> list[tuple[int, int] | None]:
    """For each image, (height, width) of the single zeroed rectangle, or None if untouched;
    fails unless the changed pixels are exactly one full rectangle of zeros in every
    channel (x has no zeros)."""
    sides = []
    for xi, oi in zip(x, out):
        zero = oi == 0
        assert torch.equal(zero, zero[:1].expand_as(zero)), "channels erased differently"
        assert torch.equal(oi[~zero], xi[~zero]), "pixels outside the rectangle changed"
        mask = zero[0]
        if not mask.any():
            sides.append(None)
            continue
        rows = mask.any(1).nonzero().flatten()
        cols = mask.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w, "not contiguous"
        assert mask.sum() == h * w, "not a full rectangle"
        sides.append((h, w))
    return sides


@pytest.mark.parametrize("h, w", [(32, 32), (28, 28), (8, 8), (7, 13), (64, 16)])
def test_erasing_with_p_one_zeroes_one_rectangle_of_the_allowed_area(h, w):
    x = images(256, 3, h, w)
    out = random_erasing(x, gen(0), p=1.0)
    sides = erased_rectangles(x, out)
    assert all(s is not None for s in sides)
    areas = torch.tensor([a * b / (h * w) for a, b in sides])
    assert areas.min() >= ERASE_AREA[0] and areas.max() <= ERASE_AREA[1]
    assert areas.max() - areas.min() > 0.15  # areas spread over the range
    assert len(set(sides)) > 10  # shapes differ from image to image
    tops = {(o[0] == 0).any(1).nonzero()[0].item() for o in out}
    assert len(tops) > 1  # and so do positions


def test_erasing_probability_is_per_image():
    x = images(2000, 1, 16, 16)
    sides = erased_rectangles(x, random_erasing(x, gen(0), p=0.3))
    assert 0.25 < sum(s is not None for s in sides) / len(sides) < 0.35


def test_erasing_with_p_zero_changes_nothing():
    x = images()
    assert torch.equal(random_erasing(x, gen(0), p=0.0), x)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_erasing_rejects_a_bad_probability(p):
    with pytest.raises(ValueError):
        random_erasing(images(), gen(0), p=p)


# ---------------------------------------------------------------- mixup and cutmix

def identity_images(n: int) -> torch.Tensor:
    """Image i is 1 at pixel (0, i) and 0 elsewhere: a mixed image tells its sources."""
    return torch.eye(n)[:, None, None, :].clone()


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixup_mixes_images_and_labels_with_the_same_weights(alpha, seed):
    n = 32
    x, y = identity_images(n), torch.arange(n)
    mixed, soft = mixup(x, y, gen(seed), alpha, num_classes=n)
    assert soft.shape == (n, n) and soft.dtype == torch.float32
    # With one class per image, the image weights are the label weights.
    torch.testing.assert_close(soft, mixed[:, 0, 0, :])
    torch.testing.assert_close(soft.sum(1), torch.ones(n))
    assert ((soft > 0).sum(1) <= 2).all()
    lam = sample_beta(gen(seed), alpha)  # the first draw of mixup
    partnered = soft.diagonal() < 1 - 1e-6
    assert partnered.sum() > n // 2  # most images have another partner
    torch.testing.assert_close(soft.diagonal()[partnered], torch.full_like(
        soft.diagonal()[partnered], lam))
    partner_weight = (soft * (1 - torch.eye(n))).amax(1)
    torch.testing.assert_close(partner_weight[partnered],
                               torch.full_like(partner_weight[partnered], 1 - lam))
    assert (soft > 0).sum(0).max() <= 2  # a permutation: each image used at most twice


def test_mixup_soft_labels_with_repeated_classes():
    x, y = images(64), torch.randint(0, 10, (64,), generator=gen(0))
    mixed, soft = mixup(x, y, gen(1), 0.4, num_classes=10)
    assert soft.shape == (64, 10)
    torch.testing.assert_close(soft.sum(1), torch.ones(64))
    assert ((soft > 0).sum(1) <= 2).all() and (soft >= 0).all()
    assert (soft[torch.arange(64), y] >= min(sample_beta(gen(1), 0.4),
                                             1 - sample_beta(gen(1), 0.4)) - 1e-6).all()
    assert not torch.equal(mixed, x)


def test_beta_draws_follow_alpha():
    small = torch.tensor([sample_beta(gen(s), 0.2) for s in range(300)], dtype=torch.double)
    large = torch.tensor([sample_beta(gen(s), 8.0) for s in range(300)], dtype=torch.double)
    assert ((small > 0) & (small < 1)).all() and ((large > 0) & (large < 1)).all()
    assert 0.4 < small.mean() < 0.6 and 0.45 < large.mean() < 0.55
    assert ((small < 0.1) | (small > 0.9)).float().mean() > 0.5  # U-shaped
    assert ((large - 0.5).abs() < 0.2).float().mean() > 0.8      # peaked at 1/2
    assert sample_beta(gen(0), 1.0) == sample_beta(gen(0), 1.0)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("seed", range(4))
def test_cutmix_label_weight_is_the_exact_pasted_pixel_fraction(alpha, seed):
    n, h, w = 16, 12, 20
    x = torch.arange(1, n + 1, dtype=torch.float32)[:, None, None, None].expand(
        n, 2, h, w).clone()  # image i is the constant i + 1
    y = torch.arange(n)
    mixed, soft = cutmix(x, y, gen(seed), alpha, num_classes=n)
    torch.testing.assert_close(soft.sum(1), torch.ones(n))
    assert ((soft > 0).sum(1) <= 2).all()
    pasted = mixed[:, 0] != x[:, 0, :1, :1]  # (N, H, W): pixels from another image
    # One box, the same for every image that has a partner.
    box = pasted.any(0)
    rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
    if len(rows):
        assert box.sum() == len(rows) * len(cols)
        assert rows[-1] - rows[0] + 1 == len(rows) and cols[-1] - cols[0] + 1 == len(cols)
    fraction = box.sum().item() / (h * w)
    lam = sample_beta(gen(seed), alpha)
    assert abs(fraction - (1 - lam)) < 0.15  # the area asked for, up to whole pixels
    for i in range(n):
        partner = int(mixed[i, 0][box].unique().item()) - 1 if box.any() else i
        assert torch.equal(mixed[i][:, ~box], x[i][:, ~box])  # the rest is the image's own
        if partner == i:
            assert soft[i, i] == pytest.approx(1.0)
        else:
            assert soft[i, i] == pytest.approx(1 - fraction)
            assert soft[i, partner] == pytest.approx(fraction)
            assert pasted[i].sum().item() / (h * w) == pytest.approx(fraction)
    assert not torch.equal(mixed, x) or fraction == 0


def test_cutmix_is_seeded_and_boxes_vary_with_the_seed():
    x, y = images(8), torch.arange(8)
    a = cutmix(x, y, gen(0), 1.0, num_classes=8)
    b = cutmix(x, y, gen(0), 1.0, num_classes=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    fractions = {round(1 - cutmix(x, y, gen(s), 1.0, num_classes=8)[1][0, 0].item(), 6)
                 for s in range(20)}
    assert len(fractions) > 5


@pytest.mark.parametrize("op", [mixup, cutmix])
@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan")])
def test_label_mixing_rejects_a_non_positive_alpha(op, alpha):
    with pytest.raises(ValueError, match="alpha"):
        op(images(4), torch.arange(4), gen(0), alpha, num_classes=4)


# ---------------------------------------------------------------- policies

def test_policies_none_standard_strong():
    assert POLICIES == ("none", "standard", "strong")
    x = images(64)
    assert torch.equal(apply_policy("none", x, gen(0)), x)
    assert torch.equal(apply_policy("standard", x, gen(0)), augment(x, gen(0)))
    strong = apply_policy("strong", x, gen(0))
    assert not torch.equal(strong, augment(x, gen(0)))
    # strong is the documented chain, drawing from one generator in that order.
    g = gen(0)
    chain = augment(x, g)
    chain = random_affine(chain, g, rotation=15, zoom=0.1)
    chain = color_jitter(chain, g, brightness=0.2, contrast=0.2)
    chain = random_erasing(chain, g, p=0.25)
    assert torch.equal(strong, chain)
    # and its fill reaches the affine step.
    assert not torch.equal(apply_policy("strong", x, gen(0), fill="reflect"), strong)


def test_unknown_policy_names_the_allowed_ones():
    with pytest.raises(ValueError, match="none, standard, strong"):
        apply_policy("heavy", images(), gen(0))
    with pytest.raises(ValueError, match="fill"):
        apply_policy("strong", images(), gen(0), fill="wrap")
