"""``fw.Adversarial``: a perturbation too small to see that changes the prediction.

Epsilon and steps sliders (and the norm, and an optional target class); the original, the adversarial image
and the difference amplified to be visible side by side, with the top-5 predictions before and after and the
predicted class at every step.
"""
from __future__ import annotations

import numpy as np
import traitlets as t

from ..engine import FeatwidgetError, synthesis
from . import render
from ._base import View, adopt, from_payload, image_payload, static_file, tensor_payload


class Adversarial(View):
    _esm = static_file("adversarial.js")
    compute_traits = t.List(t.Unicode(), default_value=["epsilon", "steps", "norm", "target_class"]).tag(sync=True)

    epsilon = t.Float(8 / 255).tag(sync=True)
    steps = t.Int(15).tag(sync=True)
    norm = t.Unicode("linf").tag(sync=True)
    target_class = t.Int(-1).tag(sync=True)      # -1: untargeted (move away from the predicted class)
    classes = t.List(t.Unicode()).tag(sync=True)
    input_image = t.Dict().tag(sync=True)
    before = t.List(t.Dict()).tag(sync=True)     # top-5 of the original [{index, label, prob}]
    amplify = t.Float(10.0).tag(sync=True)       # display only: how much the difference is magnified

    def __init__(self, net, image, epsilon: float = 8 / 255, steps: int = 15, **kwargs):
        network, x, hint = adopt(net, image)
        if len(network.output_shape) != 1:
            raise FeatwidgetError("Adversarial examples need a classifier (one score per class).")
        super().__init__(epsilon=epsilon, steps=steps, classes=list(network.classes), hint=hint, **kwargs)
        self.net, self.x = network, x
        self.input_image = image_payload(x[0])
        self.before = _top(network, x)
        self.request()

    def compute(self, progress) -> dict:
        target = None if self.target_class < 0 else self.target_class
        r = synthesis.adversarial(self.net, self.x, target_class=target, steps=self.steps, epsilon=self.epsilon,
                                  norm=self.norm, progress=lambda f, p: progress(f, None))
        names = self.net.classes
        return {
            "adversarial": image_payload(r.images[0]),
            "delta": tensor_payload(r.delta[0]),
            "epsilon": float(self.epsilon),
            "after": _top(self.net, r.images),
            "trajectory": [{"class": int(c), "label": names[int(c)], "prob": float(p)}
                           for c, p in zip(r.classes[:, 0], r.probability[:, 0])],
            "fooled": bool(r.fooled[0]),
            "linf": float(r.delta.abs().max()), "l2": float(r.delta.flatten(1).norm(dim=1)[0]),
        }

    def render(self) -> np.ndarray:
        a = render.image_rgb(from_payload(self.input_image))
        b = render.image_rgb(from_payload(self.result["adversarial"]))
        d = from_payload(self.result["delta"]).astype(np.float64)
        diff = render.image_rgb(np.clip(0.5 + d * self.amplify, 0, 1))
        k = max(1, round(128 / a.shape[0]))
        return render.grid(np.stack([render.upscale(p, k) for p in (a, b, diff)]))


def _top(net, x, k: int = 5) -> list:
    return [{"index": i, "label": label, "prob": p} for i, label, p in net.predict(x, k=k)[0]]
