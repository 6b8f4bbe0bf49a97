"""LRP-epsilon as a rescaled gradient: the fast path of ``fw.lrp(..., rule="epsilon")``.

With the relevance of a tensor ``a`` written ``a * g`` (lrp.py), the epsilon rule at a layer ``z = W a + b``
is ``g_a = W^T (g * |z| / (|z| + eps))``: the plain gradient, with the gradient reaching each (BatchNorm-folded)
layer output multiplied by a factor of its own value. Nothing else changes -- ReLU, pooling and sums already
propagate by the LRP-0 rule -- so the pass needs neither modified layers nor a per-operation rule, only:

- a ``TorchFunctionMode`` that notes each conv / linear / batch_norm output as it is made and otherwise only
  forwards the call (the general path in lrp.py decides something for every operation, which costs more
  than a small model's forward pass);
- a hook with the factor on each layer output's gradient. A BatchNorm output gets it at once: the factor is
  computed from the value before the in-place ``+= identity`` / ``relu_`` that follow it in a ResNet. A conv
  / linear output waits to the end of the forward pass, when it is known whether a BatchNorm folded it in; if
  an in-place ReLU overwrote it meanwhile, the rectified value gives the same factor wherever the ReLU lets a
  gradient through.

The z^B input rule needs the gradient at the first layer's output; the caller (lrp.py) takes it from there
through ``first``. Whatever this path does not cover -- an operation the general path refuses, a BatchNorm
it did not see, a layer output changed in place by something other than a ReLU -- makes ``finish`` return
False, and lrp.py runs its general path instead, which gives the same numbers where both apply (tested).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.graph import get_gradient_edge
from torch.overrides import TorchFunctionMode

CONV = {torch.conv2d, torch.conv1d, torch.conv3d, F.conv2d, F.conv1d, F.conv3d}
LINEAR = {F.linear, torch._C._nn.linear}

# Backward nodes of operations the general path refuses (lrp.py, ``_UNSUPPORTED``), and of products, which it
# refuses when both factors are activations: seen on the graph, they send the call to the general path for
# its error message.
_REFUSED = frozenset({
    "GeluBackward0", "SiluBackward0", "EluBackward0", "EluBackward1", "CeluBackward0", "CeluBackward1",
    "HardswishBackward0", "HardsigmoidBackward0", "HardtanhBackward0", "MishBackward0", "SoftplusBackward0",
    "SigmoidBackward0", "TanhBackward0", "SoftmaxBackward0", "LogSoftmaxBackward0", "NativeLayerNormBackward0",
    "NativeGroupNormBackward0",
})
_PRODUCTS = frozenset({"MulBackward0", "DivBackward0", "MmBackward0", "BmmBackward0"})


_BATCH_NORM_ARGS = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")


def batch_norm_args(args, kwargs) -> dict:
    """An ``F.batch_norm`` call's arguments by name, however they were passed."""
    p = dict(zip(_BATCH_NORM_ARGS, args))
    p.update(kwargs)
    return p


def factor(z: torch.Tensor, eps: float) -> torch.Tensor:
    """|z| / (|z| + eps), the epsilon rule's rescaling of the gradient at a layer output ``z``."""
    r = z.detach().abs()
    r.div_(r + eps)
    # eps = 0 (LRP-0) at z = 0: the neuron has no relevance to pass on; 0 as for every eps > 0
    return r.nan_to_num_(0.0) if eps == 0 else r


class Layer:
    """One conv / linear call: its arguments (for the z^B rule) and its output as first made."""

    __slots__ = ("func", "args", "kwargs", "z", "node", "version", "folded", "first", "edge")

    def __init__(self, func, args, kwargs, z, first):
        self.func, self.args, self.kwargs, self.z, self.first = func, args, kwargs, z, first
        self.node, self.version, self.folded = z.grad_fn, z._version, None  # folded: the BatchNorm's arguments
        self.edge = get_gradient_edge(z) if first else None


class Rescaled(TorchFunctionMode):
    """Notes layer outputs during the forward pass and hooks the epsilon factor onto their gradients.

    ``zb``: the first layer is left to the z^B rule (no factor there; ``first`` holds it, with the gradient
    edge of its output). After the forward pass, ``finish(value)`` hooks the remaining layers, or returns
    False when the graph has something this path does not cover."""

    def __init__(self, eps: float, zb: bool):
        super().__init__()
        self.eps, self.zb = eps, zb
        self.layers: dict[int, Layer] = {}
        self.first: Layer | None = None
        self.first_bn: Layer | None = None  # a BatchNorm folded into the first layer, for the z^B rule
        self.batch_norms: set = set()
        self.covered = True

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in CONV or func in LINEAR:
            a = args[0] if args else kwargs.get("input")
            if isinstance(a, torch.Tensor) and a.requires_grad and isinstance(out, torch.Tensor):
                layer = Layer(func, args, kwargs, out, first=self.first is None)
                self.first = self.first or layer
                self.layers[id(out)] = layer
        elif func is F.batch_norm:
            self._batch_norm(out, args, kwargs)
        return out

    def _batch_norm(self, out, args, kwargs):
        if not out.requires_grad:
            return
        p = batch_norm_args(args, kwargs)
        self.batch_norms.add(out.grad_fn)
        layer = self.layers.get(id(p["input"]))
        if layer is not None and layer.z is p["input"] and layer.z._version == layer.version:
            if p.get("training", False) or p["running_mean"] is None:
                self.covered = False  # batch statistics cannot be folded: the general path says so
                return
            layer.folded = p
            if layer.first and self.zb:
                self.first_bn = Layer(F.batch_norm, args, kwargs, out, first=True)
                return
        out.register_hook(_scale(factor(out, self.eps)))

    def finish(self, value: torch.Tensor) -> bool:
        """Hook the conv / linear outputs no BatchNorm folded in; False if the general path must run."""
        if not self.covered or not self._graph_covered(value):
            return False
        for layer in self.layers.values():
            if layer.folded is not None or (layer.first and self.zb):
                continue
            if not _intact(layer):
                return False
            # on the node that made z: the gradient w.r.t. z as first made, whatever happened to z later
            layer.node.register_prehook(_scale_lazily(layer.z, self.eps))
        return self.first is None or not self.zb or _intact(self.first_output())

    def _graph_covered(self, value: torch.Tensor) -> bool:
        if value.grad_fn is None:  # a target that does not depend on the input: autograd says so
            return True
        stack, seen = [value.grad_fn], {value.grad_fn}
        while stack:
            node = stack.pop()
            name = node.name()
            if name in _REFUSED:
                return False
            if name in _PRODUCTS and sum(f is not None for f, _ in node.next_functions) > 1:
                return False
            if "BatchNorm" in name and node not in self.batch_norms:
                return False  # e.g. instance_norm, which the general path refuses
            for f, _ in node.next_functions:
                if f is not None and f not in seen:
                    seen.add(f)
                    stack.append(f)
        return True

    def first_output(self) -> Layer:
        """The first layer's output as a ``Layer`` record (a folded BatchNorm's output if there is one)."""
        return self.first if self.first.folded is None else self.first_bn


def _intact(layer: Layer) -> bool:
    """Whether ``layer.z`` still holds its value as made, or that value rectified by one in-place ReLU."""
    z = layer.z
    if z._version == layer.version:
        return True
    node = z.grad_fn
    return (z._version == layer.version + 1 and node is not None and node.name() == "ReluBackward0"
            and node.next_functions[0][0] is layer.node)


def _scale(r: torch.Tensor):
    def hook(g):
        return g * r
    return hook


def _scale_lazily(z: torch.Tensor, eps: float):
    def hook(grad_outputs):
        return (grad_outputs[0] * factor(z, eps),) + tuple(grad_outputs[1:])
    return hook
