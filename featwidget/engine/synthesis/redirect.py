"""Redirected ReLU gradients (Lucid's ``redirected_relu_grad``): a way out of a dead start.

Maximizing a unit behind a ReLU that is off for the current image gives an exactly zero gradient, and the
optimization never moves -- a mid-gray start does this to most channels of a trained network. While the mode
is active, a ReLU whose ordinary gradient is zero for an image instead passes the gradient on wherever it
would push the ReLU's input *up* (towards switching the unit on), and blocks it where it would push an
already negative input further down. Images that do get an ordinary gradient keep it unchanged.

``fw.maximize`` turns the mode on only for the step after next of one in which some image of the batch got
a zero gradient, so a healthy run pays nothing for it. The rectifier calls are found the way the backward
rules find them (``engine/backward/rules.py``): a ``TorchFunctionMode`` sees every ``F.relu`` /
``torch.relu(_)`` / ``Tensor.relu(_)`` call, ``nn.ReLU`` modules included; the user's module is not touched.
"""
from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

from ..backward.rules import _RELU, _RELU_INPLACE


class _RedirectedRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, inplace):
        if inplace:
            out = s.relu_()
            ctx.mark_dirty(s)
        else:
            out = s.relu()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        on = out > 0
        ordinary = g * on
        # g is the gradient of a loss being *minimized*: g > 0 on a switched-off unit would push it further off
        redirected = torch.where(~on & (g > 0), torch.zeros_like(g), g)
        stuck = (ordinary.flatten(1).abs().amax(1) == 0).view(-1, *([1] * (g.dim() - 1)))
        return torch.where(stuck, redirected, ordinary), None


class RedirectedRelu(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU or func in _RELU_INPLACE:
            s = args[0]
            if isinstance(s, torch.Tensor) and s.requires_grad and torch.is_grad_enabled() and s.dim() >= 1:
                inplace = func in _RELU_INPLACE or bool(kwargs.get("inplace", False)) or (
                    len(args) > 1 and bool(args[1]))
                return _RedirectedRelu.apply(s, inplace)
        return func(*args, **kwargs)
