"""Parameters as pictures: the filters of a convolution layer."""
from __future__ import annotations

import torch
from torch import nn

from .errors import FeatwidgetError
from .network import as_network, wrap


def filters(net, layer: str | None = None) -> torch.Tensor:
    """The weights of a Conv2d layer, shape (out_channels, in_channels / groups, kh, kw), detached copies.

    ``layer=None`` picks the first convolution. Display choices (RGB for 3 input channels, per input channel
    or averaged) belong to the view; the engine returns the raw numbers.
    """
    net = net if not isinstance(net, nn.Module) else _plain(net)
    convs = net.conv_layers
    if not convs:
        raise FeatwidgetError("This network has no Conv2d layer, so there are no filters to show.")
    name = convs[0] if layer is None else layer
    mod = net.submodule(name)
    if not isinstance(mod, nn.Conv2d):
        raise FeatwidgetError(
            f"Layer {name!r} is a {type(mod).__name__}, not a convolution; conv layers are: {', '.join(convs[:10])}"
            + (", ..." if len(convs) > 10 else "")
        )
    return mod.weight.detach().clone()


def _plain(module: nn.Module):
    # Filters need no input; find the input size from the first conv so the layer list can be traced.
    first = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise FeatwidgetError("This network has no Conv2d layer, so there are no filters to show.")
    return as_network(module, torch.zeros(1, first.in_channels, 224, 224)) if first.in_channels else wrap(module)
