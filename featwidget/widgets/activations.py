"""``fw.Activations``: the feature maps of one layer for one image.

The grid shows every channel map of the chosen layer; the channel slider enlarges one map over the input.
The overlay is placed by the layer's receptive-field geometry (unit (i, j) centred at offset + stride * (i, j)
in input pixels, drawn stride pixels wide), which is exact for the convolution/pooling chains of CNNs; it
falls back to stretching the map over the image only for layers with no known geometry.

All layers' activations come from one forward pass on the first request (``Network.activations`` caches
them), so moving the layer slider afterwards is a cache lookup, and the channel slider, colormap, opacity,
normalization and sorting are drawn in the browser from the maps already sent: no Python at all.
"""
from __future__ import annotations

import numpy as np
import torch
import traitlets as t

from ..engine import FeatwidgetError
from ..engine.receptive_field import all_receptive_fields
from . import render
from ._base import View, adopt, from_payload, image_payload, static_file, tensor_payload, fill_predictions


class Activations(View):
    _esm = static_file("activations.js")
    compute_traits = t.List(t.Unicode(), default_value=["layer"]).tag(sync=True)

    layer = t.Unicode().tag(sync=True)              # a layer name (see `layers`)
    layers = t.List(t.Unicode()).tag(sync=True)     # layers with channel maps (C, H, W), in forward order
    input_image = t.Dict().tag(sync=True)           # the image, uint8 (C, H, W), sent once per image
    predictions = t.List(t.Dict()).tag(sync=True)   # top-5 [{index, label, prob}]
    # display only (served from the maps in `result`, no Python round trip):
    channel = t.Int(0).tag(sync=True)
    colormap = t.Unicode("viridis").tag(sync=True)
    normalization = t.Unicode("minmax").tag(sync=True)
    percentile = t.Float(99.0).tag(sync=True)
    opacity = t.Float(0.6).tag(sync=True)
    sort = t.Bool(False).tag(sync=True)             # order the grid by mean activation, largest first

    def __init__(self, net, image, layer: str | None = None, channel: int | None = None, **kwargs):
        network, x, hint = adopt(net, image)
        spatial = [l.name for l in network.layers if len(l.out_shape) == 3]
        if not spatial:
            raise FeatwidgetError("This network has no layer with channel maps (C, H, W) to show.")
        convs = [n for n in network.conv_layers if n in spatial]
        super().__init__(layer=(convs or spatial)[0] if layer is None else layer, layers=spatial,
                         channel=0 if channel is None else int(channel), hint=hint, **kwargs)
        self.net = network
        self._fields = None  # every layer's geometry, from one dummy pass on the worker's first request
        self.set_image(x)

    def set_image(self, image) -> None:
        """Show another image (C, H, W) or (1, C, H, W) in [0, 1]; recomputes the maps."""
        x = torch.as_tensor(image)
        x = self.net.check((x.unsqueeze(0) if x.dim() == 3 else x).to(self.net.device))
        if x.shape[0] != 1:
            raise FeatwidgetError(f"Pass one image (C, H, W) or a batch of one; got a batch of {x.shape[0]}.")
        self.x = x
        self._warm = False
        self.input_image = image_payload(x[0])
        self.predictions = []
        self.request()

    def compute(self, progress) -> dict:
        name = self.layer
        shape = self.net.layer(name).out_shape  # unknown names raise with suggestions
        if len(shape) != 3:
            raise FeatwidgetError(
                f"Layer {name!r} outputs shape {tuple(shape)}, not channel maps (C, H, W); "
                f"pick one of view.layers, e.g. {', '.join(self.layers[-3:])}.")
        # First request for an image: every layer in one pass, so later layer changes are cache hits.
        acts = self.net.activations(self.x, self.layers if not self._warm else [name])
        self._warm = True
        progress(0.5)
        fill_predictions(self)
        maps = acts[name][0].detach().float()
        c = maps.shape[0]
        if self.channel >= c or self.channel < 0:
            self.channel = min(max(self.channel, 0), c - 1)
        if self._fields is None:
            self._fields = all_receptive_fields(self.net)
        rf = self._fields.get(name)
        return {
            "layer": name,
            "maps": tensor_payload(maps),
            "stats": {
                "mean": tensor_payload(maps.mean((1, 2))),
                "max": tensor_payload(maps.amax((1, 2))),
                "zeros": tensor_payload((maps == 0).float().mean((1, 2))),
            },
            "rf": None if rf is None else {"stride": list(rf.stride), "offset": list(rf.offset)},
        }

    def render(self) -> np.ndarray:
        """The input with the selected channel's map over it (as the main canvas), (H, W, 3) uint8."""
        maps = from_payload(self.result["maps"])
        img = render.image_rgb(from_payload(self.input_image))
        h, w = maps.shape[1:]
        H, W = img.shape[:2]
        m = maps[min(max(self.channel, 0), maps.shape[0] - 1)]
        heat = render.colorize(render.rescale(m, *render.value_range(m, self.normalization, self.percentile)),
                               self.colormap)
        k = max(1, round(256 / H))
        x0, y0, rw, rh = render.footprint(h, w, H, W, self.result.get("rf"))
        return render.overlay(render.upscale(img, k), heat, (x0 * k, y0 * k, rw * k, rh * k), self.opacity)
