"""``fw.Inversion``: what a layer keeps of an image -- its code inverted back to pixels (Mahendran & Vedaldi).

A layer slider picks the code; the reconstruction appears next to the original, updated while it converges,
with the normalized loss ``||phi(x') - phi(x)||^2 / ||phi(x)||^2`` per step.
"""
from __future__ import annotations

import numpy as np
import traitlets as t

from ..engine import FeatwidgetError, synthesis
from . import render
from ._base import View, adopt, from_payload, image_payload, static_file, tensor_payload


class Inversion(View):
    _esm = static_file("inversion.js")
    compute_traits = t.List(t.Unicode(), default_value=["layer", "steps", "tv", "alpha"]).tag(sync=True)

    layer = t.Unicode().tag(sync=True)
    layers = t.List(t.Unicode()).tag(sync=True)
    steps = t.Int(150).tag(sync=True)
    tv = t.Float(0.5).tag(sync=True)       # weight of the total-variation prior
    alpha = t.Float(1e-4).tag(sync=True)   # weight of the alpha-norm prior (alpha = 6)
    input_image = t.Dict().tag(sync=True)

    def __init__(self, net, image, layer: str | None = None, seed: int | None = 0, **kwargs):
        network, x, hint = adopt(net, image)
        names = [l.name for l in network.layers if len(l.out_shape) in (1, 3)]
        if not names:
            raise FeatwidgetError("This network has no layer to invert.")
        convs = [n for n in names if n in network.conv_layers]
        super().__init__(layer=layer or (convs[len(convs) // 2] if convs else names[0]), layers=names, hint=hint,
                         **kwargs)
        self.net, self.x, self.seed = network, x, seed
        self.input_image = image_payload(x[0])
        self.request()

    def compute(self, progress) -> dict:
        def partial(fraction, p):
            return progress(fraction, None if p is None else {**p, "loss": -p["objective"]})

        r = synthesis.invert(self.net, self.x, self.layer, steps=self.steps, tv=self.tv, alpha=self.alpha,
                             progress=partial, seed=self.seed)
        loss = r.loss.mean(1)
        return self.partial_result({"image": r.images, "loss": loss, "step": self.steps, "steps": self.steps})

    def partial_result(self, p):
        return {"layer": self.layer, "reconstruction": image_payload(p["image"][0]),
                "loss": tensor_payload(p["loss"].float()), "step": int(p["step"]), "steps": int(p["steps"])}

    def render(self) -> np.ndarray:
        a = render.image_rgb(from_payload(self.input_image))
        b = render.image_rgb(from_payload(self.result["reconstruction"]))
        k = max(1, round(128 / a.shape[0]))
        return render.grid(np.stack([render.upscale(a, k), render.upscale(b, k)]))
