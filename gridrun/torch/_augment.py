"""On-device augmentation: whole-batch tensor functions, no per-image Python loop.

The registry's ``augmentation`` technique is :func:`augment`: a random crop with zero
padding of 1/8 of the image side (at least 1 pixel), then a random horizontal flip.
Random numbers come from a CPU ``torch.Generator`` and are moved to the batch's device, so a
seed gives the same augmentation on CPU and GPU.

    >>> g = torch.Generator().manual_seed(0)
    >>> augment(torch.zeros(4, 1, 8, 8), g).shape
    torch.Size([4, 1, 8, 8])

The technique catalogue adds, on (N, C, H, W) float batches of [0, 1] pixels:

* :func:`random_affine`: per-image rotation, zoom and x-shear in one affine resampling;
* :func:`color_jitter`: per-image brightness, contrast, saturation and hue;
* :func:`random_erasing`: per-image cutout of one random rectangle;
* :func:`mixup` and :func:`cutmix`: per-batch mixing of images *and labels*;
* :func:`apply_policy`: the named pipelines of :data:`POLICIES`.

All of them except :func:`mixup` and :func:`cutmix` keep the labels: they return images only
and the caller keeps its label vector. :func:`mixup` and :func:`cutmix` return soft labels,
(N, num_classes) rows that sum to 1. Flips and rotations can change what an image means (a
mirrored or rotated digit or letter may be another class, or none); whether to use them is
the dataset's decision, not this module's.

Each random function draws its numbers in a fixed order and amount that depend only on the
batch size and its arguments, and the ``*_at`` functions apply given per-image parameters
with no randomness, so tests can check the geometry exactly. A random function whose
strengths are all zero returns its input unchanged and draws nothing.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["augment", "random_crop", "random_flip", "crop_at", "flip_where", "crop_padding",
           "random_affine", "affine_at", "FILLS", "color_jitter", "jitter_at",
           "random_erasing", "erase_at", "ERASE_AREA", "ERASE_RATIO", "mixup", "cutmix",
           "sample_beta", "POLICIES", "apply_policy"]

# ``fill`` of random_affine -> grid_sample's padding_mode.
FILLS = {"constant": "zeros", "nearest": "border", "reflect": "reflection"}
ERASE_AREA = (0.02, 0.33)  # random_erasing: rectangle area, fraction of the image
ERASE_RATIO = (0.3, 3.3)   # random_erasing: rectangle height / width, before fitting
POLICIES = ("none", "standard", "strong")
_GRAY = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights of R, G, B


def crop_padding(height: int, width: int) -> tuple[int, int]:
    """Zero padding (rows, columns) of the random crop: 1/8 of each side, at least 1."""
    return max(1, height // 8), max(1, width // 8)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding, then random horizontal flip, of an (N, C, H, W) batch."""
    pad = crop_padding(x.shape[-2], x.shape[-1])
    return random_flip(random_crop(x, pad, generator), generator)


def random_crop(x: torch.Tensor, pad: tuple[int, int],
                generator: torch.Generator) -> torch.Tensor:
    """Each image shifted by its own random offset in [-pad, pad] (rows and columns
    independently), with zeros shifted in."""
    n = x.shape[0]
    dy = torch.randint(0, 2 * pad[0] + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad[1] + 1, (n,), generator=generator).to(x.device)
    return crop_at(x, pad, dy, dx)


def crop_at(x: torch.Tensor, pad: tuple[int, int], dy: torch.Tensor,
            dx: torch.Tensor) -> torch.Tensor:
    """Zero-pad by ``pad`` and cut the (H, W) window whose top-left corner is (dy[i], dx[i])
    for image i. Pixel (r, c) lands at (r + pad[0] - dy[i], c + pad[1] - dx[i])."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad[1], pad[1], pad[0], pad[0]))
    # Two gathers (rows, then columns) with per-image index grids; expand() makes no copies.
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    padded = padded.gather(2, rows.expand(n, c, h, padded.shape[-1]))
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    return padded.gather(3, cols.expand(n, c, h, w))


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2."""
    mask = torch.rand(x.shape[0], generator=generator) < 0.5
    return flip_where(x, mask.to(x.device))


def flip_where(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Images with ``mask[i]`` True mirrored left-right, the others unchanged."""
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


# ---------------------------------------------------------------- affine

def random_affine(x: torch.Tensor, generator: torch.Generator, *, rotation: float = 0.0,
                  zoom: float = 0.0, shear: float = 0.0,
                  fill: str = "constant") -> torch.Tensor:
    """Each image rotated, zoomed and x-sheared by its own random amounts.

    Per image: rotation uniform in [-rotation, rotation] degrees, scale uniform in
    [1 - zoom, 1 + zoom] (above 1 enlarges the content) and shear uniform in
    [-shear, shear] degrees, all about the image centre (see :func:`affine_at`). ``fill``
    is what the area the transformed image no longer covers gets: ``"constant"`` zeros,
    ``"nearest"`` the nearest edge pixel, ``"reflect"`` the image mirrored at its edges.

    Draws one (N, 3) uniform tensor, or nothing when all three ranges are 0 (then ``x`` is
    returned as it is). Raises ValueError for an unknown ``fill`` or a range outside
    0 <= rotation <= 180, 0 <= zoom < 1, 0 <= shear < 90.
    """
    _check_fill(fill)
    _check_range("rotation", rotation, 180.0, closed=True)
    _check_range("zoom", zoom, 1.0, closed=False)
    _check_range("shear", shear, 90.0, closed=False)
    if rotation == 0 and zoom == 0 and shear == 0:
        return x
    u = torch.rand(x.shape[0], 3, generator=generator, dtype=torch.float64) * 2 - 1
    return affine_at(x, u[:, 0] * rotation, 1 + u[:, 1] * zoom, u[:, 2] * shear, fill)


def affine_at(x: torch.Tensor, rotation: torch.Tensor, scale: torch.Tensor,
              shear: torch.Tensor, fill: str = "constant") -> torch.Tensor:
    """Image i resampled under its own affine map, with no randomness.

    The map, in pixel units about the image centre with x to the right and y down, is
    ``R(rotation[i]) @ Shear(shear[i]) @ scale[i]``: scale first, then x-shear
    ``[[1, tan(shear)], [0, 1]]``, then a rotation that turns the content clockwise on
    screen for positive degrees. Working in pixels keeps angles true on non-square images.
    Bilinear sampling (``align_corners=False``); ``fill`` as in :func:`random_affine`.
    The per-image parameters are 1-D CPU tensors; the matrices are built in float64 on the
    CPU and then moved, so CPU and GPU sample the same points.
    """
    _check_fill(fill)
    n, _, h, w = x.shape
    rot = torch.deg2rad(rotation.to(torch.float64).cpu())
    tan = torch.tan(torch.deg2rad(shear.to(torch.float64).cpu()))
    s = scale.to(torch.float64).cpu()
    cos, sin = torch.cos(rot), torch.sin(rot)
    # Forward map M = R @ Sh @ sI; affine_grid wants the inverse (output -> input point).
    m = torch.stack([torch.stack([cos * s, (cos * tan - sin) * s], -1),
                     torch.stack([sin * s, (sin * tan + cos) * s], -1)], -2)
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    inv = torch.stack([torch.stack([m[:, 1, 1], -m[:, 0, 1]], -1),
                       torch.stack([-m[:, 1, 0], m[:, 0, 0]], -1)], -2) / det[:, None, None]
    # Normalised coordinates run over w (x) and h (y) pixels: conjugate by diag(w/2, h/2).
    half = torch.tensor([w / 2, h / 2], dtype=torch.float64)
    inv = inv * half[None, None, :] / half[None, :, None]
    theta = torch.cat([inv, torch.zeros(n, 2, 1, dtype=torch.float64)], 2)
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=FILLS[fill],
                         align_corners=False)


def _check_fill(fill: str) -> None:
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; choose one of {', '.join(FILLS)}")


def _check_range(name: str, value: float, limit: float, *, closed: bool) -> None:
    """ValueError unless 0 <= value <= limit (closed) or 0 <= value < limit."""
    ok = 0 <= value <= limit if closed else 0 <= value < limit
    if not ok:  # also catches NaN
        bound = "<=" if closed else "<"
        raise ValueError(f"{name} must satisfy 0 <= {name} {bound} {limit:g}, got {value!r}")


# ---------------------------------------------------------------- color

def color_jitter(x: torch.Tensor, generator: torch.Generator, *, brightness: float = 0.0,
                 contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0) -> torch.Tensor:
    """Each image's brightness, contrast, saturation and hue changed by its own factors.

    Per image, in this fixed order, each step clamped to [0, 1]: multiply by a brightness
    factor uniform in [1 - brightness, 1 + brightness]; blend with the image's mean gray by
    a contrast factor uniform in [1 - contrast, 1 + contrast]; blend with the image's
    grayscale by a saturation factor uniform in [1 - saturation, 1 + saturation]; shift the
    hue by uniform [-hue, hue] turns of the colour circle (exactly, through HSV; see
    :func:`jitter_at`). Brightness, contrast and saturation must lie in [0, 1] and hue in
    [0, 0.5].

    Draws one (N, 4) uniform tensor, or nothing when all four are 0 (then ``x`` is returned
    as it is). Raises ValueError for a value out of range, or for saturation or hue on a
    batch without exactly 3 (RGB) channels.
    """
    for name, value, limit in (("brightness", brightness, 1.0), ("contrast", contrast, 1.0),
                               ("saturation", saturation, 1.0), ("hue", hue, 0.5)):
        _check_range(name, value, limit, closed=True)
    if saturation or hue:
        _need_rgb(x)
    if brightness == 0 and contrast == 0 and saturation == 0 and hue == 0:
        return x
    u = torch.rand(x.shape[0], 4, generator=generator) * 2 - 1
    # A zero strength skips its step (the numbers are drawn all the same).
    return jitter_at(x, 1 + u[:, 0] * brightness if brightness else None,
                     1 + u[:, 1] * contrast if contrast else None,
                     1 + u[:, 2] * saturation if saturation else None,
                     u[:, 3] * hue if hue else None)


def jitter_at(x: torch.Tensor, brightness: torch.Tensor | None = None,
              contrast: torch.Tensor | None = None, saturation: torch.Tensor | None = None,
              hue: torch.Tensor | None = None) -> torch.Tensor:
    """Image i's colours changed by the given per-image factors, with no randomness.

    ``brightness[i]`` multiplies; ``contrast[i]`` and ``saturation[i]`` blend with the
    image's mean gray and its grayscale (factor 1 keeps the image, 0 gives the gray); and
    ``hue[i]`` is added to the HSV hue in turns (0.5 = complementary colours). None skips a
    step. Gray is the BT.601 luma of RGB images and the channel mean otherwise. Each step
    is clamped to [0, 1].
    """
    def per_image(f: torch.Tensor) -> torch.Tensor:
        return f.to(device=x.device, dtype=x.dtype)[:, None, None, None]

    if brightness is not None:
        x = (x * per_image(brightness)).clamp(0, 1)
    if contrast is not None:
        mean = _gray(x).mean(dim=(-3, -2, -1), keepdim=True)
        x = _blend(x, mean, per_image(contrast))
    if saturation is not None:
        _need_rgb(x)
        x = _blend(x, _gray(x), per_image(saturation))
    if hue is not None:
        _need_rgb(x)
        h, s, v = _rgb_to_hsv(x)
        x = _hsv_to_rgb(torch.remainder(h + per_image(hue)[:, 0], 1.0), s, v)
    return x


def _need_rgb(x: torch.Tensor) -> None:
    if x.shape[1] != 3:
        raise ValueError(f"saturation and hue need RGB images (3 channels), got "
                         f"{x.shape[1]} channel(s)")


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) grayscale: BT.601 luma for 3 channels, the channel mean otherwise."""
    if x.shape[1] == 3:
        weights = torch.tensor(_GRAY, device=x.device, dtype=x.dtype)[None, :, None, None]
        return (x * weights).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``factor * x + (1 - factor) * other``, clamped to [0, 1]."""
    return (factor * x + (1 - factor) * other).clamp(0, 1)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) RGB -> hue in turns [0, 1), saturation, value, each (N, H, W)."""
    r, g, b = x.unbind(1)
    value, argmax = x.max(1)
    delta = value - x.min(1).values
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    # Sextant of the hue from whichever channel is largest (ties: R, then G, as in max()).
    hue = torch.where(argmax == 0, torch.remainder((g - b) / safe, 6.0),
                      torch.where(argmax == 1, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    hue = torch.where(delta > 0, hue / 6.0, torch.zeros_like(hue))
    sat = torch.where(value > 0, delta / torch.where(value > 0, value, torch.ones_like(value)),
                      torch.zeros_like(value))
    return hue, sat, value


def _hsv_to_rgb(hue: torch.Tensor, sat: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Hue in turns, saturation, value, each (N, H, W) -> (N, 3, H, W) RGB.

    The branch-free form: channel n (5 for R, 3 for G, 1 for B) is
    ``v - v * s * clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 * hue) mod 6``.
    """
    n = torch.tensor([5.0, 3.0, 1.0], device=hue.device, dtype=hue.dtype)[None, :, None, None]
    k = torch.remainder(n + 6.0 * hue[:, None], 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp(0, 1)
    return value[:, None] - value[:, None] * sat[:, None] * ramp


# ---------------------------------------------------------------- erasing

def random_erasing(x: torch.Tensor, generator: torch.Generator, *, p: float) -> torch.Tensor:
    """With probability ``p``, each image gets one random rectangle set to 0 (cutout).

    The rectangle's area is uniform in :data:`ERASE_AREA` (fractions of the image) and its
    height/width ratio log-uniform in :data:`ERASE_RATIO`; the sides are rounded to whole
    pixels and fitted so that the rectangle lies inside the image and its pixel area stays
    within :data:`ERASE_AREA` (fitting can push the ratio out of its range on small or very
    oblong images). Its position is uniform over the places where it fits. All channels are
    erased.

    Draws one (N, 5) uniform tensor, or nothing when ``p`` is 0 (then ``x`` is returned as it
    is). Raises ValueError unless 0 <= p <= 1.
    """
    _check_range("p", p, 1.0, closed=True)
    if p == 0:
        return x
    n, _, h, w = x.shape
    u = torch.rand(n, 5, generator=generator, dtype=torch.float64)
    lo, hi = ERASE_AREA
    area = (lo + (hi - lo) * u[:, 1]) * h * w
    ratio = torch.exp(math.log(ERASE_RATIO[0])
                      + (math.log(ERASE_RATIO[1]) - math.log(ERASE_RATIO[0])) * u[:, 2])
    eh = torch.round(torch.sqrt(area * ratio)).clamp(1, h)
    # Width from the area left for this height, kept within the area bounds and the image.
    ew = torch.round(area / eh)
    ew = torch.minimum(torch.maximum(ew, torch.ceil(lo * h * w / eh)),
                       torch.floor(hi * h * w / eh)).clamp(1, w)
    top = torch.floor(u[:, 3] * (h - eh + 1))
    left = torch.floor(u[:, 4] * (w - ew + 1))
    erase = u[:, 0] < p
    eh, ew = torch.where(erase, eh, 0), torch.where(erase, ew, 0)
    return erase_at(x, top.long(), left.long(), eh.long(), ew.long())


def erase_at(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: torch.Tensor,
             width: torch.Tensor) -> torch.Tensor:
    """Image i with rows [top[i], top[i] + height[i]) x columns [left[i], left[i] + width[i])
    set to 0 in every channel; height or width 0 leaves the image unchanged."""
    _, _, h, w = x.shape
    top, left, height, width = (t.to(x.device)[:, None] for t in (top, left, height, width))
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= top) & (rows < top + height)   # (N, H)
    in_cols = (cols >= left) & (cols < left + width)  # (N, W)
    mask = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    return x.masked_fill(mask, 0.0)


# ---------------------------------------------------------------- label mixing

def sample_beta(generator: torch.Generator, alpha: float) -> float:
    """One draw from Beta(alpha, alpha), determined by ``generator``.

    torch's Beta and Gamma samplers take no generator, so this draws one 63-bit seed from
    ``generator`` (one ``torch.randint`` call) and samples NumPy's Beta with a
    ``numpy.random.Generator`` seeded from it. Raises ValueError unless alpha > 0.
    """
    if not alpha > 0 or math.isinf(alpha):
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mixup(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, alpha: float, *,
          num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image blended with a random partner from the batch, and its label likewise.

    ``lam ~ Beta(alpha, alpha)`` once per batch (:func:`sample_beta`) and the partners are a
    random permutation ``perm``; returns ``lam * x + (1 - lam) * x[perm]`` and the soft
    labels ``lam * onehot(y) + (1 - lam) * onehot(y[perm])``, an (N, num_classes) tensor of
    ``x``'s dtype whose rows sum to 1. ``y`` holds int64 class indices in
    [0, num_classes). Draws the Beta seed, then the permutation. Raises ValueError unless
    alpha > 0.
    """
    lam = sample_beta(generator, alpha)
    perm = torch.randperm(x.shape[0], generator=generator)
    mixed = lam * x + (1 - lam) * x[perm.to(x.device)]
    return mixed, _soft_labels(y, perm, lam, num_classes, x.dtype)


def cutmix(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, alpha: float, *,
           num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image gets a box pasted from a random partner, and a label mixed by area.

    ``lam ~ Beta(alpha, alpha)`` once per batch (:func:`sample_beta`); one box per batch,
    with sides ``round(H * sqrt(1 - lam))`` and ``round(W * sqrt(1 - lam))`` (area fraction
    1 - lam up to rounding) at a uniform position fully inside the image, is copied from
    ``x[perm]``, ``perm`` a random permutation. The soft labels weight the partner's class by
    the exact pasted pixel fraction and the image's own class by the rest; rows sum to 1.
    Draws the Beta seed, the permutation, then the box's top row and left column. Raises
    ValueError unless alpha > 0.
    """
    n, _, h, w = x.shape
    lam = sample_beta(generator, alpha)
    perm = torch.randperm(n, generator=generator)
    bh, bw = round(h * math.sqrt(1 - lam)), round(w * math.sqrt(1 - lam))
    top = int(torch.randint(0, h - bh + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - bw + 1, (1,), generator=generator))
    mixed = x.clone()
    mixed[:, :, top:top + bh, left:left + bw] = x[perm.to(x.device), :, top:top + bh,
                                                  left:left + bw]
    kept = 1 - (bh * bw) / (h * w)
    return mixed, _soft_labels(y, perm, kept, num_classes, x.dtype)


def _soft_labels(y: torch.Tensor, perm: torch.Tensor, lam: float, num_classes: int,
                 dtype: torch.dtype) -> torch.Tensor:
    """``lam * onehot(y) + (1 - lam) * onehot(y[perm])`` as (N, num_classes) ``dtype``."""
    if y.ndim != 1 or y.dtype != torch.int64:
        raise ValueError(f"y must be a 1-D int64 label vector, got {y.dtype} of shape "
                         f"{tuple(y.shape)}")
    onehot = F.one_hot(y, num_classes).to(dtype)
    return lam * onehot + (1 - lam) * onehot[perm.to(y.device)]


# ---------------------------------------------------------------- policies

def apply_policy(name: str, x: torch.Tensor, generator: torch.Generator, *,
                 fill: str = "constant") -> torch.Tensor:
    """The named label-keeping augmentation pipeline of :data:`POLICIES` on a batch.

    ``"none"`` returns ``x``; ``"standard"`` is :func:`augment` (crop and flip);
    ``"strong"`` is :func:`augment`, then :func:`random_affine` (rotation 15 degrees,
    zoom 0.1, ``fill``), then :func:`color_jitter` (brightness 0.2, contrast 0.2), then
    :func:`random_erasing` (p 0.25). Raises ValueError for an unknown name or fill.
    """
    if name not in POLICIES:
        raise ValueError(f"unknown augmentation policy {name!r}; choose one of "
                         f"{', '.join(POLICIES)}")
    _check_fill(fill)
    if name == "none":
        return x
    x = augment(x, generator)
    if name == "standard":
        return x
    x = random_affine(x, generator, rotation=15.0, zoom=0.1, fill=fill)
    x = color_jitter(x, generator, brightness=0.2, contrast=0.2)
    return random_erasing(x, generator, p=0.25)
