"""Backward rules for rectifiers: the plain gradient, deconvnet and guided backpropagation.

Through a ReLU with input ``s`` and incoming gradient ``g`` the three rules pass

    backprop   1[s>0] * g                 (the gradient; Simonyan et al. 2014)
    deconvnet  1[g>0] * g                 (Zeiler & Fergus 2014)
    guided     1[s>0] * 1[g>0] * g        (Springenberg et al. 2015)

A rule is applied to the autograd graph of one forward pass, not to the model: ``guide(value, rule)`` walks
the graph behind ``value`` and puts a hook on the backward node of every rectifier it finds, whatever wrote
it -- ``nn.ReLU`` modules (reused or ``inplace=True`` ones too), ``F.relu`` / ``torch.relu(_)`` /
``Tensor.relu(_)``, and a ReLU written as ``clamp(min=0)`` / ``clamp_min(0)`` / ``clamp_(min=0)`` /
``torch.maximum(s, 0)``. The hooks live on that graph only and go with it; the user's module is not touched,
so there is nothing to restore, and a forward pass pays nothing (no Python sees its operations).
``swapped(rule)`` is the same rule as a context manager, for code that cannot reach the value: a
``TorchFunctionMode`` hooks the node of every operation's output as it is made.

Other element-wise activations get a documented generalization instead of a silent plain gradient, with a
warning once per activation and rule:

    deconvnet  max(g, 0)                  -- deconvnet ignores the forward input for every activation
    guided     max(f'(s) * g, 0)          -- the activation's own derivative, then the positive gate

For a ReLU both reduce to the definitions above. ``f'(s) * g`` is what the activation's own backward node
computes, so the generalized guided rule is that node's result, clamped.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import FeatwidgetError

RULES = ("backprop", "deconvnet", "guided")

# the functional rectifiers (read by engine/synthesis/redirect.py, which swaps ReLU gradients the same way)
_RELU = {F.relu, torch.relu, torch.Tensor.relu}
_RELU_INPLACE = {torch.relu_, torch.Tensor.relu_}

# backward node -> activation (for the warning); these receive the generalized rule
_GENERALIZED = {
    "GeluBackward0": "GELU", "SiluBackward0": "SiLU", "LeakyReluBackward0": "LeakyReLU",
    "LeakyReluBackward1": "LeakyReLU", "EluBackward0": "ELU / SELU", "EluBackward1": "ELU / SELU",
    "CeluBackward0": "CELU", "CeluBackward1": "CELU", "HardswishBackward0": "Hardswish",
    "HardsigmoidBackward0": "Hardsigmoid", "HardtanhBackward0": "Hardtanh / ReLU6", "MishBackward0": "Mish",
    "SoftplusBackward0": "Softplus", "SigmoidBackward0": "sigmoid", "TanhBackward0": "tanh",
    "PreluKernelBackward0": "PReLU",
}
# a clamp is a ReLU when its lower bound is zero and it has no upper bound
_CLAMPS = {"ClampBackward0", "ClampBackward1", "ClampMinBackward0", "ClampMinBackward1"}

_ACTIVATIONS = frozenset({"ReluBackward0", "MaximumBackward0", *_GENERALIZED, *_CLAMPS})

_warned: set = set()


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise FeatwidgetError(f"Unknown rule {rule!r}; use one of {', '.join(map(repr, RULES))}.")
    return rule


# Node hooks: (grad_inputs, grad_outputs) -> grad_inputs. A rectifier's node already computed 1[s>0] * g (or
# f'(s) * g), so guided only clamps it; deconvnet replaces it by the clamped incoming gradient.
def _guided(gi, go):
    return (gi[0].clamp(min=0),) + tuple(gi[1:])


def _deconvnet(gi, go):
    return (go[0].clamp(min=0),) + tuple(gi[1:])


def _gated(i: int, s: torch.Tensor, rule: str):
    """The rule for a ReLU written as a clamp or a maximum: their own backward passes g where s == 0 too, so
    the gate 1[s>0] is taken from the input itself, as for ``F.relu``; ``i``: which grad_input is ``s``'s."""
    def hook(gi, go):
        g = go[0].clamp(min=0)
        if rule == "guided":
            g = g * (s > 0)
        return tuple(g if k == i else v for k, v in enumerate(gi))
    return hook


def _is_zero(v) -> bool:
    if isinstance(v, torch.Tensor):
        return not v.requires_grad and bool((v == 0).all())
    return v is not None and v == 0


def _relu_input(node, name: str):
    """(index of the rectified input, that input) if ``node`` is a clamp / maximum that computes a ReLU."""
    if name in _CLAMPS:
        if _is_zero(node._saved_min) and getattr(node, "_saved_max", None) is None:
            return 0, node._saved_self
    elif name == "MaximumBackward0":
        a, b = node._saved_self, node._saved_other
        if _is_zero(b) and a.requires_grad:
            return 0, a
        if _is_zero(a) and b.requires_grad:
            return 1, b
    return None


def _hook_node(node, rule: str) -> bool:
    """Put ``rule`` on ``node`` if it is an activation's backward; True if it did."""
    name = node.name()
    if name == "ReluBackward0":
        node.register_hook(_guided if rule == "guided" else _deconvnet)
        return True
    if name in _GENERALIZED:
        _warn(_GENERALIZED[name], rule)
        node.register_hook(_guided if rule == "guided" else _deconvnet)
        return True
    if name in _CLAMPS or name == "MaximumBackward0":
        found = _relu_input(node, name)
        if found is not None:
            node.register_hook(_gated(*found, rule))
            return True
    return False


def _warn(activation: str, rule: str) -> None:
    key = (activation, rule)
    if key in _warned:
        return
    _warned.add(key)
    how = ("max(g, 0), ignoring the forward input" if rule == "deconvnet" else
           "max(f'(s) * g, 0): the activation's own derivative, then the positive gate")
    warnings.warn(
        f"{rule}: the rule is defined for ReLU; for {activation} featwidget applies the generalization {how}. "
        f"Compare with rule='backprop' before reading too much into it.",
        stacklevel=4,
    )


def guide(value: torch.Tensor, rule: str) -> int:
    """Apply ``rule`` to every activation on the autograd graph behind ``value`` (before it is differentiated);
    returns how many activation nodes it changed. ``backprop`` is autograd's own rule: nothing to do."""
    if check_rule(rule) == "backprop" or value.grad_fn is None:
        return 0
    stack, seen, found = [value.grad_fn], {value.grad_fn}, []
    while stack:
        node = stack.pop()
        if node.name() in _ACTIVATIONS:
            found.append(node)
        for f, _ in node.next_functions:
            if f is not None and f not in seen:
                seen.add(f)
                stack.append(f)
    return sum(_hook_node(node, rule) for node in found)


class RuleMode(TorchFunctionMode):
    """Hooks ``rule`` onto the backward node of every activation computed while active."""

    def __init__(self, rule: str):
        super().__init__()
        self.rule = check_rule(rule)
        self.seen: set = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        node = out.grad_fn if isinstance(out, torch.Tensor) else None
        if node is not None and node not in self.seen:
            self.seen.add(node)
            _hook_node(node, self.rule)
        return out


@contextmanager
def swapped(rule: str):
    """Apply ``rule`` to every activation in the forward passes run inside the block (to their graphs only).

    ``backprop`` needs no swap (it is autograd's own rule), so it costs nothing. Where the value to be
    differentiated is at hand, ``guide(value, rule)`` does the same without watching every operation."""
    check_rule(rule)
    if rule == "backprop":
        yield
        return
    with RuleMode(rule):
        yield
