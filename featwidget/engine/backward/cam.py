"""Class activation maps: CAM (Zhou et al. 2016), Grad-CAM and guided Grad-CAM (Selvaraju et al. 2017).

CAM needs a network that ends in global average pooling followed by one linear layer: the map of class c is
sum_k w_ck A_k, A the pooled feature map. Grad-CAM works on any CNN: the channel weights are the spatial means
of d target / d A at a chosen layer (default: the last convolutional feature map), and the map is
ReLU(sum_k alpha_k A_k). Both maps are upsampled bilinearly to the input size. Guided Grad-CAM multiplies the
Grad-CAM map into guided backpropagation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import FeatwidgetError
from ..network import Network
from ..safety import own_thread, preserved
from ..targets import Combination, Logit, Predicted, Target
from .common import prepare
from .lrp_epsilon import LINEAR as _LINEAR
from .rules import guide

_POOLS = (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.MaxPool2d, nn.AdaptiveMaxPool2d)


def cam(net, x, target=None) -> torch.Tensor:
    """CAM of a class target (a logit, the predicted class, or a combination of logits), (B, 1, H, W)."""
    net, x, t = prepare(net, x, target)
    if not _logit_linear(t):
        raise FeatwidgetError(
            f"fw.cam explains class scores: use a class index, fw.Logit(c), a combination such as "
            f"fw.Logit(3) - fw.Logit(5), or None (the predicted class); got {t!r}. For other targets use "
            f"fw.grad_cam(...)."
        )
    with preserved(net.module), torch.no_grad():
        rec = _Recorder()
        with rec:
            out = net.module(net.normalize(x))
        features, weight, bias = rec.gap_linear(out)
        # d target / d pooled = the class weight vector (the head is linear); the CAM is its map over A
        pooled = features.mean((2, 3)).requires_grad_(True)
        with torch.enable_grad():
            (w,) = torch.autograd.grad(t.evaluate(F.linear(pooled, weight, bias), {}).sum(), pooled)
        m = torch.einsum("bk,bkhw->bhw", w, features)[:, None]
    return upsample(m, x)


def grad_cam(net, x, target=None, layer: str | None = None, relu: bool = True) -> torch.Tensor:
    """Grad-CAM at ``layer`` (default ``default_layer(net)``), upsampled to the input, (B, 1, H, W)."""
    net, x, t = prepare(net, x, target)
    layer = default_layer(net) if layer is None else layer
    net.layer(layer)
    with preserved(net.module), torch.enable_grad():
        a, value = _tapped(net, x, t, layer)
        return upsample(_weighted(a, value, relu), x)


def guided_grad_cam(net, x, target=None, layer: str | None = None) -> torch.Tensor:
    """Guided backpropagation times the (upsampled) Grad-CAM map, (B, C, H, W).

    One forward pass serves both: the plain gradient at the Grad-CAM layer is taken first (autograd runs only
    the head, between the target and the layer), then the guided rule is put on the same graph and the
    gradient taken down to the input."""
    net, x, t = prepare(net, x, target)
    layer = default_layer(net) if layer is None else layer
    net.layer(layer)
    with preserved(net.module), torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        a, value = _tapped(net, xg, t, layer)
        heat = _weighted(a, value, True, keep_graph=True)
        if heat is None:
            raise _unrelated(t, layer)
        heat = upsample(heat, x)
        guide(value, "guided")
        (g,) = torch.autograd.grad(value.sum(), xg)
    return g * heat


def _weighted(a: torch.Tensor, value: torch.Tensor, relu: bool, keep_graph: bool = False):
    """sum_k alpha_k A_k with alpha_k the spatial mean of d value / d A_k (then ReLU), (B, 1, h, w); None if
    the value does not depend on ``a``."""
    (g,) = torch.autograd.grad(value.sum(), a, retain_graph=keep_graph, allow_unused=True)
    if g is None:
        return None
    alpha = g.flatten(2).mean(2)[:, :, None, None]
    m = (alpha * a.detach()).sum(1, keepdim=True)
    return m.clamp(min=0) if relu else m


def default_layer(net: Network) -> str:
    """The last convolutional feature map: the deepest layer after the last Conv2d that keeps its spatial
    size and is not a pooling layer (torchvision: resnet 'layer4', vgg/alexnet the last ReLU of 'features')."""
    convs = net.conv_layers
    if not convs:
        raise FeatwidgetError("Grad-CAM needs a convolutional layer, and this network has no nn.Conv2d; "
                              "pass layer= with a layer of 4-D output (see net.layers).")
    last = net.layer(convs[-1])
    names = net.layer_names
    best = last.name
    for l in net.layers[names.index(last.name) + 1:]:
        if len(l.out_shape) == 3 and l.out_shape[1:] == last.out_shape[1:] and not isinstance(
                net.submodule(l.name), _POOLS):
            best = l.name
    return best


def upsample(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(m, size=x.shape[2:], mode="bilinear", align_corners=False)


def _tapped(net: Network, x, target: Target, layer: str):
    """(activation of ``layer``, target value), the activation being the layer's last call (as in
    ``net.activations``). For an ``x`` without grad the activation is a leaf: the graph starts at the layer
    and a backward pass stops there. For an ``x`` with grad the graph runs on from ``x`` through it."""
    module, calls = net.submodule(layer), net.layer(layer).calls
    seen, tapped = [0], []

    def hook(mod, inp, out):
        seen[0] += 1
        if seen[0] == calls and isinstance(out, torch.Tensor):
            a = out.clone() if x.requires_grad else out.detach().requires_grad_(True)
            tapped.append(a)
            return a.clone()  # a later in-place op (ReLU(inplace=True)) must not touch the tapped tensor

    handle = module.register_forward_hook(own_thread(hook))
    try:
        with torch.enable_grad():
            value = net.evaluate(x, target)
    finally:
        handle.remove()
    if not tapped or not value.requires_grad:
        raise _unrelated(target, layer)
    return tapped[0], value


def _unrelated(target: Target, layer: str) -> FeatwidgetError:
    return FeatwidgetError(
        f"The target {target!r} does not depend on layer {layer!r}: pick a layer before the deepest layer "
        f"the target reads (see net.layers)."
    )


def _logit_linear(t: Target) -> bool:
    if isinstance(t, Combination):
        return all(_logit_linear(s) for _, s in t.terms)
    return isinstance(t, (Logit, Predicted))


_GLOBAL_POOL_FUNCS = {F.adaptive_avg_pool2d, torch.mean, torch.Tensor.mean, F.avg_pool2d}


class _Recorder(TorchFunctionMode):
    """Remembers the last global average pooling and the last linear layer of a forward pass."""

    def __init__(self):
        super().__init__()
        self.pool = None  # (feature map, pooled)
        self.linear = None  # (input, weight, bias, output)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _GLOBAL_POOL_FUNCS and isinstance(args[0], torch.Tensor) and args[0].dim() == 4 \
                and isinstance(out, torch.Tensor) and out.numel() == args[0].shape[0] * args[0].shape[1]:
            self.pool = (args[0], out)
        elif func in _LINEAR:
            w = args[1] if len(args) > 1 else kwargs.get("weight")
            b = args[2] if len(args) > 2 else kwargs.get("bias")
            self.linear = (args[0], w, b, out)
        return out

    def gap_linear(self, out):
        ok = (self.pool is not None and self.linear is not None and self.linear[3] is out
              and self.linear[0].shape == (self.pool[1].shape[0], self.pool[1].shape[1])
              and torch.equal(self.linear[0], self.pool[1].reshape(self.linear[0].shape)))
        if not ok:
            raise FeatwidgetError(
                "fw.cam needs a network that ends in global average pooling followed by a single linear layer "
                "(like ResNet); this one does not. Use fw.grad_cam(net, x), which works on any CNN."
            )
        return self.pool[0], self.linear[1], self.linear[2]
