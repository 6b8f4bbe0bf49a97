"""Plumbing shared by the backward methods: argument checks, the input gradient, per-sample target rows."""
from __future__ import annotations

import dataclasses
import math

import torch

from ..errors import FeatwidgetError
from ..network import Network, as_network
from ..targets import Combination, Predicted, Target, as_target, Logit
from .rules import guide

# Per-sample index fields of the target algebra; a target is re-indexed field by field for a sub-batch.
_INDEX_FIELDS = {"c", "channel"}


def prepare(model, x, target) -> tuple[Network, torch.Tensor, Target]:
    net = as_network(model, x if isinstance(x, torch.Tensor) else None)
    return net, net.check(x), as_target(target)


def input_gradient(net: Network, x: torch.Tensor, target: Target, rule: str = "backprop",
                   with_value: bool = False):
    """d target / d x (pixel space) under ``rule`` (and the target's values if ``with_value``); the caller
    runs it inside ``preserved``. The rule goes onto the graph of this one forward pass (``guide``), and
    ``net.evaluate`` stops the forward pass at the deepest layer a hidden-layer target reads."""
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value = net.evaluate(xg, target)
        guide(value, rule)
        (g,) = torch.autograd.grad(value.sum(), xg)
    return (g, value.detach()) if with_value else g


def contains_predicted(target: Target) -> bool:
    if isinstance(target, Combination):
        return any(contains_predicted(t) for _, t in target.terms)
    return isinstance(target, Predicted)


def fix_predicted(net: Network, x: torch.Tensor, target: Target) -> Target:
    """Replace ``Predicted()`` by the logit of the class predicted for the *clean* images, so that noisy or
    interpolated copies of an image are all explained for the same class."""
    if not contains_predicted(target):
        return target
    with torch.no_grad():
        classes = net.module(net.normalize(x)).argmax(1)
    return _map(target, lambda t: Logit(classes) if isinstance(t, Predicted) else t)


def rows(target: Target, index: torch.Tensor, batch: int) -> Target:
    """The target for the sub-batch ``x[index]`` of a batch of ``batch`` images (per-sample indices follow)."""

    def pick(t):
        changes = {}
        for f in dataclasses.fields(t) if dataclasses.is_dataclass(t) else ():
            if f.name in _INDEX_FIELDS:
                v = torch.as_tensor(getattr(t, f.name)).long().reshape(-1)
                if v.numel() == 1:
                    continue
                if v.numel() != batch:
                    raise FeatwidgetError(
                        f"The target has {v.numel()} per-image indices for a batch of {batch} images; "
                        f"give one index, or one per image."
                    )
                changes[f.name] = v[index.to(v.device)]
        return dataclasses.replace(t, **changes) if changes else t

    return _map(target, pick)


def _map(target: Target, fn) -> Target:
    if isinstance(target, Combination):
        return Combination(tuple((w, _map(t, fn)) for w, t in target.terms))
    return fn(target)


# Samples per chunk of SmoothGrad / IG: as many as fit this many bytes of layer outputs. Measured here (1 CPU
# thread, ms per sample by chunk size): the shapes demo (0.6 MB of outputs per sample) 2.9 / 1.7 / 1.3 ms at
# 1 / 10 / 50; resnet18@224 (32 MB) 176 / 151 / 144 at 1 / 10 / 20; vgg16@224 (115 MB) 955 / 919 / 1101 / 1110
# at 1 / 2 / 5 / 10 -- small models want large chunks, large ones small (cache-bound convolutions).
CHUNK_BYTES = 320 * 2 ** 20
MAX_CHUNK = 64


def default_batch_size(net: Network, x: torch.Tensor) -> int:
    """Chunk size for the sampling loops: ``CHUNK_BYTES`` of layer outputs per chunk, at most ``MAX_CHUNK``."""
    pixels = x.shape[2] * x.shape[3] / (net.input_size[1] * net.input_size[2])
    per_sample = sum(math.prod(layer.out_shape) for layer in net.layers) * x.element_size() * pixels
    return int(max(1, min(MAX_CHUNK, CHUNK_BYTES // max(per_sample, 1))))


def chunks(total: int, batch_size: int, first: int | None = None):
    """Index ranges covering ``range(total)``: a small ``first`` chunk (for an early streamed picture), then
    chunks of ``batch_size``."""
    start = 0
    if first:
        yield 0, min(first, total)
        start = min(first, total)
    while start < total:
        end = min(start + batch_size, total)
        yield start, end
        start = end
