"""Parameters as pictures: the filters of a convolution layer."""
from __future__ import annotations

import torch
from torch import nn

from .errors import FeatwidgetError, unknown_layer
from .network import Network


def conv_layers(model) -> dict[str, nn.Conv2d]:
    """``{name: Conv2d}`` in definition order. Filters are weights, so no forward pass (and no input size) is
    needed -- which matters for plain modules with fixed-size linear heads such as LeNet."""
    module = model.module if isinstance(model, Network) else model
    if not isinstance(module, nn.Module):
        raise FeatwidgetError(f"fw.filters expects an fw.Network or a torch.nn.Module, got {type(model).__name__}.")
    return {n: m for n, m in module.named_modules() if n and isinstance(m, nn.Conv2d)}


def filters(net, layer: str | None = None) -> torch.Tensor:
    """The weights of a Conv2d layer, shape (out_channels, in_channels / groups, kh, kw), detached copies.

    ``layer=None`` picks the first convolution. Display choices (RGB for 3 input channels, per input channel
    or averaged) belong to the view; the engine returns the raw numbers.
    """
    convs = conv_layers(net)
    if not convs:
        raise FeatwidgetError("This network has no Conv2d layer, so there are no filters to show.")
    name = next(iter(convs)) if layer is None else layer
    if name not in convs:
        module = net.module if isinstance(net, Network) else net
        known = [n for n, _ in module.named_modules() if n]
        if name not in known:
            raise unknown_layer(name, known)
        listing = ", ".join(list(convs)[:10]) + (", ..." if len(convs) > 10 else "")
        kind = type(dict(module.named_modules())[name]).__name__
        raise FeatwidgetError(f"Layer {name!r} is a {kind}, not a convolution; conv layers are: {listing}")
    return convs[name].weight.detach().clone()
