"""Incremental inference for occlusion (Krypton: Nakandala, Kumar & Papakonstantinou, SIGMOD 2019).

An occluded image differs from the original only inside the patch. Through a convolution or pooling layer the
changed region grows (its *projective field*) by the kernel extent and shrinks by the stride; everything outside
it equals the unoccluded activation. So we run the unoccluded image once, keep every stage's input, and for a
batch of patches compute each layer only on its changed region: the crop of the cached input that region
reads (the receptive-field context, padding made explicit), with the previous layer's recomputed region spliced
in. Results are exact. All patches of one call get the same region size per layer (the largest any window
needs; a window near a border gets its region shifted inside the map), so a whole chunk of patches is one
batched tensor op per layer.

When the region of a stage would cover ``FULL_SWITCH`` of its map or more, or the stage is ``Opaque``, the
chunk is materialised into full activations and the rest of the network runs on them as usual (this is both
the fallback for layers we cannot follow and cheaper than cropping when a region is nearly the whole map).
A small cost model (convolution multiply-adds of the plan vs of full passes) runs everything in full passes
when following the regions would save less than ``1 - WORTH_IT`` of the work -- e.g. small networks whose
compute sits in low-resolution layers that any patch covers -- because cropping has its own overhead.

``tau`` (approximate mode) is Krypton's projective-field threshold: a region is never allowed to grow beyond
``tau`` of its map's height / width (it is cut around its centre); changes outside the cut are dropped, i.e.
taken from the unoccluded activations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .chain import Opaque, Pointwise, Residual, Spatial

FULL_SWITCH = 0.5
WORTH_IT = 0.7


@dataclass
class Region:
    """Per-window rows [y0, y1) and columns [x0, x1) (tensors over windows)."""

    y0: torch.Tensor
    y1: torch.Tensor
    x0: torch.Tensor
    x1: torch.Tensor

    def union(self, o: "Region") -> "Region":
        return Region(torch.minimum(self.y0, o.y0), torch.maximum(self.y1, o.y1),
                      torch.minimum(self.x0, o.x0), torch.maximum(self.x1, o.x1))


@dataclass
class Placement:
    """Where an op's recomputed block lies: start per window, one size for all windows."""

    y: torch.Tensor
    x: torch.Tensor
    h: int
    w: int
    density: float  # h * w / map area


@dataclass
class Patch:
    """Recomputed values (N, C, h, w) whose top-left corner is at map position (y, x) for each item."""

    values: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor


def crop(a: torch.Tensor, b: torch.Tensor, y, x, h: int, w: int, patch: Patch | None = None,
         offset: int | tuple = 0) -> torch.Tensor:
    """``a[b]`` cut at rows y..y+h, cols x..x+w per item -> (N, C, h, w), with ``patch`` overriding where it lies.

    ``offset`` is the padding of ``a`` (patch positions are in unpadded coordinates).
    """
    oy, ox = offset if isinstance(offset, tuple) else (offset, offset)
    n = b.shape[0]
    y = torch.as_tensor(y).expand(n)
    x = torch.as_tensor(x).expand(n)
    rows = y[:, None] + torch.arange(h, device=a.device)
    cols = x[:, None] + torch.arange(w, device=a.device)
    out = a[b[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (N, h, w, C)
    if patch is not None:
        ph, pw = patch.values.shape[2:]
        vr = rows - oy - patch.y[:, None]
        vc = cols - ox - patch.x[:, None]
        inside = ((vr >= 0) & (vr < ph))[:, :, None] & ((vc >= 0) & (vc < pw))[:, None, :]
        items = torch.arange(n, device=a.device)[:, None, None]
        pv = patch.values[items, :, vr.clamp(0, ph - 1)[:, :, None], vc.clamp(0, pw - 1)[:, None, :]]
        out = torch.where(inside[..., None], pv, out)
    return out.permute(0, 3, 1, 2).contiguous()


def _through(lo, hi, k, s, p, n_out):
    """Input rows [lo, hi) changed -> output rows changed by a window op (kernel extent k, stride s, padding p)."""
    olo = torch.div(lo + p - k, s, rounding_mode="floor") + 1
    ohi = -torch.div(-(hi + p), s, rounding_mode="floor")
    return olo.clamp(0, n_out), ohi.clamp(0, n_out)


def _cap(lo, hi, cap):
    """Cut [lo, hi) to at most ``cap`` around its centre (projective-field threshold)."""
    too_big = (hi - lo) > cap
    c = torch.div(lo + hi - cap, 2, rounding_mode="floor")
    return torch.where(too_big, c, lo), torch.where(too_big, c + cap, hi)


def _place(r: Region, n_y: int, n_x: int, tau: float | None) -> tuple[Region, Placement]:
    y0, y1, x0, x1 = r.y0, r.y1, r.x0, r.x1
    if tau is not None:
        y0, y1 = _cap(y0, y1, max(1, math.ceil(tau * n_y)))
        x0, x1 = _cap(x0, x1, max(1, math.ceil(tau * n_x)))
    h = max(1, int((y1 - y0).max()))
    w = max(1, int((x1 - x0).max()))
    # shift a block that would hang over the far border back inside the map (it still covers the change)
    place = Placement(y0.clamp(0, n_y - h), x0.clamp(0, n_x - w), h, w, h * w / (n_y * n_x))
    return Region(y0, y1, x0, x1), place


@dataclass
class Session:
    """Cached unoccluded activations and the per-op placements for one call (one batch of images)."""

    inputs: list = field(default_factory=list)     # unpadded input of every top-level stage, + final output
    padded: dict = field(default_factory=dict)     # op -> its input, padded with the op's pad value
    shape: dict = field(default_factory=dict)      # op -> (in_h, in_w, out_h, out_w)
    place: dict = field(default_factory=dict)      # op -> Placement
    full_from: int = 0                              # first top-level stage run on full activations
    tau: float | None = None


# ---------------------------------------------------------------- unoccluded pass: cache what crops will read
def clean(stages, h, ses: Session, top: bool = False):
    for s in stages:
        if top:
            ses.inputs.append(h)
        if isinstance(s, Spatial):
            ph, pw = s.padding
            ses.padded[s] = torch.nn.functional.pad(h, (pw, pw, ph, ph), value=s.pad_value)
            out = s.full(h)
            ses.shape[s] = (*h.shape[2:], *out.shape[2:])
            h = out
        elif isinstance(s, Residual):
            ses.padded[s] = h
            out = clean(s.branch, h, ses) + clean(s.shortcut, h, ses)
            h = clean(s.post, out, ses)
            ses.shape[s] = (*ses.padded[s].shape[2:], *h.shape[2:])
        else:  # pointwise or opaque; cached tensors must survive in-place modules
            h = s.full(h.clone() if top and (isinstance(s, Opaque) or s.inplace) else h)
    if top:
        ses.inputs.append(h)
    return h


# ---------------------------------------------------------------- planning: changed regions -> placements
def _plan_chain(stages, r: Region, ses: Session) -> Region:
    for s in stages:
        r = _plan(s, r, ses)
    return r


def _last_spatial(stages):
    return [s for s in stages if isinstance(s, Spatial)][-1]


def _plan(s, r: Region, ses: Session) -> Region:
    if isinstance(s, Pointwise):
        return r
    if isinstance(s, Spatial):
        _, _, n_y, n_x = ses.shape[s]
        (ky, kx), (sy, sx), (py, px) = s.extent, s.stride, s.padding
        y0, y1 = _through(r.y0, r.y1, ky, sy, py, n_y)
        x0, x1 = _through(r.x0, r.x1, kx, sx, px, n_x)
        out, ses.place[s] = _place(Region(y0, y1, x0, x1), n_y, n_x, ses.tau)
        return out
    # residual: both paths must deliver the block's output region
    in_y, in_x, n_y, n_x = ses.shape[s]
    rb = _plan_chain(s.branch, r, ses)
    rs = _plan_chain(s.shortcut, r, ses) if s.shortcut else r
    out, place = _place(rb.union(rs), n_y, n_x, ses.tau)
    ses.place[_last_spatial(s.branch)] = place
    if s.shortcut:
        ses.place[_last_spatial(s.shortcut)] = place
    ses.place[s] = place
    return out


def _density(s, ses: Session) -> float:
    if isinstance(s, Spatial):
        return ses.place[s].density
    if isinstance(s, Residual):
        return max(ses.place[o].density for o in s.branch + s.shortcut + [s] if o in ses.place)
    return 0.0


def plan(stages, ses: Session, wy, wx, size) -> None:
    """Place every op's recomputed block for windows at (wy, wx) of ``size``; decide where to go full."""
    r = Region(wy, wy + size[0], wx, wx + size[1])
    ses.full_from = len(stages)
    for i, s in enumerate(stages):
        if isinstance(s, Opaque):
            ses.full_from = i
            break
        r = _plan(s, r, ses)
        if ses.tau is None and _density(s, ses) >= FULL_SWITCH:
            ses.full_from = i
            break
    if ses.tau is None and cost(stages, ses, incremental=True) > WORTH_IT * cost(stages, ses, incremental=False):
        ses.full_from = 0


def _spatial_ops(s):
    if isinstance(s, Spatial):
        yield s
    elif isinstance(s, Residual):
        for o in s.branch + s.shortcut:
            yield from _spatial_ops(o)


def cost(stages, ses: Session, incremental: bool) -> float:
    """Convolution multiply-adds per occluded image (pooling and the opaque head are not counted)."""
    total = 0.0
    for i, s in enumerate(stages):
        for o in _spatial_ops(s):
            if isinstance(o.module, torch.nn.Conv2d) and o in ses.shape:
                _, _, n_y, n_x = ses.shape[o]
                part = incremental and i < ses.full_from
                area = ses.place[o].h * ses.place[o].w if part else n_y * n_x
                total += area * o.module.weight.numel()
    return total


# ---------------------------------------------------------------- one chunk of patches
def step(s, p: Patch, ses: Session, b, wid) -> Patch:
    """Recompute stage ``s`` on its placed block for items (image ``b``, window ``wid``)."""
    if isinstance(s, Pointwise):
        return Patch(s.module(p.values), p.y, p.x)
    if isinstance(s, Spatial):
        pl = ses.place[s]
        (ky, kx), (sy, sx) = s.extent, s.stride
        y, x = pl.y[wid], pl.x[wid]
        c = crop(ses.padded[s], b, y * sy, x * sx, (pl.h - 1) * sy + ky, (pl.w - 1) * sx + kx, p, s.padding)
        return Patch(s.on_crop(c), y, x)
    pl = ses.place[s]
    main = p
    for o in s.branch:
        main = step(o, main, ses, b, wid)
    if s.shortcut:
        short = p
        for o in s.shortcut:
            short = step(o, short, ses, b, wid)
        short = short.values
    else:
        short = crop(ses.padded[s], b, pl.y[wid], pl.x[wid], pl.h, pl.w, p)
    out = Patch(main.values + short, main.y, main.x)
    for o in s.post:
        out = step(o, out, ses, b, wid)
    return out


def materialize(ses: Session, i: int, b, p: Patch) -> torch.Tensor:
    """Full activation (N, C, H, W): cached input of top-level stage ``i`` with ``p`` spliced in.

    A plain copy of the cached maps plus a scatter of the patch area only (much cheaper than a gather of the
    whole map); patches always lie inside the map.
    """
    out = ses.inputs[i].index_select(0, b)
    n, ph, pw = p.values.shape[0], p.values.shape[2], p.values.shape[3]
    rows = (p.y[:, None] + torch.arange(ph, device=out.device))[:, :, None]
    cols = (p.x[:, None] + torch.arange(pw, device=out.device))[:, None, :]
    items = torch.arange(n, device=out.device)[:, None, None]
    out.permute(0, 2, 3, 1)[items, rows, cols] = p.values.permute(0, 2, 3, 1)
    return out
