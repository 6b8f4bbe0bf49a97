"""``fw.Filters``: the filters of a convolution layer as a grid of small pictures (Zeiler & Fergus style).

A first layer with 3 input channels is shown in colour (each filter an RGB patch); deeper layers are shown
per input channel (``mode="channel"``, ``in_channel=k``) or averaged over input channels (``mode="mean"``)
through a colormap. Only the numbers for the chosen mode cross to the browser; colormap, normalization and
the per-filter/whole-layer scale are applied there.
"""
from __future__ import annotations

import numpy as np
import traitlets as t

from ..engine import FeatwidgetError, Network, filters
from ..engine.parameters import conv_layers
from . import render
from ._base import View, from_payload, static_file, tensor_payload

MODES = ("rgb", "mean", "channel")
PLAIN_HINT = (
    "Pass mean/std to fw.wrap: this is a plain nn.Module. Filters do not depend on normalization, but views "
    "that run the model do: fw.wrap(model, input_size=(C, H, W), mean=[...], std=[...], classes=[...]) "
    "(or preset='imagenet')."
)


class Filters(View):
    _esm = static_file("filters.js")
    compute_traits = t.List(t.Unicode(), default_value=["layer", "mode", "in_channel"]).tag(sync=True)

    layer = t.Unicode().tag(sync=True)                    # a conv layer name (see `layers`)
    layers = t.List(t.Unicode()).tag(sync=True)           # the conv layers, in forward order
    mode = t.Unicode("rgb").tag(sync=True)                # "rgb" | "mean" | "channel"
    in_channel = t.Int(0).tag(sync=True)                  # used by mode="channel"
    # display only (no Python round trip):
    selected = t.Int(0).tag(sync=True)                    # the enlarged filter
    colormap = t.Unicode("diverging").tag(sync=True)
    normalization = t.Unicode("symmetric").tag(sync=True)
    percentile = t.Float(99.0).tag(sync=True)
    per_filter = t.Bool(False).tag(sync=True)             # scale each filter on its own, else the whole layer

    def __init__(self, net, layer: str | None = None, mode: str | None = None, in_channel: int = 0, **kwargs):
        # Filters are weights: no forward pass, so a plain module needs no input size here.
        modules = conv_layers(net)
        if not modules:
            raise FeatwidgetError("This network has no Conv2d layer, so there are no filters to show.")
        convs = list(modules)
        hint = "" if isinstance(net, Network) else PLAIN_HINT
        name = convs[0] if layer is None else layer
        if mode is None:
            first = modules.get(name)
            mode = "rgb" if first is not None and first.weight.shape[1] == 3 else "mean"
        super().__init__(layer=name, layers=convs, mode=mode, in_channel=in_channel, hint=hint, **kwargs)
        self.net = net
        self.request()

    def compute(self, progress) -> dict:
        if self.mode not in MODES:
            raise FeatwidgetError(f"Unknown mode {self.mode!r}; use one of {', '.join(MODES)}.")
        w = filters(self.net, self.layer)  # raises for unknown / non-conv layers, with the list of conv layers
        n_in = w.shape[1]
        note, shown = "", self.mode
        if self.mode == "rgb" and n_in != 3:
            note = f"'rgb' needs 3 input channels; {self.layer} has {n_in}, so the mean over them is shown."
            shown = "mean"
        if shown == "rgb":
            picture = w
        elif shown == "mean":
            picture = w.mean(1, keepdim=True)
        else:
            k = min(max(int(self.in_channel), 0), n_in - 1)
            if k != self.in_channel:
                note = f"in_channel={self.in_channel} is out of range 0..{n_in - 1}; input channel {k} is shown."
            picture = w[:, k:k + 1]
        progress(1.0)
        return {
            "layer": self.layer,
            "weights": tensor_payload(picture),
            "shown": shown,
            "in_channels": int(n_in),
            "note": note,
            "min": float(w.min()),
            "max": float(w.max()),
        }

    def render(self) -> np.ndarray:
        w = from_payload(self.result["weights"]).astype(np.float64)  # (O, c, kh, kw)
        o, c, kh, kw = w.shape
        flat = w.reshape(o, -1)
        ranges = (render.value_ranges(flat, self.normalization, self.percentile) if self.per_filter
                  else np.tile(render.value_range(flat, self.normalization, self.percentile), (o, 1)))
        v = np.clip((w - ranges[:, 0, None, None, None]) / (ranges[:, 1] - ranges[:, 0])[:, None, None, None], 0, 1)
        cells = (np.round(np.moveaxis(v, 1, -1) * 255).astype(np.uint8) if c == 3
                 else render.colorize(v[:, 0], self.colormap))
        k = max(1, 24 // max(kh, kw))
        cells = cells.repeat(k, axis=1).repeat(k, axis=2)
        return render.grid(cells)

