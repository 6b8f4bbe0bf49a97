"""``fw.Occlusion``: slide a patch over one image and see where it hurts the target (Zeiler & Fergus 2014).

Knobs (synced traits named like ``fw.occlusion``'s parameters): ``size``, ``stride``, ``fill``, ``mode`` and
``target``. The target selector picks a class whose *probability* is measured (-1: the predicted class, the
engine's default); a target object given in Python (``fw.Neuron(...)``, ``fw.Logit(3) - fw.Logit(5)``) is
used as is. Coarse to fine: every request first computes the map at a stride twice as large (about a quarter
of the windows) and publishes it as a partial result, then the full map. The result carries the per-window
grid, the window positions, the unoccluded target value and the fill image, so hovering a location in the
browser shows the occluded image and the target's value there without asking Python. Colormap,
normalization, sign and opacity are applied in the browser.
"""
from __future__ import annotations

import numpy as np
import torch
import traitlets as t

from ..engine import FeatwidgetError
from ..engine.occlusion import FILLS, occlusion_grid
from ..engine.occlusion.fill import fill_image
from . import render
from ._base import (HeatmapView, adopt, from_payload, image_payload, split_target, static_file, tensor_payload,
                    fill_predictions)
from .attribution import signed

COARSE_SHARE = 0.2  # the coarse pass evaluates about a quarter of the windows


class Occlusion(HeatmapView):
    _esm = static_file("occlusion.js")
    compute_traits = t.List(t.Unicode(), default_value=["size", "stride", "fill", "mode", "target"]).tag(sync=True)

    size = t.Int(16).tag(sync=True)                   # patch side in pixels
    stride = t.Int(8).tag(sync=True)                  # at most `size` (clamped)
    max_size = t.Int(32).tag(sync=True)               # the size slider's range
    fill = t.Unicode("gray").tag(sync=True)
    fills = t.List(t.Unicode(), default_value=list(FILLS)).tag(sync=True)
    mode = t.Unicode("exact").tag(sync=True)          # "exact" | "approximate"
    target = t.Int(-1).tag(sync=True)                 # a class whose probability is measured; -1: predicted
    target_label = t.Unicode("").tag(sync=True)       # shown for a custom target object
    classes = t.List(t.Unicode()).tag(sync=True)
    predictions = t.List(t.Dict()).tag(sync=True)     # top-5 [{index, label, prob}]
    input_image = t.Dict().tag(sync=True)

    def __init__(self, net, image, size: int | None = None, stride: int | None = None, fill: str = "gray",
                 target=None, mode: str = "exact", **kwargs):
        network, x, hint = adopt(net, image)
        side = min(x.shape[2:])
        size = int(size) if size is not None else max(2, min(16, side // 4))
        stride = int(stride) if stride is not None else max(1, size // 2)
        index, custom = split_target(target)
        super().__init__(size=size, stride=stride, fill=fill, mode=mode, target=index, max_size=max(2, side // 2),
                         classes=list(network.classes), target_label=repr(custom) if custom is not None else "",
                         hint=hint, **kwargs)
        self.net, self.x, self._custom = network, x, custom
        self.input_image = image_payload(x[0])
        self.request()

    def _target(self):
        if self.target >= 0:
            from ..engine import Prob
            return Prob(self.target)
        return self._custom  # None: the predicted class's probability

    def _label(self, resolved) -> str:
        if self._custom is not None:
            return repr(self._custom)
        c = int(torch.as_tensor(resolved.c).reshape(-1)[0])
        name = self.classes[c] if c < len(self.classes) else str(c)
        return f"probability of {name}"

    def _payload(self, g, size, stride) -> dict:
        h, w = self.x.shape[2:]
        return {"map": tensor_payload(g.to_map((h, w))[0, 0]), "grid": tensor_payload(g.drop[0]),
                "ys": g.ys.tolist(), "xs": g.xs.tolist(), "size": size, "stride": stride,
                "value": float(g.value[0]), "target": self._label(g.target), "mode": self.mode}

    def compute(self, progress) -> dict:
        fill_predictions(self)
        size = self.size
        stride = max(1, min(self.stride, size))
        if self.fill not in FILLS:
            raise FeatwidgetError(f"Unknown fill {self.fill!r}; choose one of {', '.join(FILLS)}.")
        target = self._target()
        kw = dict(fill=self.fill, mode=self.mode)
        fill_img = image_payload(fill_image(self.x, self.fill, (size, size))[0])
        seq, share = self.running_seq, 0.0
        coarse = min(size, 2 * stride)
        if coarse > stride:
            g = occlusion_grid(self.net, self.x, target, size, coarse,
                               progress=lambda f, p: progress(COARSE_SHARE * f), **kw)
            # published whatever the partial-rate limit: the rough map must appear before the full one
            self._publish(seq, {**self._payload(g, size, coarse), "fill_image": fill_img, "coarse": True,
                                "partial": True}, final=False, fraction=COARSE_SHARE)
            share = COARSE_SHARE
        g = occlusion_grid(self.net, self.x, target, size, stride,
                           progress=lambda f, p: progress(share + (1 - share) * f), **kw)
        return {**self._payload(g, size, stride), "fill_image": fill_img, "coarse": False}

    def render(self) -> np.ndarray:
        img = render.image_rgb(from_payload(self.input_image))
        heat = signed(from_payload(self.result["map"]), self.sign)
        rgb = render.colorize(render.rescale(heat, *render.value_range(heat, self.normalization, self.percentile)),
                              self.colormap)
        H, W = img.shape[:2]
        k = max(1, round(256 / H))
        return render.overlay(render.upscale(img, k), render.upscale(rgb, k), (0, 0, W * k, H * k), self.opacity)
