"""``fw.adversarial``: adversarial examples by projected gradient steps on the loss (Goodfellow et al. 2015;
Madry et al. 2018), and ``fw.fooling``: images from noise classified as a chosen class with high confidence
(Nguyen et al. 2015).

Untargeted: ascend the cross-entropy of the class the model predicts for the clean image. Targeted: descend
the cross-entropy of ``target_class``. L-inf steps follow the gradient's sign, L2 steps its normalized
direction; after each step the perturbation is projected back into the epsilon ball and the image into [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import FeatwidgetError
from ..network import as_network
from ..progress import report
from ..safety import preserved
from ..targets import _index
from ..validate import positive
from .maximize import count, network_for, rng_for


@dataclass
class Adversarial:
    """``images``: adversarial batch in [0, 1]; ``delta``: ``images - x``; ``classes`` / ``probability``:
    (steps + 1, B) predicted class and its softmax probability before each step and after the last;
    ``original``: (B,) the clean prediction; ``fooled``: (B,) whether the final prediction is the target
    (targeted) or differs from ``original`` (untargeted)."""

    images: torch.Tensor
    delta: torch.Tensor
    classes: torch.Tensor
    probability: torch.Tensor
    original: torch.Tensor
    fooled: torch.Tensor


NORMS = ("linf", "l2")


def adversarial(net, x, target_class=None, steps: int = 15, epsilon: float = 8 / 255, norm: str = "linf",
                lr: float | None = None, progress=None) -> Adversarial:
    """Perturb ``x`` (B, C, H, W in [0, 1]) within an ``epsilon`` ball (``norm`` "linf" or "l2") to change the
    prediction (``target_class=None``) or to reach ``target_class`` (an index or one per image). ``lr``:
    step size, by default 2.5 * epsilon / steps (Madry et al.)."""
    net = as_network(net, x)
    x = net.check(x)
    return _pgd(net, x, target_class, steps, epsilon, norm, lr, progress)


def fooling(net, target_class, steps: int = 50, epsilon: float = 1.0, lr: float | None = None, batch=None,
            norm: str = "linf", progress=None, seed=None) -> Adversarial:
    """Images that start from uniform noise and end classified as ``target_class`` (one per image)."""
    if target_class is None:
        raise FeatwidgetError("fooling needs target_class: the class the noise should turn into.")
    net = network_for(net)
    rng = rng_for(seed)
    n = batch or (len(target_class) if hasattr(target_class, "__len__") else 1)
    noise = torch.rand(n, *net.input_size, generator=rng).to(net.device)
    return _pgd(net, noise, target_class, steps, epsilon, norm, lr if lr is not None else 0.02, progress)


def _pgd(net, x, target_class, steps, epsilon, norm, lr, progress) -> Adversarial:
    steps = count("steps", steps)
    positive("epsilon", epsilon)
    if norm not in NORMS:
        raise FeatwidgetError(f"norm must be 'linf' or 'l2', got {norm!r}.")
    lr = 2.5 * epsilon / steps if lr is None else positive("lr", lr)
    b = x.shape[0]
    classes, probs = [], []
    with preserved(net.module):
        with torch.no_grad():
            logits = net.module(net.normalize(x))
        original = logits.argmax(1)
        targeted = target_class is not None
        if targeted:
            goal = _index(target_class, b, x.device, "target_class")
            if bool(((goal < 0) | (goal >= logits.shape[1])).any()):
                raise FeatwidgetError(f"target_class must be between 0 and {logits.shape[1] - 1}, got {target_class!r}.")
        else:
            goal = original
        adv = x.clone()
        for i in range(steps + 1):
            adv.requires_grad_(True)
            logits = net.module(net.normalize(adv))
            p = torch.softmax(logits.detach(), 1)
            conf, cls = p.max(1)
            classes.append(cls)
            probs.append(conf)
            if i == steps:
                break
            ce = F.cross_entropy(logits, goal, reduction="sum")
            (g,) = torch.autograd.grad(-ce if targeted else ce, adv)
            with torch.no_grad():
                adv = adv.detach() + lr * _direction(g, norm)
                adv = (x + _project(adv - x, epsilon, norm)).clamp(0, 1)
            report(progress, (i + 1) / steps, {"step": i + 1, "image": adv, "class": cls, "probability": conf})
        adv = adv.detach()
    final = classes[-1]
    fooled = final == goal if targeted else final != original
    return Adversarial(adv, adv - x, torch.stack(classes), torch.stack(probs), original, fooled)


def _direction(g, norm):
    if norm == "linf":
        return g.sign()
    return g / g.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)


def _project(delta, epsilon, norm):
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    n = delta.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
    return delta * (epsilon / n).clamp(max=1.0)
