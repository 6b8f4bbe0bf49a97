"""Transformation robustness (Olah et al. 2017): random pad, jitter, scale and rotation at every step.

All four are one affine map per image, so a batch is transformed with a single ``affine_grid`` +
``grid_sample`` call (Lucid/Lucent apply them one by one, each with its own resampling). ``Pad`` grows the
canvas by ``value`` pixels on each side, filled with mid-gray; ``Jitter`` shifts by up to ``value`` pixels;
``Scale`` zooms by a factor in [1 - value, 1 + value]; ``Rotate`` turns by up to ``value`` degrees.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .knobs import Knob


@dataclass
class Pad(Knob):
    _limits = {"value": (0, True, int)}
    _help = "the number of gray pixels added on each side"


@dataclass
class Jitter(Knob):
    _limits = {"value": (0, True, int)}
    _help = "the largest random shift in pixels"


@dataclass
class Scale(Knob):
    _limits = {"value": (0.0, True, float)}
    _help = "the spread of the random zoom factor, e.g. 0.1 for [0.9, 1.1]"

    def __setattr__(self, name, v):
        if name == "value" and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1:
            from ..errors import FeatwidgetError

            raise FeatwidgetError(f"Scale.value is a spread below 1 (0.1 means zoom 0.9 to 1.1), got {v!r}.")
        super().__setattr__(name, v)


@dataclass
class Rotate(Knob):
    _help = "the largest random rotation in degrees"


TRANSFORMS = {"pad": Pad, "jitter": Jitter, "scale": Scale, "rotate": Rotate}


def standard(size: int) -> dict:
    """Lucid's standard transforms (pad 12, jitter 8, scale +-10 %, rotate +-10 degrees at 224 px), with the
    pixel amounts scaled to the image size so a 64 px picture is not mostly padding."""
    k = size / 224
    return {"pad": Pad(max(1, round(12 * k))), "jitter": Jitter(max(1, round(8 * k))),
            "scale": Scale(0.1), "rotate": Rotate(10.0)}


@functools.lru_cache(maxsize=8)
def _base_grid(h: int, w: int, device, dtype) -> torch.Tensor:
    """(H*W, 3) rows (x, y, 1) of pixel centres in normalized units; what affine_grid rebuilds at every call."""
    ys = (torch.arange(h, dtype=torch.float64) * 2 + 1) / h - 1
    xs = (torch.arange(w, dtype=torch.float64) * 2 + 1) / w - 1
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy, torch.ones_like(xx)], -1).view(-1, 3).to(device, dtype)


def apply(img: torch.Tensor, transforms: dict, generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly transform every image of ``img`` (B, C, H, W) -> (B, C, H + 2 pad, W + 2 pad)."""
    pad = transforms["pad"].value if "pad" in transforms else 0
    jitter = transforms["jitter"].value if "jitter" in transforms else 0
    spread = transforms["scale"].value if "scale" in transforms else 0.0
    degrees = transforms["rotate"].value if "rotate" in transforms else 0.0
    if not (pad or jitter or spread or degrees):
        return img
    b = img.shape[0]

    def uniform(lo, hi):
        return torch.rand(b, generator=generator, dtype=torch.float64) * (hi - lo) + lo

    scale = uniform(1 - spread, 1 + spread)
    angle = uniform(-degrees, degrees)
    shift = torch.stack([uniform(-jitter, jitter), uniform(-jitter, jitter)], 1).round()
    return warp(img, pad, scale, angle, shift)


def warp(img: torch.Tensor, pad: int, scale: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Zoom by ``scale`` (B,), rotate by ``angle`` degrees (B,), shift by ``shift`` (B, 2) pixels (x, y), all
    about the image centre, onto a canvas ``pad`` pixels larger on each side, filled with mid-gray."""
    b, c, h, w = img.shape
    hc, wc = h + 2 * pad, w + 2 * pad
    a = angle.to(torch.float64) * (math.pi / 180)
    s = scale.to(torch.float64)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    # output pixel p (centred, pixel units) samples input q = M^-1 (p - t), with M = s * R(a);
    # affine_grid works in normalized units, hence the diagonal rescalings by the canvas and image sizes.
    inv = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)  # (B, 2, 2) = M^-1
    d_out = torch.tensor([wc / 2, hc / 2], dtype=torch.float64)
    d_in = torch.tensor([w / 2, h / 2], dtype=torch.float64)
    lin = inv * d_out.view(1, 1, 2) / d_in.view(1, 2, 1)
    offset = -(inv @ shift.to(torch.float64).unsqueeze(2)).squeeze(2) / d_in
    theta = torch.cat([lin, offset.unsqueeze(2)], 2).to(img.device, img.dtype)
    grid = (_base_grid(hc, wc, img.device, img.dtype) @ theta.transpose(1, 2)).view(b, hc, wc, 2)
    # sampling the centred image makes the zero padding of grid_sample a mid-gray fill
    return F.grid_sample(img - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5
