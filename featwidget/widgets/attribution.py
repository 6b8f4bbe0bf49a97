"""``fw.Attribution``: which pixels a backward method says the target depends on, for one image.

Every method of ``featwidget.engine.backward`` is one choice of the ``method`` trait; its knobs (SmoothGrad
sigma and samples, IG steps and baseline, the Grad-CAM layer, the LRP rule and epsilon) are traits named like
the engine parameters. The map is reduced to one signed value per pixel (the sum over colour channels) and
sent as floats: sign (positive / negative / absolute / all), colormap, normalization, percentile clip and
opacity are applied in the browser. SmoothGrad and IG stream their running mean (a first picture after the
first chunk). ``compare=True`` computes every method for the same image, shown side by side with a shared or
a per-panel colour scale.
"""
from __future__ import annotations

import numpy as np
import torch
import traitlets as t

import featwidget.engine.backward as backward
from ..engine import FeatwidgetError
from . import render
from ._base import (HeatmapView, adopt, from_payload, image_payload, split_target, static_file, tensor_payload,
                    fill_predictions)

METHODS = ["gradient", "saliency", "input_x_gradient", "deconvnet", "guided", "smoothgrad",
           "integrated_gradients", "cam", "grad_cam", "guided_grad_cam", "lrp"]
SMOOTH_METHODS = ["gradient", "saliency", "input_x_gradient", "deconvnet", "guided"]
BASELINES = ["black", "white", "blur"]
LRP_RULES = ["epsilon", "gamma", "alpha_beta"]
SIGNS = ["all", "positive", "negative", "absolute"]


class Attribution(HeatmapView):
    _esm = static_file("attribution.js")
    compute_traits = t.List(t.Unicode(), default_value=[
        "method", "target", "sigma", "samples", "smooth_method", "steps", "baseline", "layer", "lrp_rule",
        "epsilon", "compare"]).tag(sync=True)

    method = t.Unicode("guided").tag(sync=True)           # one of `methods`
    methods = t.List(t.Unicode(), default_value=METHODS).tag(sync=True)
    target = t.Int(-1).tag(sync=True)                     # a class index; -1: the predicted class (or `target=`)
    target_label = t.Unicode("").tag(sync=True)           # shown for a custom target object
    classes = t.List(t.Unicode()).tag(sync=True)
    predictions = t.List(t.Dict()).tag(sync=True)         # top-5 [{index, label, prob}]
    sigma = t.Float(0.15).tag(sync=True)                  # SmoothGrad noise, fraction of the value range
    samples = t.Int(50).tag(sync=True)
    smooth_method = t.Unicode("gradient").tag(sync=True)  # the method SmoothGrad averages
    steps = t.Int(50).tag(sync=True)                      # integrated gradients
    baseline = t.Unicode("black").tag(sync=True)
    layer = t.Unicode("").tag(sync=True)                  # Grad-CAM layer ("" = last convolutional map)
    layers = t.List(t.Unicode()).tag(sync=True)           # layers with channel maps, in forward order
    lrp_rule = t.Unicode("epsilon").tag(sync=True)
    epsilon = t.Float(1e-6).tag(sync=True)
    compare = t.Bool(False).tag(sync=True)                # every method side by side
    input_image = t.Dict().tag(sync=True)
    # display only (applied in the browser), besides HeatmapView's:
    opacity = t.Float(0.7).tag(sync=True)
    shared_scale = t.Bool(False).tag(sync=True)           # compare mode: one colour scale for all panels

    def __init__(self, net, image, method: str = "guided", target=None, **kwargs):
        network, x, hint = adopt(net, image)
        layers = [l.name for l in network.layers if len(l.out_shape) == 3]
        index, custom = split_target(target)
        if not kwargs.get("layer"):
            try:
                kwargs["layer"] = backward.default_layer(network)
            except FeatwidgetError:
                kwargs["layer"] = layers[-1] if layers else ""
        super().__init__(method=method, target=index, layers=layers, classes=list(network.classes),
                         target_label=repr(custom) if custom is not None else "", hint=hint, **kwargs)
        self.net, self.x, self._custom = network, x, custom
        self.input_image = image_payload(x[0])
        self.request()

    # ------------------------------------------------------------------ engine calls
    def _target(self):
        if self.target >= 0:
            return self.target
        return self._custom  # None: the predicted class

    def attribution(self, method: str, progress=None) -> torch.Tensor:
        """The (1, C or 1, H, W) map of ``method`` with the view's current knobs."""
        net, x, target = self.net, self.x, self._target()
        if method == "smoothgrad":
            return backward.smoothgrad(net, x, target, sigma=self.sigma, samples=self.samples,
                                       method=self.smooth_method, seed=0, progress=progress)
        if method == "integrated_gradients":
            return backward.integrated_gradients(net, x, target, baseline=self.baseline, steps=self.steps,
                                                 progress=progress)
        if method in ("grad_cam", "guided_grad_cam"):
            fn = backward.grad_cam if method == "grad_cam" else backward.guided_grad_cam
            return fn(net, x, target, layer=self.layer or None)
        if method == "lrp":
            return backward.lrp(net, x, target, rule=self.lrp_rule, epsilon=self.epsilon)
        simple = {"gradient": backward.gradient, "saliency": backward.saliency, "cam": backward.cam,
                  "input_x_gradient": backward.input_x_gradient, "deconvnet": backward.deconvnet,
                  "guided": backward.guided_backprop}
        if method not in simple:
            raise FeatwidgetError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
        return simple[method](net, x, target)

    def compute(self, progress) -> dict:
        fill_predictions(self)
        if not self.compare:
            heat = self.attribution(self.method, progress)
            return {"method": self.method, "map": tensor_payload(to_map(heat))}
        maps, errors = [], []
        for i, m in enumerate(METHODS):
            def sub(fraction, partial=None, i=i):  # a method's own progress is a slice of the whole
                return progress((i + fraction) / len(METHODS))
            try:
                maps.append(to_map(self.attribution(m, sub)))
                errors.append("")
            except FeatwidgetError as e:  # e.g. CAM on a network without a GAP + linear head
                maps.append(torch.full(self.x.shape[2:], float("nan")))
                errors.append(str(e))
            progress((i + 1) / len(METHODS))
        return {"method": "compare", "methods": METHODS, "errors": errors,
                "maps": tensor_payload(torch.stack(maps))}

    def partial_result(self, partial):
        if isinstance(partial, torch.Tensor) and not self.compare:
            return {"method": self.method, "map": tensor_payload(to_map(partial))}
        return None

    # ------------------------------------------------------------------ headless
    def render(self) -> np.ndarray:
        img = render.image_rgb(from_payload(self.input_image))
        if "map" in self.result:
            heat = signed(from_payload(self.result["map"]), self.sign)
            rgb = render.colorize(render.rescale(heat, *render.value_range(heat, self.normalization,
                                                                           self.percentile)), self.colormap)
            H, W = img.shape[:2]
            k = max(1, round(256 / H))
            return render.overlay(render.upscale(img, k), render.upscale(rgb, k), (0, 0, W * k, H * k),
                                  self.opacity)
        maps = np.nan_to_num(signed(from_payload(self.result["maps"]), self.sign))
        flat = maps.reshape(len(maps), -1)
        ranges = render.value_ranges(flat, self.normalization, self.percentile)
        if self.shared_scale:
            ranges[:] = [ranges[:, 0].min(), ranges[:, 1].max()]
        cells = np.stack([render.colorize(render.rescale(m, lo, hi), self.colormap)
                          for m, (lo, hi) in zip(maps, ranges)])
        return render.grid(cells)


def to_map(heat: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) -> (H, W): the signed sum over colour channels."""
    return heat[0].detach().float().sum(0).cpu()


def signed(a: np.ndarray, sign: str) -> np.ndarray:
    if sign == "positive":
        return np.maximum(a, 0)
    if sign == "negative":
        return np.maximum(-a, 0)
    if sign == "absolute":
        return np.abs(a)
    return a
