"""Window geometry: where the occluding patches go, and how a grid of per-window drops becomes a pixel map.

Windows along an axis of length ``n`` with size ``k`` and stride ``s`` start at 0, s, 2s, ... as long as they fit;
when ``s`` does not divide ``n - k`` one more window is placed flush with the far border (start ``n - k``), so
every pixel is covered by at least one window and no window hangs over the edge (Zeiler & Fergus slide a gray
square inside the image; Captum instead pads the last window out of the image, which gives edge pixels fewer
and smaller windows). A stride larger than the size would leave pixels that are never occluded, so it is
refused.
"""
from __future__ import annotations

import torch

from ..errors import FeatwidgetError


def pair(value, what: str) -> tuple[int, int]:
    """An int or an (h, w) pair of positive ints."""
    v = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(v) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) for a in v):
        raise FeatwidgetError(f"{what} must be an int or a pair of ints (height, width), got {value!r}.")
    if min(v) < 1:
        raise FeatwidgetError(f"{what} must be at least 1 pixel, got {value!r}.")
    return v


def starts(n: int, k: int, s: int) -> torch.Tensor:
    """Window starts along one axis: 0, s, 2s, ... plus a final window flush with the border."""
    pos = list(range(0, n - k + 1, s))
    if pos[-1] != n - k:
        pos.append(n - k)
    return torch.tensor(pos, dtype=torch.long)


def windows(height: int, width: int, size, stride) -> tuple[torch.Tensor, torch.Tensor, tuple, tuple]:
    """``(ys, xs, (kh, kw), (sh, sw))``: start rows and columns of the window grid; validated."""
    kh, kw = pair(size, "size")
    sh, sw = pair(stride, "stride")
    if kh > height or kw > width:
        raise FeatwidgetError(
            f"The occlusion patch ({kh}x{kw}) is larger than the image ({height}x{width}); "
            f"pass a smaller size=, at most ({height}, {width})."
        )
    if sh > kh or sw > kw:
        raise FeatwidgetError(
            f"stride {(sh, sw)} is larger than the patch size {(kh, kw)}, so some pixels would never be occluded; "
            f"use stride <= size (e.g. stride={max(1, kh // 2)})."
        )
    return starts(height, kh, sh), starts(width, kw, sw), (kh, kw), (sh, sw)


def coverage(starts_: torch.Tensor, k: int, n: int) -> torch.Tensor:
    """(n_windows, n) 0/1 matrix: which pixels of the axis each window covers."""
    px = torch.arange(n)
    return ((px[None] >= starts_[:, None]) & (px[None] < starts_[:, None] + k)).float()


def to_map(grid: torch.Tensor, ys, xs, size, shape) -> torch.Tensor:
    """Average the per-window values ``grid`` (B, nY, nX) over the windows covering each pixel -> (B, 1, H, W).

    The sum over covering windows factorises over the two axes: ``Cy^T @ grid @ Cx`` with the coverage matrices.
    NaN windows (not computed yet) are left out of the average; pixels no computed window covers are 0.
    """
    h, w = shape
    cy = coverage(ys, size[0], h).to(grid)
    cx = coverage(xs, size[1], w).to(grid)
    mask = (~torch.isnan(grid).any(0)).to(grid)
    total = cy.T @ (torch.nan_to_num(grid) * mask) @ cx
    count = cy.T @ mask @ cx
    return (total / count.clamp_min(1))[:, None]
