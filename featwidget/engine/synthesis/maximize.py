"""``fw.maximize``: activation maximization (Erhan et al. 2009; Simonyan et al. 2014; Olah et al. 2017).

Gradient ascent on an image parameterization so that a target of the engine algebra (a neuron, a channel, a
layer's energy, a logit, a probability, a log-probability, or any weighted sum of them) becomes large, under
regularizers and random transforms. One step is: decode the parameterization, transform the batch (one
``grid_sample``), forward *up to the deepest layer the objective reads* (of a convolution layer, only the
channels it reads: ``channels.py``), backward to the canvas with autograd and from there to the
parameterization by hand (the model's parameters are frozen for the call), an Adam update, then the optional
between-step operations (blur, clip, Langevin noise). Settings are re-read at every step (see ``Settings``). Once a step
has given some image an exactly zero gradient (a unit behind a switched-off ReLU), the step after next runs
with redirected ReLU gradients (``redirect.py``), so a dead start gets moving; the flag is read two steps late
so that the host never waits for the device. The loop's own bookkeeping reads nothing back to the host
unless a ``progress`` callback asks for a preview.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FeatwidgetError
from ..network import Network, as_network
from ..progress import report
from ..safety import preserved
from ..targets import as_target
from . import param as P
from . import transforms as T
from .adam import Adam
from .channels import OnlyChannels, channels_read
from .redirect import RedirectedRelu
from .regularizers import OPERATIONS, Penalty, REGULARIZERS
from .settings import Settings, knobs


@dataclass
class Synthesis:
    """Result of ``fw.maximize`` / ``fw.deepdream`` / ``fw.invert``.

    ``images``: (B, C, H, W) in [0, 1]. ``objective``: (steps, B), the objective of each image at each step
    (before that step's update, without regularizers). ``loss``: (steps,), the minimized total (minus the
    summed objective plus weighted penalties).
    """

    images: torch.Tensor
    objective: torch.Tensor
    loss: torch.Tensor

    @property
    def steps(self) -> int:
        return self.objective.shape[0]


def network_for(net, channels: int = 3, size=None) -> Network:
    """A ``Network`` for a wrapped or plain model; a plain one is traced at ``size`` (default 224)."""
    if isinstance(net, Network):
        return net
    if not isinstance(net, nn.Module):
        raise FeatwidgetError(f"Expected an fw.Network or torch.nn.Module, got {type(net).__name__}.")
    h, w = image_size(size, (channels, 224, 224))
    return as_network(net, torch.zeros(1, channels, h, w, device=_device(net)))


def _device(module):
    for t in module.parameters():
        return t.device
    return torch.device("cpu")


def image_size(size, input_size) -> tuple:
    if size is None:
        return tuple(input_size[1:])
    hw = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)
    if len(hw) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 8 for s in hw):
        raise FeatwidgetError(f"size must be an integer of at least 8 or a pair (height, width), got {size!r}.")
    return hw


def count(name: str, value, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise FeatwidgetError(f"{name} must be an integer of at least {lo}, got {value!r}.")
    return value


def rng_for(seed) -> torch.Generator:
    if seed is None:  # follow the global RNG so torch.manual_seed makes results repeatable
        seed = int(torch.randint(0, 2**62, (1,)))
    return torch.Generator().manual_seed(int(seed))


def init_image(init, net: Network, batch: int, size: tuple, device) -> torch.Tensor | None:
    """None / "noise" -> None (the parameterization's own small random init); "mean" -> the dataset mean
    colour given to ``fw.wrap``; "gray"; or an image (C, H, W) / batch (1 or B, C, H, W) in [0, 1]."""
    c = net.input_size[0]
    if init is None or (isinstance(init, str) and init == "noise"):
        return None
    if isinstance(init, str):
        if init == "mean":
            return net.mean.to(device).view(1, c, 1, 1).expand(batch, c, *size).clone()
        if init == "gray":
            return torch.full((batch, c, *size), 0.5, device=device)
        raise FeatwidgetError(f"init must be 'noise', 'mean', 'gray' or an image tensor, got {init!r}.")
    if not isinstance(init, torch.Tensor):
        raise FeatwidgetError(f"init must be 'noise', 'mean', 'gray' or an image tensor, got {type(init).__name__}.")
    img = init[None] if init.dim() == 3 else init
    if img.dim() != 4 or img.shape[1] != c or img.shape[0] not in (1, batch):
        raise FeatwidgetError(
            f"init image has shape {tuple(init.shape)}; give (C, H, W) or (1 or {batch}, C, H, W) with C = {c}."
        )
    if not torch.isfinite(img).all() or img.min() < -1e-3 or img.max() > 1 + 1e-3:
        raise FeatwidgetError("init image must hold finite pixel values in [0, 1] (un-normalized).")
    img = img.to(device, torch.float32).clamp(0, 1)
    if tuple(img.shape[-2:]) != tuple(size):
        img = F.interpolate(img, size=size, mode="bilinear", align_corners=False)
    return img.expand(batch, -1, -1, -1).clone()


def octave_plan(steps: int, size: tuple, octaves: int, octave_scale: float) -> list:
    """[(size, steps)] from the smallest octave to ``size``; steps are shared out evenly."""
    count("octaves", octaves)
    if octaves > 1 and not (isinstance(octave_scale, (int, float)) and octave_scale > 1):
        raise FeatwidgetError(f"octave_scale must be above 1 (e.g. 1.4), got {octave_scale!r}.")
    if steps < octaves:
        raise FeatwidgetError(f"steps ({steps}) must be at least octaves ({octaves}): each octave needs a step.")
    plan = []
    for i in range(octaves):
        f = octave_scale ** (octaves - 1 - i)
        s = tuple(max(8, round(d / f)) for d in size)
        plan.append((s, steps // octaves + (1 if i < steps % octaves else 0)))
    return plan


def maximize(net, objective, steps: int = 256, size=None, batch: int = 1, param: str = "fourier",
             decorrelate: bool = True, lr: float | None = None, regularizers=None, transforms="standard",
             octaves: int = 1, octave_scale: float = 1.4, noise: float = 0.0, init=None, progress=None,
             seed=None, settings: Settings | None = None, generator=None) -> Synthesis:
    """Optimize ``batch`` images so that ``objective`` (any fw target) is as large as possible.

    ``regularizers``: ``{"l2": w, "alpha": w, "tv": w, "edge": w, "blur": sigma, "grad_blur": sigma,
    "clip": fraction}`` or a list of ``fw.synthesis`` regularizer objects. ``transforms``: "standard",
    None, or ``{"pad": px, "jitter": px, "scale": spread, "rotate": degrees}``. ``param``: "fourier",
    "pixel" or "generator" (the code of the demo generator, DGN-AM). ``lr``: Adam step size; None picks the
    parameterization's default (fourier 0.05, pixel 0.02, generator 0.1). ``init``: "noise", "mean", "gray" or an
    image. ``noise``: std of the Langevin-style noise added to the parameterization after every step.
    ``settings``: a live ``Settings`` object that replaces lr / param / decorrelate / noise / regularizers /
    transforms and is re-read at every step. ``progress(fraction, partial)`` gets a dict with ``step``,
    ``image`` and ``objective`` every ``settings.preview_every`` steps; returning False cancels.
    """
    net = network_for(net, size=size)
    target = as_target(objective)
    net.deepest(target.layers)  # unknown layer names fail here, with suggestions
    steps = count("steps", steps)
    batch = count("batch", batch)
    hw = image_size(size, net.input_size)
    plan = octave_plan(steps, hw, octaves, octave_scale)
    if settings is None:
        settings = Settings(lr=lr, param=param, decorrelate=decorrelate, noise=noise,
                            regularizers=knobs(regularizers, REGULARIZERS, "regularizer"),
                            transforms=knobs(transforms, T.TRANSFORMS, "transform", min(hw)))
    elif not isinstance(settings, Settings):
        raise FeatwidgetError(f"settings must be an fw.synthesis.Settings object, got {type(settings).__name__}.")
    if settings.param == "generator" and octaves > 1:
        raise FeatwidgetError("Octaves resize pixels; with param='generator' the generator fixes the "
                              "resolution. Use octaves=1, or param='fourier'.")
    device = net.device
    rng = rng_for(seed)
    start = init_image(init, net, batch, plan[0][0], device)
    return optimize(net, target, plan, batch, settings, rng, start, progress, generator)


def optimize(net: Network, target, plan: list, batch: int, settings: Settings, rng: torch.Generator,
             start: torch.Tensor | None, progress, generator=None) -> Synthesis:
    """The shared loop of maximize and invert: ``plan`` is [(size, steps)] (octaves)."""
    channels, device = net.input_size[0], net.device
    total = sum(n for _, n in plan)
    values, losses = [], []
    # per step: did some image get a zero objective or an exactly zero gradient (a dead ReLU start)? Kept on
    # the device and read two steps later, when that step has long finished: the host never waits for it.
    dead = []
    done = 0
    image = start
    with preserved(net.module):
        for octave, (size, n) in enumerate(plan):
            if image is not None and tuple(image.shape[-2:]) != tuple(size):
                image = F.interpolate(image, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
            p = P.make(settings.param, batch, channels, size, settings.decorrelate, device, rng, image, generator,
                       perturb=octave == 0)
            opt = Adam(p.tensors, settings.step_size)
            for _ in range(n):
                if settings.param != p.kind or (settings.decorrelate and channels == 3) != p.decorrelate:
                    with torch.no_grad():
                        current = p.image()
                    p = P.make(settings.param, batch, channels, size, settings.decorrelate, device, rng, current,
                               generator)
                    opt = Adam(p.tensors, settings.step_size)
                redirect = len(dead) >= 2 and bool(dead[-2])
                value, loss, stuck = _step(net, target, p, opt, settings, rng, done, redirect)
                values.append(value)
                losses.append(loss)
                dead = [dead[-1], stuck] if dead else [stuck]
                done += 1
                preview = done % settings.preview_every == 0 or done == total
                partial = None
                if preview and progress is not None:
                    with torch.no_grad():
                        partial = {"step": done, "steps": total, "image": p.image().detach().clone(),
                                   "objective": torch.stack(values).mean(1)}
                report(progress, done / total, partial)
            with torch.no_grad():
                image = p.image().detach().clone()
    return Synthesis(image, torch.stack(values), torch.stack(losses))


def _step(net, target, p, opt, settings, rng, index, redirect):
    # Autograd runs through the network only, from the canvas it is fed: the image's own steps (the
    # parameterization, the transforms, the penalties) are backpropagated by hand -- ``Param.pullback``,
    # ``transforms.sample_pullback`` -- which on a small image saves a good part of the per-step cost that is
    # not the network's. The gradients are the same operations autograd would run.
    opt.lr = settings.step_size
    regs = dict(settings.regularizers)  # a slider thread may add entries mid-step
    ops = [r for name, r in regs.items() if name in OPERATIONS and name != "grad_blur" and r.active
           and index % r.every == r.every - 1]
    img, saved = p.decode()
    grid = T.draw(img, dict(settings.transforms), rng)
    with torch.no_grad():
        x, centred = (img.detach(), None) if grid is None else T.sample(img, grid)
    x.requires_grad_(True)
    try:
        sliced = channels_read(net, target)
        with (RedirectedRelu() if redirect else contextlib.nullcontext()), \
                (OnlyChannels(*sliced) if sliced else contextlib.nullcontext()):
            value = net.evaluate(x, target)
    except RuntimeError as e:
        raise FeatwidgetError(
            f"The model failed on a {x.shape[-2]}x{x.shape[-1]} input ({e}). If it needs exactly its wrapped "
            f"input size, pass transforms={{'jitter': ..., 'scale': ..., 'rotate': ...}} without 'pad', and "
            f"size=None."
        ) from e
    # d(-sum(value)) / d(value) is -1 per image
    (grad,) = torch.autograd.grad(value, x, torch.full_like(value, -1.0))
    value = value.detach()
    with torch.no_grad():
        if grid is not None:
            grad = T.sample_pullback(grad, centred, grid)
        loss = -value.sum()
    penalties = [r for r in regs.values() if isinstance(r, Penalty) and r.active]  # a zero weight costs nothing
    if penalties:
        leaf = img.detach().requires_grad_(True)
        for r in penalties:
            loss = loss + r.value * r.penalty(leaf).sum()
        grad = grad + torch.autograd.grad(loss, leaf)[0]
        loss = loss.detach()
    blur_grad = regs.get("grad_blur")
    if blur_grad is not None and blur_grad.active:
        grad = blur_grad.blur(grad)
    grads = p.pullback(saved, grad)
    # a zero objective (a switched-off unit) or a zero gradient for some image: redirect ReLU gradients soon
    stuck = (torch.minimum(value.abs(), grads[0].flatten(1).abs().amax(1)) == 0).any()
    opt.step(grads)
    with torch.no_grad():
        if settings.noise > 0:
            for t in p.tensors:
                t.add_(torch.randn(t.shape, generator=rng).to(t.device) * settings.noise)
        if ops:
            out = p.image()
            for r in ops:  # Clip by contribution reads the image's gradient
                out = r.apply(out, grad)
            p.set_image(out)
    return value, loss, stuck
