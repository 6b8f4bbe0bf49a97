"""``fw.invert``: reconstruct an image from its code at one layer (Mahendran & Vedaldi 2015).

Minimize ``||phi(x') - phi(x)||^2 / ||phi(x)||^2`` plus an alpha-norm and a total-variation prior over x'.
What survives in the reconstruction is what the layer keeps of the image; deeper layers keep less, so the
reconstruction gets coarser and the normalized loss larger with depth.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import FeatwidgetError
from ..network import as_network
from ..validate import positive
from .maximize import count, init_image, optimize, rng_for
from .objectives import Reconstruction
from .regularizers import TV, AlphaNorm
from .settings import Settings, knobs
from . import transforms as T


@dataclass
class Inversion:
    """``images``: the reconstructions (B, C, H, W) in [0, 1]; ``loss``: (steps, B) normalized distance
    ``||phi(x') - phi(x)||^2 / ||phi(x)||^2`` at each step (without the priors)."""

    images: torch.Tensor
    loss: torch.Tensor


def invert(net, x, layer: str, steps: int = 200, alpha: float = 1e-4, tv: float = 0.5, beta: float = 2.0,
           alpha_exponent: float = 6.0, lr: float | None = None, param: str = "fourier", decorrelate: bool = True,
           transforms=None, init="mean", progress=None, seed=None) -> Inversion:
    """Reconstruct ``x`` (B, C, H, W in [0, 1]) from its activation at ``layer``.

    ``alpha``: weight of the alpha-norm prior (exponent ``alpha_exponent``, 6 by default); ``tv``: weight of
    the total-variation prior (exponent ``beta``). ``init``: "mean" (the dataset mean colour), "noise",
    "gray" or an image. ``transforms``: e.g. ``{"jitter": 2}`` for a bit of robustness (none by default:
    the reconstruction is compared pixel for pixel with the original).
    """
    net = as_network(net, x)
    x = net.check(x)
    net.layer(layer)
    steps = count("steps", steps)
    positive("alpha", alpha, allow_zero=True)
    positive("tv", tv, allow_zero=True)
    moves = knobs(transforms, T.TRANSFORMS, "transform", min(x.shape[-2:]))
    if "pad" in moves and moves["pad"].value:
        raise FeatwidgetError("invert compares codes of images of the same size, so 'pad' cannot be used; "
                              "use jitter, scale or rotate only, e.g. transforms={'jitter': 2}.")
    settings = Settings(lr=lr, param=param, decorrelate=decorrelate,
                        regularizers={"alpha": AlphaNorm(alpha, alpha_exponent), "tv": TV(tv, beta)},
                        transforms=moves)
    with torch.no_grad():
        reference = net.activations(x, [layer])[layer]
    target = Reconstruction(layer, reference)
    size = tuple(x.shape[-2:])
    start = init_image(init, net, x.shape[0], size, x.device)
    out = optimize(net, target, [(size, steps)], x.shape[0], settings, rng_for(seed), start, progress)
    return Inversion(out.images, -out.objective)
