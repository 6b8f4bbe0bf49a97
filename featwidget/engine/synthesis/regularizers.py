"""Natural-image priors for activation maximization and inversion, each with a weight (``.value``).

Penalties add ``value * penalty(image)`` to the loss (per image, on the image in [0, 1] before transforms):

- ``L2``: mean squared deviation from mid-gray (Simonyan et al. 2014).
- ``AlphaNorm``: mean ``|x|^alpha`` of the centred image, alpha = 6 by default: it bounds the range without
  pulling small values to zero (Mahendran & Vedaldi 2015).
- ``TV``: total variation ``mean((dx^2 + dy^2)^(beta/2))``; beta = 2 by default, beta < 2 allows sharper
  edges (Mahendran & Vedaldi 2015).
- ``EdgeEnergy``: squared finite differences summed over a pyramid of 2x-downsampled images, so coarse
  structures are smoothed as well as pixel-level noise (the multi-scale penalty of Fleuret's lecture).

Operations change the image between steps (Yosinski et al. 2015), for every parameterization that can
re-encode an image:

- ``Blur``: Gaussian blur of standard deviation ``value`` pixels every ``every`` steps.
- ``GradientBlur``: Gaussian blur of the gradient reaching the image (standard deviation ``value``).
- ``Clip``: every ``every`` steps, set to mid-gray the fraction ``value`` of pixels with the smallest norm
  (``by="norm"``) or the smallest contribution ``|x * dObjective/dx|`` summed over channels
  (``by="contribution"``).

The centred image is ``2 * x - 1`` in [-1, 1], so weights mean the same thing on any network.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import FeatwidgetError
from ..imaging import gaussian_blur
from .knobs import Knob


def _centred(img: torch.Tensor) -> torch.Tensor:
    return 2.0 * img - 1.0


class Penalty(Knob):
    def penalty(self, img: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class L2(Penalty):
    _help = "the weight of the L2 penalty"

    def penalty(self, img):
        return _centred(img).pow(2).flatten(1).mean(1)


@dataclass
class AlphaNorm(Penalty):
    alpha: float = 6.0
    _limits = {"value": (0.0, True, float), "alpha": (1.0, True, float)}
    _help = "the weight of the alpha-norm penalty"

    def penalty(self, img):
        return _centred(img).abs().pow(self.alpha).flatten(1).mean(1)


def _differences(img: torch.Tensor):
    dx = img[..., :-1, 1:] - img[..., :-1, :-1]
    dy = img[..., 1:, :-1] - img[..., :-1, :-1]
    return dx, dy


@dataclass
class TV(Penalty):
    beta: float = 2.0
    _limits = {"value": (0.0, True, float), "beta": (0.0, False, float)}
    _help = "the weight of the total-variation penalty"

    def penalty(self, img):
        dx, dy = _differences(img)
        sq = dx.pow(2) + dy.pow(2)
        # beta < 2 has an infinite derivative at 0; the epsilon keeps the gradient finite on flat regions.
        v = sq if self.beta == 2.0 else (sq + 1e-8).pow(self.beta / 2)
        return v.flatten(1).mean(1)


@dataclass
class EdgeEnergy(Penalty):
    scales: int = 3
    _limits = {"value": (0.0, True, float), "scales": (1, True, int)}
    _help = "the weight of the multi-scale edge-energy penalty"

    def penalty(self, img):
        total = 0.0
        level = img
        for _ in range(self.scales):
            dx, dy = _differences(level)
            total = total + (dx.pow(2) + dy.pow(2)).flatten(1).mean(1)
            if min(level.shape[-2:]) < 4:
                break
            level = F.avg_pool2d(level, 2)
        return total



@dataclass
class Blur(Knob):
    every: int = 4
    _limits = {"value": (0.0, True, float), "every": (1, True, int)}
    _help = "the standard deviation in pixels of the Gaussian blur applied every few steps"

    def apply(self, img, grad=None):
        return gaussian_blur(img, self.value)


@dataclass
class GradientBlur(Knob):
    _help = "the standard deviation in pixels of the Gaussian blur of the gradient"

    def blur(self, grad):
        return gaussian_blur(grad, self.value)


@dataclass
class Clip(Knob):
    by: str = "norm"
    every: int = 1
    _limits = {"value": (0.0, True, float), "every": (1, True, int)}
    _help = "the fraction (0 to 1) of pixels set to gray"

    def __setattr__(self, name, v):
        if name == "value" and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1:
            raise FeatwidgetError(f"Clip.value is the fraction of pixels to clip and must be below 1, got {v!r}.")
        if name == "by" and v not in ("norm", "contribution"):
            raise FeatwidgetError(f"Clip.by must be 'norm' or 'contribution', got {v!r}.")
        super().__setattr__(name, v)

    def apply(self, img, grad=None):
        c = _centred(img)
        score = c.norm(dim=1) if self.by == "norm" else (c * grad).sum(1).abs()
        flat = score.flatten(1)
        k = int(self.value * flat.shape[1])
        if k < 1:
            return img
        # the k-th smallest score per image is the threshold: pixels at or below it go to gray
        thresh = flat.kthvalue(k, dim=1).values.view(-1, 1, 1)
        keep = (score > thresh).unsqueeze(1)
        return torch.where(keep, img, torch.full_like(img, 0.5))


PENALTIES = {"l2": L2, "alpha": AlphaNorm, "tv": TV, "edge": EdgeEnergy}
OPERATIONS = {"blur": Blur, "grad_blur": GradientBlur, "clip": Clip}
REGULARIZERS = {**PENALTIES, **OPERATIONS}
