"""Objectives that only make sense for optimization, as members of the engine's target algebra.

``Diversity(layer)`` (Lucid): minus the cosine similarity of each image's Gram matrix (style) at ``layer`` to
the other images of the batch; added to a channel objective it makes a batch show several facets of the
channel instead of one picture B times: ``fw.Channel("layer3", 5) + 0.5 * fw.Diversity("layer3")``.

``Reconstruction(layer, reference)``: minus the normalized squared distance
``||phi(x) - phi0||^2 / ||phi0||^2`` to a reference code (Mahendran & Vedaldi 2015); maximizing it inverts
the code (``fw.invert``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import FeatwidgetError
from ..targets import Target


@dataclass(frozen=True, eq=False)
class Diversity(Target):
    layer: str

    @property
    def layers(self):
        return (self.layer,)

    def evaluate(self, output, acts):
        a = acts[self.layer]
        b = a.shape[0]
        if b < 2:
            return a.new_zeros(b)
        if a.dim() != 4:
            raise FeatwidgetError(
                f"Diversity needs a convolutional layer (B, C, H, W); {self.layer!r} gives {tuple(a.shape)}."
            )
        f = a.flatten(2)  # (B, C, HW)
        gram = (f @ f.transpose(1, 2)).flatten(1)
        gram = gram / gram.norm(dim=1, keepdim=True).clamp(min=1e-10)
        sim = gram @ gram.T
        return -(sim.sum(1) - sim.diagonal()) / b


@dataclass(frozen=True, eq=False)
class Reconstruction(Target):
    layer: str
    reference: torch.Tensor

    @property
    def layers(self):
        return (self.layer,)

    def evaluate(self, output, acts):
        a = acts[self.layer].flatten(1)
        ref = self.reference.flatten(1).to(a.device, a.dtype)
        if ref.shape != a.shape:
            raise FeatwidgetError(
                f"The reference code has shape {tuple(self.reference.shape)} but layer {self.layer!r} gives "
                f"{tuple(acts[self.layer].shape)}; invert images of the size the reference was computed at."
            )
        return -(a - ref).pow(2).sum(1) / ref.pow(2).sum(1).clamp(min=1e-12)
