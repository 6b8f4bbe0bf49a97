"""``fw.deepdream``: amplify whatever a layer already sees in an image (Mordvintsev et al. 2015).

Normalized gradient ascent on the layer's energy (``fw.LayerNorm``) over an octave cascade: the image is
processed from a small copy up to full size, and the detail added at each octave is carried, upsampled, to
the next, so patterns grow at several scales. A random roll (jitter) at every step avoids grid artifacts.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import FeatwidgetError
from ..network import as_network
from ..progress import report
from ..safety import preserved
from ..targets import LayerNorm, Target
from ..validate import positive
from .maximize import Synthesis, count, octave_plan, rng_for


def deepdream(net, image, layer, octaves: int = 4, octave_scale: float = 1.4, steps: int = 10,
              lr: float = 0.01, jitter: int | None = None, progress=None, seed=None) -> Synthesis:
    """DeepDream ``image`` (B, C, H, W in [0, 1]) at ``layer`` (a layer name, or any fw target).

    ``steps`` per octave; ``lr`` is the step size of the gradient normalized by its mean absolute value;
    ``jitter``: largest random roll in pixels (default 32 at 224 px, scaled to the image).
    """
    net = as_network(net, image)
    x = net.check(image) if tuple(image.shape[1:]) == net.input_size else _check_any_size(net, image)
    target = LayerNorm(layer) if isinstance(layer, str) else layer
    if not isinstance(target, Target):
        raise FeatwidgetError(f"layer must be a layer name or an fw target, got {layer!r}.")
    net.deepest(target.layers)
    steps = count("steps", steps)
    positive("lr", lr)
    plan = octave_plan(octaves * steps, tuple(x.shape[-2:]), octaves, octave_scale)
    jitter = round(32 * min(x.shape[-2:]) / 224) if jitter is None else count("jitter", jitter, lo=0)
    rng = rng_for(seed)
    values, losses = [], []
    total = octaves * steps
    done = 0
    detail = None
    with preserved(net.module):
        for size, n in plan:
            base = F.interpolate(x, size=size, mode="bilinear", align_corners=False) if size != x.shape[-2:] else x
            detail = torch.zeros_like(base) if detail is None else F.interpolate(
                detail, size=size, mode="bilinear", align_corners=False)
            img = (base + detail).clamp(0, 1)
            for _ in range(n):
                dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=rng).tolist() if jitter else (0, 0))
                rolled = torch.roll(img, (dy, dx), (2, 3)).requires_grad_(True)
                v = net.evaluate(rolled, target)
                (g,) = torch.autograd.grad(v.sum(), rolled)
                g = torch.roll(g, (-dy, -dx), (2, 3))
                step = lr * g / g.abs().flatten(1).mean(1).clamp(min=1e-12).view(-1, 1, 1, 1)
                img = (img + step).clamp(0, 1)
                values.append(v.detach())
                losses.append(-v.detach().sum())
                done += 1
                report(progress, done / total, {"step": done, "steps": total, "image": img})
            detail = img - base
    return Synthesis(img, torch.stack(values), torch.stack(losses))


def _check_any_size(net, image):
    # DeepDream works on pictures of any size for a convolutional network: check the rest, not the size.
    from ..validate import as_batch

    x = as_batch(image)
    if x.shape[1] != net.input_size[0]:
        as_batch(image, net.input_size)  # raises the channel message
    if x.device != net.device:
        raise FeatwidgetError(f"The image is on {x.device} but the model is on {net.device}; move it with .to().")
    return x
