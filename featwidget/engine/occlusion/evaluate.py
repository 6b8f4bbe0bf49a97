"""Evaluate the target on batches of occluded images, incrementally where the network allows it."""
from __future__ import annotations

import torch

from ..errors import FeatwidgetError
from ..targets import Logit, Predicted, Prob, Target, as_target
from . import incremental as inc
from .chain import chain_of

DEFAULT_ITEMS = 64          # occluded images per chunk when the trunk is followed incrementally
DEFAULT_ITEMS_PLAIN = 16    # ... and when every occluded image runs through the whole network


def resolve_target(target, logits: torch.Tensor | None) -> Target:
    """``None``: probability of the class predicted for the *unoccluded* image (a classifier's usual reading);
    ``Predicted()`` likewise pins the class of the unoccluded prediction, so occlusion measures that class's drop."""
    if target is None or isinstance(target, Predicted):
        if logits is None or logits.dim() != 2:
            raise FeatwidgetError(
                "target=None means the predicted class's probability, which needs a classifier with (B, classes) "
                "output; pass a target such as fw.Channel('layer', 0) instead."
            )
        c = logits.argmax(1)
        return Prob(c) if target is None else Logit(c)
    return as_target(target)


def _evaluate_target(t: Target, out, acts: dict, n_images: int) -> torch.Tensor:
    """Items are window-major (item = window * B + image): evaluate with the batch of B images the target's
    per-image indices expect, vectorized over windows."""
    k = (out if out is not None else next(iter(acts.values()))).shape[0] // n_images

    def fold(a):
        return None if a is None else a.reshape(k, n_images, *a.shape[1:])

    try:
        vals = torch.func.vmap(lambda o, a: t.evaluate(o, a))(fold(out), {n: fold(a) for n, a in acts.items()})
    except FeatwidgetError:
        raise
    except Exception:  # a user-defined target vmap cannot trace (e.g. .item()): evaluate window by window
        vals = torch.stack([t.evaluate(None if out is None else out[j * n_images:(j + 1) * n_images],
                                       {n: a[j * n_images:(j + 1) * n_images] for n, a in acts.items()})
                            for j in range(k)])
    return vals.reshape(-1)


class Occluder:
    """Everything about one call that does not depend on which windows are evaluated."""

    def __init__(self, net, x, fill_img, target, size, wy, wx, tau=None, incremental=True):
        self.net, self.x, self.size, self._fill_px = net, x, size, fill_img
        self.n_images = x.shape[0]
        chain = chain_of(net)
        self.stages = chain.stages
        xn = net.normalize(x)
        self.fill_norm = net.normalize(fill_img)
        self.ses = inc.Session(tau=tau)
        logits = inc.clean(self.stages, xn, self.ses, top=True)
        self.target = resolve_target(target, logits)
        t = self.target
        self.capture = {n: chain.stage_of(n) for n in t.layers}
        self.plain = not chain.exact or not incremental or any(i is None for i in self.capture.values())
        if self.plain:
            out, acts = net.run(x, t.layers, output=t.needs_output)
            self.items = DEFAULT_ITEMS_PLAIN
        else:
            inc.plan(self.stages, self.ses, wy, wx, size)
            out = logits if t.needs_output else None
            acts = {n: self.ses.inputs[i + 1] for n, i in self.capture.items()}
            self.stop = len(self.stages) if t.needs_output else max(self.capture.values()) + 1
            self.items = DEFAULT_ITEMS
        self.value = _evaluate_target(t, out, acts, self.n_images)  # unoccluded target value (B,)
        self.wy, self.wx = wy, wx

    def drops(self, wid: torch.Tensor) -> torch.Tensor:
        """Target drop for windows ``wid`` (k,) on every image -> (k, B)."""
        bsz = self.n_images
        b = torch.arange(bsz, device=self.x.device).repeat(len(wid))
        w = wid.repeat_interleave(bsz)
        h, ww = self.size
        patch = inc.Patch(inc.crop(self.fill_norm, b, self.wy[w], self.wx[w], h, ww), self.wy[w], self.wx[w])
        t = self.target
        if self.plain:
            occluded = inc.crop(self.x, b, 0, 0, self.x.shape[2], self.x.shape[3],
                                inc.Patch(inc.crop(self._fill_px, b, self.wy[w], self.wx[w], h, ww),
                                          self.wy[w], self.wx[w]))
            out, acts = self.net.run(occluded, t.layers, output=t.needs_output)
        else:
            out, acts = self._incremental(patch, b, w)
        v = _evaluate_target(t, out, acts, bsz)
        return (self.value.repeat(len(wid)) - v).reshape(len(wid), bsz)

    def _incremental(self, p, b, w):
        ses, acts, full = self.ses, {}, None
        want = {}
        for n, i in self.capture.items():
            want.setdefault(i, []).append(n)
        for i in range(self.stop):
            s = self.stages[i]
            if full is None and i >= ses.full_from:
                full = inc.materialize(ses, i, b, p)
            if full is None:
                p = inc.step(s, p, ses, b, w)
            else:
                full = s.full(full)
            for n in want.get(i, ()):
                acts[n] = full.clone() if full is not None else inc.materialize(ses, i + 1, b, p)
        out = None
        if self.stop == len(self.stages) and self.target.needs_output:
            out = full if full is not None else inc.materialize(ses, len(self.stages), b, p)
        return out, acts
