"""Receptive-field size, stride and offset of every layer, by the classic recurrence

    r_out = r_in + (k - 1) * d * j_in,    j_out = j_in * s,    c_out = c_in + ((k - 1) / 2 * d - p) * j_in

applied to convolutions and poolings met in one traced forward pass; every other module is taken as
pointwise (ReLU, BatchNorm) and global pooling / linear layers see the whole image. Tensors are followed by
their storage, so in-place ReLUs and residual ``+=`` keep the main path's field; a tensor made by a functional
op between modules takes the field of the most recent module output (true for sequential and residual CNNs).
Every traced output is kept alive until the trace ends, so no freed storage is reused by a later tensor and
mistaken for it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .safety import own_thread, preserved


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple    # (h, w) in input pixels
    stride: tuple  # (h, w): input pixels between neighbouring units
    offset: tuple  # (y, x): input coordinate of the centre of unit (0, 0)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _compose(rf: ReceptiveField, k, s, p, d) -> ReceptiveField:
    k, s, p, d = _pair(k), _pair(s if s is not None else k), _pair(p), _pair(d)
    return ReceptiveField(
        size=tuple(r + (kk - 1) * dd * j for r, kk, dd, j in zip(rf.size, k, d, rf.stride)),
        stride=tuple(j * ss for j, ss in zip(rf.stride, s)),
        offset=tuple(c + ((kk - 1) / 2 * dd - pp) * j for c, kk, dd, pp, j in zip(rf.offset, k, d, p, rf.stride)),
    )


def all_receptive_fields(net) -> dict[str, ReceptiveField]:
    h, w = net.input_size[1:]
    whole = ReceptiveField((h, w), (h, w), ((h - 1) / 2, (w - 1) / 2))
    by_ptr: dict[int, ReceptiveField] = {}
    last = [ReceptiveField((1, 1), (1, 1), (0.0, 0.0))]
    fields: dict[str, ReceptiveField] = {}
    alive: list[torch.Tensor] = []
    names = {m: n for n, m in net.module.named_modules() if n}

    def field_of(t):
        return by_ptr.get(t.data_ptr(), last[0]) if isinstance(t, torch.Tensor) else last[0]

    def hook(mod, inp, out):
        if not isinstance(out, torch.Tensor):
            return
        is_leaf = not any(True for _ in mod.children())
        if is_leaf:
            rf = field_of(inp[0]) if inp else last[0]
            if isinstance(mod, nn.Conv2d):
                rf = _compose(rf, mod.kernel_size, mod.stride, mod.padding, mod.dilation)
            elif isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
                rf = _compose(rf, mod.kernel_size, mod.stride, mod.padding, getattr(mod, "dilation", 1))
            elif isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                if out.dim() == 4 and inp[0].dim() == 4:
                    ih, iw = inp[0].shape[2:]
                    oh, ow = out.shape[2:]
                    k = (-(-ih // oh), -(-iw // ow))
                    rf = whole if (oh, ow) == (1, 1) else _compose(rf, k, (ih // oh, iw // ow), 0, 1)
            elif isinstance(mod, (nn.Linear, nn.Flatten)) or out.dim() < 4:
                rf = whole
            rf = ReceptiveField(tuple(min(r, full) for r, full in zip(rf.size, (h, w))) if rf is whole else rf.size,
                                rf.stride, rf.offset)
        else:
            rf = field_of(out)
        alive.append(out)
        by_ptr[out.data_ptr()] = rf
        last[0] = rf
        fields[names[mod]] = rf

    x = net.normalize(torch.zeros((1, *net.input_size), device=net.device))
    by_ptr[x.data_ptr()] = last[0]
    with preserved(net.module), torch.no_grad():
        handles = [m.register_forward_hook(own_thread(hook)) for m in names]
        try:
            net.module(x)
        finally:
            for hd in handles:
                hd.remove()
    return fields


def receptive_field(net, layer: str) -> ReceptiveField:
    net.layer(layer)
    fields = getattr(net, "_receptive_fields", None)
    if fields is None:
        fields = net._receptive_fields = all_receptive_fields(net)
    return fields[layer]
