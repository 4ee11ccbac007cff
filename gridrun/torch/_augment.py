"""On-device augmentation: whole-batch tensor functions, no per-image Python loop.

The registry's ``augmentation`` technique is :func:`augment`: a random crop with zero
padding of 1/8 of the image side (at least 1 pixel), then a random horizontal flip.
Random numbers come from a CPU ``torch.Generator`` and are moved to the batch's device, so a
seed gives the same augmentation on CPU and GPU.

    >>> g = torch.Generator().manual_seed(0)
    >>> augment(torch.zeros(4, 1, 8, 8), g).shape
    torch.Size([4, 1, 8, 8])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["augment", "random_crop", "random_flip", "crop_at", "flip_where", "crop_padding"]


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
