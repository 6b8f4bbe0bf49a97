"""The network as a chain of stages, so that occlusion can recompute only what a patch reaches.

Incremental inference (Krypton, Nakandala et al. SIGMOD 2019) needs to know, layer by layer, which positions an
input change can reach. We read that off the structure of the model:

- ``nn.Sequential`` (and any container whose traced forward pass is a plain chain of its children, possibly with
  a ``flatten`` between them, checked numerically) is unrolled into its children;
- ``Spatial`` stages: ``nn.Conv2d`` (zero padding), ``nn.MaxPool2d``, ``nn.AvgPool2d`` (floor mode, padding
  counted) -- local window ops whose projective field grows by kernel, stride and padding;
- ``Pointwise`` stages: activations, eval-mode BatchNorm2d, Dropout (identity in eval), Identity;
- ``Residual`` stages: torchvision ResNet ``BasicBlock`` / ``Bottleneck``, whose output region is the union of
  the regions of the main branch and the shortcut;
- everything else is ``Opaque`` (attention, squeeze-and-excitation, adaptive/global pooling, Linear, arbitrary
  functional graphs, modules called several times): from the first opaque stage on, occlusion recomputes the
  whole rest of the network on the batch of occluded images.

Every decomposition is checked against the module's own output on a random input; a container that does not
reproduce its output becomes ``Opaque``, and if the whole chain does not reproduce the network's output the
engine falls back to plain batched forward passes. The result is cached on the ``Network``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch
from torch import nn

from ..safety import own_thread

POINTWISE = {
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus, nn.PReLU, nn.Identity, nn.Dropout, nn.Dropout2d,
    nn.AlphaDropout, nn.BatchNorm2d,
}
RESIDUAL_BLOCKS = {"BasicBlock", "Bottleneck"}  # torchvision.models.resnet


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class Stage:
    names: list

    def full(self, h: torch.Tensor) -> torch.Tensor:
        return self.module(h)


@dataclass(eq=False)
class Spatial(Stage):
    """A local window op: out[o] reads in[o*s - p : o*s - p + (k-1)*d + 1]."""

    module: nn.Module
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    pad_value: float
    names: list = field(default_factory=list)

    @property
    def extent(self) -> tuple:  # effective kernel size with dilation
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation))

    def on_crop(self, crop: torch.Tensor) -> torch.Tensor:
        """Apply the op to an explicitly padded crop (padding already in the crop, so none here)."""
        m = self.module
        if isinstance(m, nn.Conv2d):
            return nn.functional.conv2d(crop, m.weight, m.bias, m.stride, 0, m.dilation, m.groups)
        if isinstance(m, nn.MaxPool2d):
            return nn.functional.max_pool2d(crop, self.kernel, self.stride, 0, self.dilation)
        return nn.functional.avg_pool2d(crop, self.kernel, self.stride, 0)


@dataclass(eq=False)
class Pointwise(Stage):
    module: nn.Module
    names: list = field(default_factory=list)

    @property
    def inplace(self) -> bool:
        return bool(getattr(self.module, "inplace", False))


@dataclass(eq=False)
class Residual(Stage):
    """post(branch(x) + shortcut(x)); an empty shortcut is the identity."""

    module: nn.Module
    branch: list
    shortcut: list
    post: list
    names: list = field(default_factory=list)

    def decomposed(self, h):
        out = run_full(self.branch, h) + run_full(self.shortcut, h)
        return run_full(self.post, out)


@dataclass(eq=False)
class Opaque(Stage):
    module: object  # an nn.Module or a plain callable (the functional flatten)
    names: list = field(default_factory=list)

    def full(self, h):
        return self.module(h)


def flatten(h: torch.Tensor) -> torch.Tensor:
    return h.flatten(1)


def run_full(stages, h):
    for s in stages:
        h = s.decomposed(h) if isinstance(s, Residual) else s.full(h)
    return h


def _leaf(m: nn.Module, name: str) -> Stage:
    t = type(m)
    if t is nn.Conv2d and m.padding_mode == "zeros" and not isinstance(m.padding, str):
        return Spatial(m, _pair(m.kernel_size), _pair(m.stride), _pair(m.padding), _pair(m.dilation), 0.0, [name])
    if t is nn.MaxPool2d and not m.ceil_mode and not m.return_indices:
        return Spatial(m, _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding),
                       _pair(m.dilation), float("-inf"), [name])
    if t is nn.AvgPool2d and not m.ceil_mode and m.divisor_override is None and (
            m.count_include_pad or _pair(m.padding) == (0, 0)):
        return Spatial(m, _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding), (1, 1), 0.0,
                       [name])
    if t in POINTWISE:
        return Pointwise(m, [name])
    return Opaque(m, [name])


@dataclass
class Call:
    start: int
    end: int = -1
    inp: object = None
    out: object = None
    inp_value: torch.Tensor | None = None
    out_value: torch.Tensor | None = None


class _Trace:
    """One forward pass recording every module call's input and output (objects and value copies)."""

    def __init__(self, root: nn.Module, x: torch.Tensor):
        self.calls: dict[nn.Module, list[Call]] = {}
        self.tick = 0
        mods = list(root.modules())

        def pre(mod, inp):
            self.tick += 1
            t = inp[0] if len(inp) == 1 and isinstance(inp[0], torch.Tensor) else None
            self.calls.setdefault(mod, []).append(
                Call(self.tick, inp=t, inp_value=None if t is None else t.detach().clone()))

        def post(mod, inp, out):
            self.tick += 1
            c = self.calls[mod][-1]
            c.end = self.tick
            if isinstance(out, torch.Tensor):
                c.out, c.out_value = out, out.detach().clone()

        pre, post = own_thread(pre), own_thread(post)
        handles = [m.register_forward_pre_hook(pre) for m in mods] + [m.register_forward_hook(post) for m in mods]
        try:
            self.output = root(x)
        finally:
            for h in handles:
                h.remove()

    def once(self, m) -> Call | None:
        cs = self.calls.get(m, [])
        return cs[0] if len(cs) == 1 and cs[0].inp is not None and cs[0].out is not None else None


def _matches(fn, call: Call) -> bool:
    try:
        out = fn(call.inp_value.clone())
    except Exception:
        return False
    ref = call.out_value
    return isinstance(out, torch.Tensor) and out.shape == ref.shape and torch.allclose(out, ref, rtol=1e-4, atol=1e-4)


def _decompose(m: nn.Module, name: str, trace: _Trace) -> list[Stage]:
    children = list(m.named_children())
    if not children:
        return [_leaf(m, name)]
    call = trace.once(m)
    if call is None:
        return [Opaque(m, [name])]
    prefix = f"{name}." if name else ""
    if type(m).__name__ in RESIDUAL_BLOCKS:
        stages = _residual(m, name, trace, call)
    elif type(m) is nn.Sequential:
        stages = [s for n, c in children for s in _decompose(c, prefix + n, trace)]
    else:
        stages = _chain_of_children(m, prefix, trace, call)
    if stages is None or not _matches(lambda h: run_full(stages, h), call):
        return [Opaque(m, [name])]
    if name:
        stages[-1].names.append(name)
    return stages


def _chain_of_children(m, prefix, trace, call) -> list[Stage] | None:
    """A container whose forward calls each child once, feeding each one the previous one's output."""
    kids = []
    for n, c in m.named_children():
        cs = trace.calls.get(c, [])
        if not cs:
            continue  # defined but unused
        if len(cs) != 1 or not (call.start < cs[0].start and cs[0].end < call.end):
            return None
        if cs[0].inp is None or cs[0].out is None:
            return None
        kids.append((cs[0].start, n, c, cs[0]))
    kids.sort(key=lambda k: k[0])
    stages, prev = [], call.inp
    for _, n, c, cc in kids:
        if cc.inp is not prev:
            if (prev is not None and cc.inp.dim() == 2 and prev.dim() > 2 and cc.inp.data_ptr() == prev.data_ptr()
                    and cc.inp.shape[1] == prev[0].numel()):
                stages.append(Opaque(flatten, []))
            else:
                return None
        stages += _decompose(c, prefix + n, trace)
        prev = cc.out
    return stages if kids and prev is call.out else None


def _residual(m, name, trace, call) -> list[Stage] | None:
    parts = ["conv1", "bn1", "relu", "conv2", "bn2"] + (["relu", "conv3", "bn3"] if hasattr(m, "conv3") else [])
    if not all(isinstance(getattr(m, p, None), nn.Module) for p in parts):
        return None
    branch = [_leaf(getattr(m, p), f"{name}.{p}") for p in parts]
    shortcut = [] if m.downsample is None else _decompose(m.downsample, f"{name}.downsample", trace)
    post = [_leaf(m.relu, f"{name}.relu")]
    stages = branch + shortcut + post
    if not all(isinstance(s, (Spatial, Pointwise)) for s in stages) or not isinstance(post[0], Pointwise):
        return None
    if shortcut and not any(isinstance(s, Spatial) for s in shortcut):
        return None
    for s in stages:
        s.names.clear()  # inner layers (the ReLU is called twice) are not exposed as stage outputs
    return [Residual(m, branch, shortcut, post, [])]


@dataclass
class Chain:
    stages: list
    exact: bool  # the chain reproduced the network's output

    def stage_of(self, layer: str) -> int | None:
        """Index of the last stage whose output is ``layer``'s activation."""
        found = None
        for i, s in enumerate(self.stages):
            if layer in s.names:
                found = i
        return found


_lock = threading.Lock()


def chain_of(net) -> Chain:
    """The stage chain of a ``Network`` (cached on it). Run under ``preserved`` and ``no_grad``."""
    with _lock:
        cached = getattr(net, "_occlusion_chain", None)
        if cached is not None:
            return cached
        g = torch.Generator().manual_seed(0)
        x = torch.rand((1, *net.input_size), generator=g).to(net.device)
        trace = _Trace(net.module, net.normalize(x))
        stages = _decompose(net.module, "", trace)
        ok = isinstance(trace.output, torch.Tensor) and _matches(
            lambda h: run_full(stages, h), Call(0, inp_value=net.normalize(x), out_value=trace.output))
        chain = Chain(stages if ok else [Opaque(net.module, [])], ok)
        net._occlusion_chain = chain
        return chain
