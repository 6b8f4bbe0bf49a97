"""Integrated gradients (Sundararajan et al. 2017).

IG_i = (x_i - x'_i) * mean over the path x' + a (x - x') of d target / d x_i. The path integral uses the
midpoint rule (a = (k + 0.5) / steps), whose error falls as 1/steps^2; attributions sum to
f(x) - f(x') (completeness) up to that error. Steps are processed ``batch_size`` images at a time and in a
low-discrepancy order, so the running estimate handed to ``progress`` is already spread along the whole path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import FeatwidgetError
from ..progress import report
from ..safety import preserved
from .common import chunks, fix_predicted, input_gradient, prepare, rows
from .smoothgrad import DEFAULT_BATCH_SIZE, count

BASELINES = ("black", "white", "blur")


def integrated_gradients(net, x, target=None, baseline=0.0, steps: int = 50, batch_size: int | None = None,
                         progress=None) -> torch.Tensor:
    """(B, C, H, W) attributions. ``baseline``: a pixel value, a tensor (C,H,W) / (B,C,H,W) in pixel space,
    "black" (0), "white" (1) or "blur" (the image under a Gaussian blur of sigma = max(H, W) / 20)."""
    steps = count("steps", steps)
    size = count("batch_size", batch_size) if batch_size is not None else DEFAULT_BATCH_SIZE
    net, x, t = prepare(net, x, target)
    base = make_baseline(baseline, x)
    diff = x - base
    b = x.shape[0]
    alpha = (van_der_corput_order(steps).to(x.device, x.dtype) + 0.5) / steps
    total = steps * b
    acc = torch.zeros_like(x)
    counts = torch.zeros(b, device=x.device, dtype=x.dtype)
    with preserved(net.module):
        t = fix_predicted(net, x, t)
        for start, end in chunks(total, size, first=min(b, size)):
            item = torch.arange(start, end, device=x.device)
            image = item % b
            a = alpha[item // b][:, None, None, None]
            xs = base[image] + a * diff[image]
            acc.index_add_(0, image, input_gradient(net, xs, rows(t, image, b)))
            counts.index_add_(0, image, torch.ones_like(image, dtype=x.dtype))
            if progress is not None:
                report(progress, end / total, diff * acc / counts.clamp(min=1)[:, None, None, None])
    return diff * acc / steps


def make_baseline(baseline, x: torch.Tensor) -> torch.Tensor:
    if isinstance(baseline, str):
        if baseline == "black":
            return torch.zeros_like(x)
        if baseline == "white":
            return torch.ones_like(x)
        if baseline == "blur":
            return blur(x, max(x.shape[2:]) / 20)
        raise FeatwidgetError(
            f"Unknown baseline {baseline!r}; use a number, a tensor, or one of {', '.join(map(repr, BASELINES))}."
        )
    if isinstance(baseline, torch.Tensor):
        if baseline.device != x.device:
            raise FeatwidgetError(f"The baseline is on {baseline.device} but the images on {x.device}; "
                                  f"move it with baseline.to('{x.device}').")
        try:
            base = torch.broadcast_to(baseline.to(x.dtype), x.shape)
        except RuntimeError:
            raise FeatwidgetError(f"A baseline of shape {tuple(baseline.shape)} does not fit images of shape "
                                  f"{tuple(x.shape)}; give (C, H, W), (1, C, H, W) or (B, C, H, W).") from None
        if not bool(torch.isfinite(base).all()):
            raise FeatwidgetError("The baseline contains NaN or infinite values.")
        return base
    try:
        value = float(baseline)
    except (TypeError, ValueError):
        raise FeatwidgetError(f"baseline must be a number, a tensor, or one of {BASELINES}; got {baseline!r}.")
    if not (value == value and abs(value) < float("inf")):
        raise FeatwidgetError(f"baseline must be finite, got {baseline!r}.")
    return torch.full_like(x, value)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders."""
    radius = max(1, int(3 * sigma))
    radius = min(radius, min(x.shape[2:]) - 1) if min(x.shape[2:]) > 1 else 0
    if radius == 0:
        return x.clone()
    k = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def van_der_corput_order(n: int) -> torch.Tensor:
    """0..n-1 sorted by their bit-reversed value: any prefix is spread evenly over the range."""
    bits = max(1, (n - 1).bit_length())
    key = [int(format(i, f"0{bits}b")[::-1], 2) for i in range(n)]
    return torch.tensor(sorted(range(n), key=lambda i: key[i]), dtype=torch.float32)
