"""Single-pass gradient maps: gradient / deconvnet / guided backprop, saliency, gradient x input."""
from __future__ import annotations

import torch

from ..safety import preserved
from .common import input_gradient, prepare
from .rules import check_rule


def gradient(net, x, target=None, rule: str = "backprop") -> torch.Tensor:
    """d target / d x, (B, C, H, W). ``rule`` picks the ReLU backward: "backprop" | "deconvnet" | "guided"."""
    net, x, t = prepare(net, x, target)
    check_rule(rule)
    with preserved(net.module):
        return input_gradient(net, x, t, rule)


def guided_backprop(net, x, target=None) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): ``gradient(..., rule="guided")``."""
    return gradient(net, x, target, rule="guided")


def deconvnet(net, x, target=None) -> torch.Tensor:
    """Deconvnet (Zeiler & Fergus 2014): ``gradient(..., rule="deconvnet")``."""
    return gradient(net, x, target, rule="deconvnet")


def saliency(net, x, target=None, rule: str = "backprop") -> torch.Tensor:
    """Simonyan et al. 2014: |gradient|, max over colour channels, (B, 1, H, W)."""
    net, x, t = prepare(net, x, target)
    check_rule(rule)
    with preserved(net.module):
        return to_saliency(input_gradient(net, x, t, rule))


def input_x_gradient(net, x, target=None, rule: str = "backprop") -> torch.Tensor:
    """Gradient times input (Shrikumar et al. 2016), (B, C, H, W); the input is in pixel space [0, 1]."""
    net, x, t = prepare(net, x, target)
    check_rule(rule)
    with preserved(net.module):
        return input_gradient(net, x, t, rule) * x


def to_saliency(g: torch.Tensor) -> torch.Tensor:
    return g.abs().amax(1, keepdim=True)


# method name -> (ReLU rule, map from (gradient, input)); the gradient-type methods SmoothGrad can smooth
METHODS = {
    "gradient": ("backprop", lambda g, x: g),
    "saliency": ("backprop", lambda g, x: to_saliency(g)),
    "input_x_gradient": ("backprop", lambda g, x: g * x),
    "deconvnet": ("deconvnet", lambda g, x: g),
    "guided": ("guided", lambda g, x: g),
    "guided_backprop": ("guided", lambda g, x: g),
}
