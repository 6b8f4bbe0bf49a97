"""Backward rules for rectifiers: the plain gradient, deconvnet and guided backpropagation.

Through a ReLU with input ``s`` and incoming gradient ``g`` the three rules pass

    backprop   1[s>0] * g                 (the gradient; Simonyan et al. 2014)
    deconvnet  1[g>0] * g                 (Zeiler & Fergus 2014)
    guided     1[s>0] * 1[g>0] * g        (Springenberg et al. 2015)

A rule is swapped in, Zennit-style, by a context manager that undoes itself: ``with swapped("guided"): ...``
activates a ``TorchFunctionMode`` for the forward pass. It sees every call of ``F.relu`` / ``torch.relu`` /
``torch.relu_`` / ``Tensor.relu(_)`` -- ``nn.ReLU`` modules (reused or ``inplace=True`` ones too) go through
``F.relu`` -- and routes it through an autograd function carrying the rule. Nothing on the user's module is
touched, so there is nothing to restore.

Other element-wise activations get a documented generalization instead of a silent plain gradient, with a
warning once per activation and rule:

    deconvnet  max(g, 0)                  -- deconvnet ignores the forward input for every activation
    guided     max(f'(s) * g, 0)          -- the activation's own derivative, then the positive gate

For a ReLU both reduce to the definitions above. The derivative ``f'(s)`` is taken in the forward pass (so
``inplace=True`` activations such as mobilenet_v3's Hardswish are safe) by autograd on the activation itself.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import FeatwidgetError

RULES = ("backprop", "deconvnet", "guided")

_RELU = {F.relu, torch.relu, torch.Tensor.relu}
_RELU_INPLACE = {torch.relu_, torch.Tensor.relu_}

# element-wise activations that receive the generalized rule; value: does it take an ``inplace`` flag
_OTHER = {
    torch._C._nn.gelu: False, F.silu: True, F.leaky_relu: True, F.elu: True, F.selu: True, F.celu: True,
    F.hardswish: True, F.hardsigmoid: True, F.relu6: True, F.hardtanh: True, F.mish: True,
    torch._C._nn.softplus: False, torch.sigmoid: False, torch.Tensor.sigmoid: False, torch.tanh: False,
    torch.Tensor.tanh: False, F.prelu: False,
}

_warned: set = set()


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise FeatwidgetError(f"Unknown rule {rule!r}; use one of {', '.join(map(repr, RULES))}.")
    return rule


class _Relu(torch.autograd.Function):
    """ReLU whose backward applies ``rule``; saves the output (``out > 0`` iff ``s > 0``), never the input."""

    @staticmethod
    def forward(ctx, s, rule, inplace):
        if inplace:
            out = s.relu_()
            ctx.mark_dirty(s)
        else:
            out = s.relu()
        ctx.rule = rule
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        if ctx.rule == "deconvnet":
            return g.clamp(min=0), None, None
        if ctx.rule == "guided":
            return g.clamp(min=0) * (out > 0), None, None
        return g * (out > 0), None, None


def _derivative(fn, s, args, kwargs):
    """f'(s) element-wise, by autograd on the activation itself (it is element-wise, so a vjp with ones)."""
    with torch.enable_grad():
        s_ = s.detach().requires_grad_(True)
        y = fn(s_, *args, **kwargs)
        (d,) = torch.autograd.grad(y, s_, torch.ones_like(y))
    return d


class _Generalized(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, fn, rule, args, kwargs):
        kwargs = dict(kwargs)
        inplace = kwargs.pop("inplace", False)
        if rule == "guided":
            ctx.save_for_backward(_derivative(fn, s, args, kwargs))
        ctx.rule = rule
        out = fn(s, *args, **kwargs)
        if inplace:  # keep the caller's in-place semantics for code that ignores the return value
            s.copy_(out)
            ctx.mark_dirty(s)
            return s
        return out

    @staticmethod
    def backward(ctx, g):
        if ctx.rule == "deconvnet":
            return g.clamp(min=0), None, None, None, None
        (d,) = ctx.saved_tensors
        return (d * g).clamp(min=0), None, None, None, None


def _name(func) -> str:
    return getattr(func, "__name__", repr(func))


class RuleMode(TorchFunctionMode):
    """Routes every rectifier call made while active through ``rule``'s backward."""

    def __init__(self, rule: str):
        super().__init__()
        self.rule = check_rule(rule)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU or func in _RELU_INPLACE:
            s = args[0]
            inplace = func in _RELU_INPLACE or bool(kwargs.get("inplace", False))
            if not (isinstance(s, torch.Tensor) and s.requires_grad and torch.is_grad_enabled()):
                return func(*args, **kwargs)
            return _Relu.apply(s, self.rule, inplace)
        if func in _OTHER:
            s = args[0]
            if not (isinstance(s, torch.Tensor) and s.requires_grad and torch.is_grad_enabled()):
                return func(*args, **kwargs)
            key = (_name(func), self.rule)
            if key not in _warned:
                _warned.add(key)
                how = ("max(g, 0), ignoring the forward input" if self.rule == "deconvnet" else
                       "max(f'(s) * g, 0): the activation's own derivative, then the positive gate")
                warnings.warn(
                    f"{self.rule}: the rule is defined for ReLU; for {_name(func)} featwidget applies the "
                    f"generalization {how}. Compare with rule='backprop' before reading too much into it.",
                    stacklevel=2,
                )
            plain = {k: v for k, v in kwargs.items()}
            if _OTHER[func] is False:
                plain.pop("inplace", None)
            return _Generalized.apply(s, func, self.rule, tuple(args[1:]), tuple(plain.items()))
        return func(*args, **kwargs)


@contextmanager
def swapped(rule: str):
    """Apply ``rule`` to every rectifier in the forward passes run inside the block; undone on exit.

    ``backprop`` needs no swap (it is autograd's own rule), so it costs nothing."""
    check_rule(rule)
    if rule == "backprop":
        yield
        return
    with RuleMode(rule):
        yield
