"""What an occluding patch is filled with, as a full-size image whose pixels are copied into each window.

- ``"gray"``: 0.5 everywhere (Zeiler & Fergus 2014), ``"zero"``: black, a number: that value in every channel,
  a colour tensor ``(C,)``: that colour;
- ``"mean"``: each image's own per-channel mean colour (removes local detail but keeps the global tint);
- ``"random"``: uniform noise in [0, 1] (Zhou et al. 2015), drawn from a fixed seed so a map is reproducible;
- ``"blur"``: a Gaussian-blurred copy of the image with sigma = patch size / 4 (removes detail at the patch's
  scale while keeping colour and low frequencies, so the network sees fewer out-of-distribution edges).

All fills are in pixel space [0, 1]; normalization happens afterwards, inside the network wrapper.
"""
from __future__ import annotations

import torch

from ..errors import FeatwidgetError
from ..imaging import gaussian_blur

FILLS = ("gray", "zero", "mean", "random", "blur")
RANDOM_SEED = 0


def fill_image(x: torch.Tensor, fill, size: tuple[int, int]) -> torch.Tensor:
    """The (B, C, H, W) image the patches are cut from."""
    b, c, h, w = x.shape
    if isinstance(fill, str):
        if fill == "gray":
            return torch.full_like(x, 0.5)
        if fill == "zero":
            return torch.zeros_like(x)
        if fill == "mean":
            return x.mean((2, 3), keepdim=True).expand_as(x).contiguous()
        if fill == "random":
            g = torch.Generator().manual_seed(RANDOM_SEED)
            return torch.rand(x.shape, generator=g, dtype=x.dtype).to(x.device)
        if fill == "blur":
            return gaussian_blur(x, max(size) / 4, truncate=2.0)
        raise FeatwidgetError(
            f"Unknown fill {fill!r}; use one of {', '.join(map(repr, FILLS))}, a number in [0, 1] "
            f"or a colour tensor of {c} value(s)."
        )
    if isinstance(fill, bool):
        raise FeatwidgetError("fill must be a name, a number in [0, 1] or a colour tensor, not a bool.")
    colour = torch.as_tensor(fill, dtype=x.dtype).flatten()
    if colour.numel() == 1:
        colour = colour.expand(c)
    if colour.numel() != c:
        raise FeatwidgetError(f"The fill colour has {colour.numel()} values but the images have {c} channel(s).")
    if not bool(torch.isfinite(colour).all()) or float(colour.min()) < 0 or float(colour.max()) > 1:
        raise FeatwidgetError(
            f"Fill values are pixels and must lie in [0, 1], got {colour.tolist()}; e.g. fill=0.5 or "
            f"fill=torch.tensor([0.485, 0.456, 0.406]) for the ImageNet mean colour."
        )
    return colour.to(x.device).reshape(1, c, 1, 1).expand_as(x).contiguous()
