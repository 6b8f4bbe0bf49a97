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

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

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
def _centres(n: int) -> np.ndarray:
    """Pixel centres of an axis of ``n`` pixels in grid_sample's normalized units (align_corners=False)."""
    centres = (np.arange(n, dtype=np.float64) * 2 + 1) / n - 1
    centres.flags.writeable = False  # shared by every call through the cache
    return centres


def apply(img: torch.Tensor, transforms: dict, generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly transform every image of ``img`` (B, C, H, W) -> (B, C, H + 2 pad, W + 2 pad)."""
    grid = draw(img, transforms, generator)
    return img if grid is None else _Warp.apply(img, grid)


def draw(img: torch.Tensor, transforms: dict, generator: torch.Generator | None = None):
    """The ``sampling_grid`` of one random draw of ``transforms`` for every image of ``img``; None when there
    is nothing to do."""
    pad = transforms["pad"].value if "pad" in transforms else 0
    jitter = transforms["jitter"].value if "jitter" in transforms else 0
    spread = transforms["scale"].value if "scale" in transforms else 0.0
    degrees = transforms["rotate"].value if "rotate" in transforms else 0.0
    if not (pad or jitter or spread or degrees):
        return None
    # zoom, angle, shift x, shift y for every image from one draw (the same stream as four draws of B);
    # the few numbers per image are cheaper to combine in numpy than as a dozen tiny tensor operations
    u = torch.rand(4, img.shape[0], generator=generator, dtype=torch.float64).numpy()

    def uniform(r, lo, hi):
        return r * (hi - lo) + lo

    scale = uniform(u[0], 1 - spread, 1 + spread)
    angle = uniform(u[1], -degrees, degrees)
    shift = np.stack([uniform(u[2], -jitter, jitter), uniform(u[3], -jitter, jitter)], 1).round()
    return sampling_grid(img, pad, scale, angle, shift)


def _float64(v) -> np.ndarray:
    return v.detach().cpu().double().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, np.float64)


def warp(img: torch.Tensor, pad: int, scale, angle, shift) -> torch.Tensor:
    """Zoom by ``scale`` (B,), rotate by ``angle`` degrees (B,), shift by ``shift`` (B, 2) pixels (x, y), all
    about the image centre, onto a canvas ``pad`` pixels larger on each side, filled with mid-gray. The
    amounts are tensors or arrays."""
    return _Warp.apply(img, sampling_grid(img, pad, scale, angle, shift))


def sampling_grid(img: torch.Tensor, pad: int, scale, angle, shift) -> torch.Tensor:
    """The (B, H + 2 pad, W + 2 pad, 2) ``grid_sample`` grid of ``warp``."""
    b, c, h, w = img.shape
    hc, wc = h + 2 * pad, w + 2 * pad
    a = _float64(angle) * (math.pi / 180)
    s = _float64(scale)
    cos, sin = np.cos(a) / s, np.sin(a) / s
    sx, sy = _float64(shift).T
    # Output pixel p (centred, pixel units) samples input q = M^-1 (p - t), with M = s R(a). In grid_sample's
    # normalized units (canvas half-sizes wc/2, hc/2 out, image half-sizes w/2, h/2 in) that is
    # theta = [[cos wc/w, sin hc/w, -(cos sx + sin sy) 2/w], [-sin wc/h, cos hc/h, (sin sx - cos sy) 2/h]].
    # The map is affine, so the grid is a sum of a per-column and a per-row term: (B, 2, W) and (B, 2, H)
    # outer products of a few hundred numbers (numpy, float64, sent to the device in one piece), then one
    # broadcast add into (B, 2, H, W) with the long W axis innermost, handed to grid_sample as a (B, H, W, 2)
    # view. (affine_grid's (H*W, 3) x (3, 2) product, or a broadcast add into the (B, H, W, 2) layout with its
    # inner axis of 2, take four to five times as long.)
    both = np.empty((b, 2, wc + hc))
    cols, rows = both[:, :, :wc], both[:, :, wc:]
    np.multiply.outer(cos * (wc / w), _centres(wc), out=cols[:, 0])
    np.multiply.outer(-sin * (wc / h), _centres(wc), out=cols[:, 1])
    np.multiply.outer(sin * (hc / w), _centres(hc), out=rows[:, 0])
    np.multiply.outer(cos * (hc / h), _centres(hc), out=rows[:, 1])
    rows[:, 0] += (-(cos * sx + sin * sy) * (2 / w))[:, None]
    rows[:, 1] += ((sin * sx - cos * sy) * (2 / h))[:, None]
    both = torch.from_numpy(both).to(img.device, img.dtype)
    return (both[:, :, None, :wc] + both[:, :, wc:, None]).permute(0, 2, 3, 1)  # (B, H, W, 2)


def sample(img: torch.Tensor, grid: torch.Tensor):
    """``grid_sample(img - 0.5, grid) + 0.5``, bilinear: sampling the centred image makes grid_sample's zero
    padding a mid-gray fill. Returns the canvas and the centred image (for ``sample_pullback``)."""
    centred = img - 0.5
    out = F.grid_sample(centred, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.add_(0.5), centred


def sample_pullback(grad: torch.Tensor, centred: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """The gradient of ``sample`` w.r.t. the image: aten's ``grid_sampler_2d_backward`` -- the very function
    autograd would call. (Its kernels compute the grid's gradient whatever the mask says: about a third of
    the time on CPU, measured, with no way around it short of a kernel of our own.)"""
    return torch.ops.aten.grid_sampler_2d_backward(grad, centred, grid, 0, 0, False, [True, False])[0]


class _Warp(torch.autograd.Function):
    """``sample`` as one graph node instead of three (sub, grid_sample, add), with ``sample_pullback``."""

    @staticmethod
    def forward(ctx, img, grid):
        out, centred = sample(img, grid)
        ctx.save_for_backward(centred, grid)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        centred, grid = ctx.saved_tensors
        return sample_pullback(grad, centred, grid), None
