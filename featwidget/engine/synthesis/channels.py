"""Only the channels an objective reads: the rest of the objective layer's output feeds nothing.

An optimization step runs the network up to the objective's layer and stops there (``Network.run`` with
``output=False``). When that layer is a convolution and the objective reads single channels of it (a
``Channel`` or ``Neuron`` objective, the usual feature visualization), every other output channel is computed
only to be thrown away, and its gradient is exactly zero. ``OnlyChannels`` makes that one convolution call
compute the channels read (a slice of the weight) and pads them with zeros back to the layer's shape, so the
activation hooks and the objective see the tensor they expect. The channels read and the gradient are those
of the full convolution up to floating-point reassociation. With AlexNet's last convolution (256 channels) as
the objective layer this saved 8 to 16 % of a step at 128 and 224 px in benchmarks/synthesis.py (CPU).

The slice is taken only where nothing else could see the zero channels: the layer is the deepest one read,
called once, a plain ``nn.Conv2d`` without groups, with no forward hooks of anyone else, and the objective
needs no network output (the pass really stops there). The calls are found the way ``redirect.py`` finds
rectifiers: a ``TorchFunctionMode``, active for the forward pass of one step on this thread only, that
recognizes the layer's own weight tensor; the user's module is not touched.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..targets import Channel, Combination, Neuron


def channels_read(net, target):
    """``(conv module, sorted channel list)`` when ``OnlyChannels`` may serve ``target``, else None."""
    if target.needs_output:
        return None
    terms = [t for _, t in target.terms] if isinstance(target, Combination) else [target]
    if not all(type(t) in (Channel, Neuron) and type(t.channel) is int for t in terms):
        return None
    layers = {t.layer for t in terms}
    if len(layers) != 1:
        return None
    (layer,) = layers
    module = net.submodule(layer)
    if (type(module) is not nn.Conv2d or module.groups != 1 or net.layer(layer).calls != 1
            or module._forward_hooks or module._forward_pre_hooks or nn.modules.module._global_forward_hooks
            or nn.modules.module._global_forward_pre_hooks):
        return None
    channels = sorted({t.channel for t in terms})
    if not all(0 <= c < module.out_channels for c in channels):
        return None  # the objective reports the bad index itself
    if len(channels) == module.out_channels:
        return None  # nothing to leave out
    return module, channels


class OnlyChannels(TorchFunctionMode):
    """Within the block, ``module``'s convolution computes only ``channels`` (zeros elsewhere)."""

    def __init__(self, module: nn.Conv2d, channels: list):
        super().__init__()
        self.weight, self.bias = module.weight, module.bias
        self.channels = channels
        one = channels[0]
        self._slice = slice(one, one + 1) if len(channels) == 1 else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d and len(args) >= 3 and args[1] is self.weight and not kwargs:
            return self._conv(func, args)
        return func(*args, **kwargs)

    def _conv(self, func, args):
        x, weight, bias, *rest = args
        n = weight.shape[0]
        if self._slice is not None:
            c = self._slice.start
            out = func(x, weight[self._slice], None if bias is None else bias[self._slice], *rest)
            return F.pad(out, (0, 0, 0, 0, c, n - 1 - c))
        idx = torch.tensor(self.channels, device=weight.device)
        out = func(x, weight.index_select(0, idx), None if bias is None else bias.index_select(0, idx), *rest)
        full = out.new_zeros(out.shape[0], n, *out.shape[2:])
        return full.index_copy(1, idx, out)
