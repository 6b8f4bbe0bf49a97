"""``fw.FeatureVis``: activation maximization you can steer while it runs.

Start / stop / reset; the picture (a batch of facets side by side) and the objective curve update every few
steps. Every regularizer weight, transform, the parameterization and the learning rate are *live*: the view
holds one ``fw.synthesis.Settings`` object that ``fw.maximize`` re-reads at every step, and a slider writes
into it, so moving the total-variation slider changes the next step without restarting the run. Changing the
objective (layer, channel, class, objective kind, batch, diversity) starts a new run.
"""
from __future__ import annotations

import numpy as np
import torch
import traitlets as t

from ..engine import Cancelled, FeatwidgetError, synthesis
from ..engine.synthesis import Settings
from ..engine.targets import Channel, LayerNorm, Logit, LogProb, Neuron, Prob
from . import render
from ._base import View, adopt, from_payload, image_payload, static_file, tensor_payload

OBJECTIVES = ("channel", "neuron", "layer", "logit", "prob", "logprob")
# live knobs: trait name -> default; each maps 1:1 to Settings.set(name, value)
LIVE = {"lr": 0.05, "param": "fourier", "decorrelate": True, "noise": 0.0,
        "l2": 0.0, "alpha": 0.0, "tv": 0.0, "edge": 0.0, "blur": 0.0, "grad_blur": 0.0, "clip": 0.0,
        "pad": 4, "jitter": 3, "scale": 0.1, "rotate": 10.0}


class FeatureVis(View):
    _esm = static_file("featurevis.js")
    compute_traits = t.List(t.Unicode(), default_value=[
        "layer", "channel", "objective", "class_index", "batch", "diversity", "size", "steps"]).tag(sync=True)

    # what to maximize (a change starts a new run)
    layer = t.Unicode().tag(sync=True)
    layers = t.List(t.Unicode()).tag(sync=True)
    channels = t.List(t.Int()).tag(sync=True)          # number of channels of each layer in `layers`
    channel = t.Int(0).tag(sync=True)
    objective = t.Unicode("channel").tag(sync=True)     # one of OBJECTIVES
    class_index = t.Int(0).tag(sync=True)
    classes = t.List(t.Unicode()).tag(sync=True)
    batch = t.Int(1).tag(sync=True)                     # facets side by side
    diversity = t.Float(0.0).tag(sync=True)             # weight of fw.Diversity(layer) when batch > 1
    size = t.Int(64).tag(sync=True)
    steps = t.Int(512).tag(sync=True)
    # live knobs (read by the running optimization at its next step)
    lr = t.Float(LIVE["lr"]).tag(sync=True)
    param = t.Unicode(LIVE["param"]).tag(sync=True)
    decorrelate = t.Bool(LIVE["decorrelate"]).tag(sync=True)
    noise = t.Float(LIVE["noise"]).tag(sync=True)
    l2 = t.Float(0.0).tag(sync=True)
    alpha = t.Float(0.0).tag(sync=True)
    tv = t.Float(0.0).tag(sync=True)
    edge = t.Float(0.0).tag(sync=True)
    blur = t.Float(0.0).tag(sync=True)
    grad_blur = t.Float(0.0).tag(sync=True)
    clip = t.Float(0.0).tag(sync=True)
    pad = t.Int(LIVE["pad"]).tag(sync=True)
    jitter = t.Int(LIVE["jitter"]).tag(sync=True)
    scale = t.Float(LIVE["scale"]).tag(sync=True)
    rotate = t.Float(LIVE["rotate"]).tag(sync=True)
    params = t.List(t.Unicode(), default_value=list(synthesis.PARAMS)).tag(sync=True)
    objectives = t.List(t.Unicode(), default_value=list(OBJECTIVES)).tag(sync=True)

    def __init__(self, net, layer: str | None = None, channel: int | None = None, objective: str = "channel",
                 batch: int = 1, size: int | None = None, start: bool = True, seed: int | None = None, **kwargs):
        network, _, hint = adopt(net, None) if not isinstance(net, torch.nn.Module) else adopt(
            net, torch.zeros(1, 3, size or 224, size or 224))
        spatial = [l for l in network.layers if len(l.out_shape) in (1, 3)]
        if not spatial:
            raise FeatwidgetError("This network has no layer to visualize.")
        names = [l.name for l in spatial]
        maps = [l.name for l in spatial if len(l.out_shape) == 3 and l.out_shape[1] * l.out_shape[2] > 1]
        default = maps[-1] if maps else names[-1]
        knobs = {k: kwargs.pop(k) for k in list(kwargs) if k in LIVE}
        super().__init__(layer=default if layer is None else layer, layers=names,
                         channels=[int(l.out_shape[0]) for l in spatial], channel=int(channel or 0),
                         objective=objective, batch=int(batch), size=int(size or network.input_size[-1]),
                         classes=list(network.classes), hint=hint, **kwargs)
        self.net = network
        self.seed = seed
        self.settings = Settings(preview_every=4)
        for k in LIVE:
            setattr(self, k, knobs.get(k, getattr(self, k)))
            self._apply(k)
        self.observe(self._on_live, names=list(LIVE))
        self._stop_requested = 0
        self._last = None
        self.on_msg(self._on_message)
        if start:
            self.start()

    # ------------------------------------------------------------------ controls
    def start(self) -> int:
        """Start a new run (restarting a running one)."""
        return self.request()

    def stop(self) -> None:
        """Stop the running optimization after its current step; the picture so far stays."""
        self._stop_requested = self.running_seq

    def reset(self) -> None:
        """Stop, clear the picture and curve, and put every live knob back to its default."""
        self._stop_requested = self.running_seq
        self.wait(30)
        for k, v in LIVE.items():
            setattr(self, k, v)
        with self.hold_sync():
            self.result = {}
            self.result_seq = -1
            self.status = "idle"

    def _on_message(self, _, content, buffers):
        action = content.get("action") if isinstance(content, dict) else None
        if action in ("start", "stop", "reset"):
            getattr(self, action)()

    def _on_live(self, change):
        self._apply(change["name"])

    def _apply(self, name):
        try:
            self.settings.set(name, getattr(self, name))
        except FeatwidgetError as e:  # a bad value is refused; the run goes on with the previous one
            with self.hold_sync():
                self.error = str(e)
                self.status = "error"

    # ------------------------------------------------------------------ work
    def target(self):
        kind, layer = self.objective, self.layer
        if kind not in OBJECTIVES:
            raise FeatwidgetError(f"Unknown objective {kind!r}; use one of {', '.join(OBJECTIVES)}.")
        if kind in ("logit", "prob", "logprob"):
            return {"logit": Logit, "prob": Prob, "logprob": LogProb}[kind](self.class_index)
        if kind == "layer":
            base = LayerNorm(layer)
        else:
            base = (Channel if kind == "channel" else Neuron)(layer, self.channel)
        if self.batch > 1 and self.diversity > 0 and len(self.net.layer(layer).out_shape) == 3:
            return base + self.diversity * synthesis.Diversity(layer)
        return base

    def compute(self, progress) -> dict:
        seq = self.running_seq
        target = self.target()
        self._last = None

        def live(fraction, partial):
            if partial is not None:
                self._last = partial
            if self._stop_requested == seq:
                return False
            return progress(fraction, partial)

        try:
            r = synthesis.maximize(self.net, target, steps=self.steps, size=self.size, batch=self.batch,
                                   settings=self.settings, progress=live, seed=self.seed)
        except Cancelled:
            if self._stop_requested == seq and self._last is not None:
                return {**self.partial_result(self._last), "stopped": True}
            raise
        return self.partial_result({"step": r.steps, "steps": r.steps, "image": r.images,
                                    "objective": r.objective.mean(1)})

    def partial_result(self, partial):
        return {
            "images": image_payload(partial["image"]),
            "objective": tensor_payload(partial["objective"].float()),
            "step": int(partial["step"]),
            "steps": int(partial["steps"]),
            "target": repr(self.target()),
        }

    def render(self) -> np.ndarray:
        imgs = from_payload(self.result["images"])
        cells = np.stack([render.image_rgb(im) for im in imgs])
        k = max(1, round(128 / cells.shape[1]))
        return render.grid(np.stack([render.upscale(c, k) for c in cells]))
