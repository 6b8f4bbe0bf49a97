"""Occlusion: slide a patch over the image and measure how much the target drops (Zeiler & Fergus 2014).

``fw.occlusion`` returns the pixel map, ``fw.occlusion_grid`` the raw per-window drops with the window
positions. Exact mode uses incremental inference (``incremental``), which gives the same numbers as running
every occluded image through the network, only faster; ``mode="approximate"`` adds Krypton's projective-field
threshold and adaptive drill-down (``approximate``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import FeatwidgetError
from ..network import as_network
from ..progress import report
from ..safety import preserved
from . import approximate
from .evaluate import Occluder
from .fill import FILLS, fill_image
from .patches import to_map, windows

MODES = ("exact", "approximate")


@dataclass
class OcclusionGrid:
    drop: torch.Tensor    # (B, nY, nX): unoccluded target value minus occluded value, per window
    value: torch.Tensor   # (B,): the unoccluded target value
    ys: torch.Tensor      # (nY,) window start rows
    xs: torch.Tensor      # (nX,) window start columns
    size: tuple           # (h, w)
    stride: tuple         # (h, w)
    target: object        # the resolved target (e.g. fw.Prob of the predicted classes)
    exact: torch.Tensor   # (nY, nX) bool: computed exactly (False: interpolated in approximate mode)

    def to_map(self, shape) -> torch.Tensor:
        return to_map(self.drop, self.ys, self.xs, self.size, shape)


def occlusion(net, x, target=None, size=16, stride=8, fill="gray", batch_size=None, mode="exact", progress=None,
              tau: float = approximate.TAU, refine: float = approximate.REFINE) -> torch.Tensor:
    """Occlusion sensitivity map (B, 1, H, W): the drop of ``target`` when a patch covers each pixel, averaged
    over the windows that cover it (positive = the patch hurt the target, so the region mattered).

    ``target=None`` means the *probability* of the class predicted for each unoccluded image (``fw.Prob``),
    unlike gradient methods where it means the predicted logit: a probability drop is bounded and comparable
    across images, as in Zeiler & Fergus. Any target works: ``fw.Logit(c)``, a hidden unit
    ``fw.Neuron("layer", k)``, a difference ``fw.Logit(3) - fw.Logit(5)``. ``fw.Predicted()`` pins the logit of
    the class predicted for the unoccluded image.

    ``size`` and ``stride`` are ints or (h, w); windows start at 0, stride, 2*stride, ... plus one flush with the
    far border when the stride does not divide (every pixel is covered). ``fill``: "gray", "zero", "mean",
    "random", "blur", a number or a colour tensor (C,), see ``fill``. ``batch_size``: occluded images per chunk.
    ``mode``: "exact" (incremental inference, equal to one forward pass per occluded image) or "approximate"
    (projective-field threshold ``tau`` and adaptive drill-down refining a fraction ``refine``).
    ``progress(fraction, partial_map)`` is called after every chunk; returning False cancels (fw.Cancelled).
    """
    net = as_network(net, x)
    x = net.check(x)
    shape = tuple(x.shape[2:])

    def partial(fraction, grid):
        return progress(fraction, grid.to_map(shape))

    g = occlusion_grid(net, x, target, size, stride, fill, batch_size, mode, None if progress is None else partial,
                       tau=tau, refine=refine)
    return g.to_map(shape)


def occlusion_grid(net, x, target=None, size=16, stride=8, fill="gray", batch_size=None, mode="exact",
                   progress=None, tau: float = approximate.TAU, refine: float = approximate.REFINE) -> OcclusionGrid:
    """Same arguments as ``occlusion``; returns the per-window drops. ``progress(fraction, partial_grid)`` gets
    an ``OcclusionGrid`` whose not-yet-computed windows are NaN (interpolated estimates in approximate mode)."""
    net = as_network(net, x)
    x = net.check(x)
    if mode not in MODES:
        raise FeatwidgetError(f"Unknown mode {mode!r}; use 'exact' or 'approximate'.")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise FeatwidgetError(f"batch_size must be a positive int (occluded images per chunk), got {batch_size!r}.")
    if mode == "approximate":
        if not (0 < float(tau) <= 1):
            raise FeatwidgetError(f"tau must be in (0, 1] (fraction of a map a region may grow to), got {tau!r}.")
        if not (0 <= float(refine) <= 1):
            raise FeatwidgetError(f"refine must be in [0, 1] (fraction of windows refined), got {refine!r}.")
    b, _, h, w = x.shape
    ys, xs, ksize, kstride = windows(h, w, size, stride)
    wy = ys.repeat_interleave(len(xs)).to(x.device)
    wx = xs.repeat(len(ys)).to(x.device)
    fill_img = fill_image(x, fill, ksize)
    n_y, n_x = len(ys), len(xs)
    with preserved(net.module), torch.no_grad():
        occ = Occluder(net, x, fill_img, target, ksize, wy, wx, tau=tau if mode == "approximate" else None)
        grid = torch.full((b, n_y, n_x), float("nan"), device=x.device)
        done = torch.zeros(n_y, n_x, dtype=torch.bool, device=x.device)
        total = n_y * n_x if mode == "exact" else approximate.planned(n_y, n_x, refine)
        per_chunk = max(1, (batch_size or occ.items) // b)
        count = [0]

        def result():
            return OcclusionGrid(grid, occ.value, ys, xs, ksize, kstride, occ.target, done.clone())

        def evaluate(wid: torch.Tensor) -> None:
            for lo in range(0, len(wid), per_chunk):
                ids = wid[lo:lo + per_chunk].to(x.device)
                grid.view(b, -1)[:, ids] = occ.drops(ids).T
                done.view(-1)[ids] = True
                count[0] += len(ids)
                if progress is not None:
                    report(progress, count[0] / total, result())

        if mode == "exact":
            evaluate(torch.arange(n_y * n_x))
        else:
            approximate.drill_down(evaluate, grid, done, float(refine),
                                   None if progress is None else lambda: report(progress, count[0] / total, result()))
    return result()


__all__ = ["occlusion", "occlusion_grid", "OcclusionGrid", "FILLS"]
