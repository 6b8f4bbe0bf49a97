"""Integrated gradients (Sundararajan et al. 2017).

IG_i = (x_i - x'_i) * integral over a in [0, 1] of d target / d x_i at x' + a (x - x'); attributions sum to
f(x) - f(x') (completeness) up to the quadrature error. On a ReLU network the integrand jumps wherever a
unit switches along the path -- on the trained shapes demo model nearly every one of 1,024 path intervals
holds a switch -- so a uniform grid misses completeness by up to 7-10 % at 64 steps (16 demo images, black
baseline: trapezoid 7.0 %, midpoint 10.3 % worst). The default (``adaptive=True``) places the gradient
evaluations where the exact increments of the target (known from the same forward passes) are not
explained, and integrates with the switch-point rule (see ``_adaptive``). ``adaptive=False`` gives the plain
midpoint rule, in a low-discrepancy order for streaming. Gradients are computed ``batch_size`` path points at
a time; the adaptive rule keeps the ``steps`` gradients of each image until the end (steps x C x H x W floats
per image).
"""
from __future__ import annotations

import torch

from ..errors import FeatwidgetError
from ..progress import report
from ..safety import preserved
from .common import chunks, default_batch_size, fix_predicted, input_gradient, prepare, rows
from .smoothgrad import count
from ..imaging import gaussian_blur

BASELINES = ("black", "white", "blur")


def integrated_gradients(net, x, target=None, baseline=0.0, steps: int = 50, batch_size: int | None = None,
                         adaptive: bool = True, progress=None) -> torch.Tensor:
    """(B, C, H, W) attributions. ``baseline``: a pixel value, a tensor (C,H,W) / (B,C,H,W) in pixel space,
    "black" (0), "white" (1) or "blur" (the image under a Gaussian blur of sigma = max(H, W) / 20).
    ``adaptive`` (default) spends three quarters of the ``steps`` gradient evaluations on a uniform grid and
    places the rest where it integrates worst; ``adaptive=False`` is the plain midpoint rule."""
    steps = count("steps", steps)
    if batch_size is not None:
        count("batch_size", batch_size)
    net, x, t = prepare(net, x, target)
    size = int(batch_size) if batch_size is not None else default_batch_size(net, x)
    base = make_baseline(baseline, x)
    diff = x - base
    with preserved(net.module):
        t = fix_predicted(net, x, t)
        if adaptive and steps >= 4:
            return diff * _adaptive(net, base, diff, t, steps, size, progress)
        return diff * _uniform(net, base, diff, t, steps, size, progress)


def _evaluate(net, base, diff, t, image, alpha, with_value=False):
    xs = base[image] + alpha[:, None, None, None] * diff[image]
    return input_gradient(net, xs, rows(t, image, base.shape[0]), with_value=with_value)


def _uniform(net, base, diff, t, steps, size, progress):
    """Midpoint rule, steps in a low-discrepancy order so that the running estimate covers the whole path."""
    b = base.shape[0]
    alpha = (van_der_corput_order(steps).to(base.device, base.dtype) + 0.5) / steps
    total = steps * b
    acc = torch.zeros_like(base)
    counts = torch.zeros(b, device=base.device, dtype=base.dtype)
    # a first chunk of one step per image only to stream an early picture (smoothgrad.py says why)
    for start, end in chunks(total, size, first=min(b, size) if progress is not None else None):
        item = torch.arange(start, end, device=base.device)
        image = item % b
        acc.index_add_(0, image, _evaluate(net, base, diff, t, image, alpha[item // b]))
        counts.index_add_(0, image, torch.ones_like(image, dtype=base.dtype))
        if progress is not None:
            report(progress, end / total, diff * acc / counts.clamp(min=1)[:, None, None, None])
    return acc / steps


def _adaptive(net, base, diff, t, steps, size, progress):
    """Gradient evaluations placed where the path needs them, integrated with the switch-point rule.

    On a ReLU network the target along the path is piecewise linear, so the integrand ``g(alpha)`` is
    piecewise constant and jumps wherever a unit switches. Every gradient evaluation also returns the target
    value, so between two evaluated points ``a < b`` the exact increment ``I = f(b) - f(a)`` is known. If one
    switch lies in ``(a, b)``, with directional derivatives ``d = g . (x - x')`` of ``d_a`` before and ``d_b``
    after it, its position ``c`` solves ``d_a (c - a) + d_b (b - c) = I`` and the interval's integral is
    exactly ``(c - a) g(a) + (b - c) g(b)`` (the switch-point rule; for a smooth target it is a trapezoid rule
    with weights that match the increment). An increment that no single switch in ``[a, b]`` explains means
    several switches: those intervals are bisected first (largest unexplained increment first), in rounds.

    Three quarters of ``steps`` go to a uniform grid that includes both ends of the path, the rest is placed
    round by round. (Measured on 16 shapes-demo images at 64 steps, against a 4,096-step reference: a quarter
    on the grid gives the same completeness but a larger per-pixel error, 3.9 % vs 3.3 % mean relative L2;
    the uniform coverage matters for the per-pixel integrand, which switches all along the path.) The rounds depend on each image alone, so an image gets the same points whether it is
    explained alone or in a batch."""
    b, dev, dt = base.shape[0], base.device, base.dtype
    n0 = max(2, (3 * steps) // 4 - 1)
    paths = [_Path() for _ in range(b)]
    todo = [(i, k / n0) for k in range(n0 + 1) for i in range(b)]
    done, total = 0, steps * b
    while todo:
        for start in range(0, len(todo), size):
            part = todo[start:start + size]
            image = torch.tensor([i for i, _ in part], device=dev)
            alpha = torch.tensor([a for _, a in part], device=dev, dtype=dt)
            g, v = _evaluate(net, base, diff, t, image, alpha, with_value=True)
            d = (g * diff[image]).flatten(1).sum(1)
            for (i, a), gj, vj, dj in zip(part, g, v.tolist(), d.tolist()):
                paths[i].add(a, vj, dj, gj)
            done += len(part)
            if progress is not None:
                report(progress, done / total, diff * torch.stack([p.integral() for p in paths]))
        placed = len(paths[0].alphas)
        left = steps - placed
        if left <= 0:
            break
        # small rounds place points best (each sees the last one's answers); at least 4: batch-of-one passes
        # are slow
        per_round = min(left, max(4, placed // 4))
        todo = [(i, a) for i, p in enumerate(paths) for a in p.worst_midpoints(per_round)]
    return torch.stack([p.integral() for p in paths])


class _Path:
    """The evaluated points of one image's path: alpha, target value f, directional derivative d, gradient."""

    def __init__(self):
        self.alphas, self.values, self.dots, self.grads = [], [], [], []

    def add(self, alpha, value, dot, grad):
        self.alphas.append(alpha), self.values.append(value), self.dots.append(dot), self.grads.append(grad)

    def _intervals(self):
        """Sorted point order and, per interval, (left weight, right weight, unexplained increment)."""
        order = sorted(range(len(self.alphas)), key=self.alphas.__getitem__)
        out = []
        for j, k in zip(order[:-1], order[1:]):
            h = self.alphas[k] - self.alphas[j]
            da, db = self.dots[j], self.dots[k]
            inc = self.values[k] - self.values[j]
            c = h / 2  # no jump in d: the trapezoid rule (any split gives the same scalar)
            if da != db:
                c = min(max((inc - db * h) / (da - db), 0.0), h)
            out.append((c, h - c, abs(inc - c * da - (h - c) * db), abs(inc - h * (da + db) / 2)))
        return order, out

    def integral(self) -> torch.Tensor:
        """Switch-point rule over the points so far; the integrand held flat beyond the outermost points (only
        while streaming: the final point set includes both ends)."""
        order, intervals = self._intervals()
        w = [0.0] * len(order)
        w[0] += self.alphas[order[0]]
        w[-1] += 1.0 - self.alphas[order[-1]]
        for n, (left, right, _, _) in enumerate(intervals):
            w[n] += left
            w[n + 1] += right
        weights = torch.tensor(w, dtype=self.grads[0].dtype, device=self.grads[0].device)
        return torch.einsum("k,k...->...", weights, torch.stack([self.grads[j] for j in order]))

    def worst_midpoints(self, k: int) -> list[float]:
        """Midpoints of the k intervals with the largest unexplained increment (ties: the largest trapezoid
        error, which also orders smooth targets, where every increment is explained)."""
        order, intervals = self._intervals()
        tol = 1e-5 * max(map(abs, self.values))  # float32 round-off of an explained increment
        key = sorted(range(len(intervals)), reverse=True,
                     key=lambda n: (intervals[n][2] if intervals[n][2] > tol else 0.0, intervals[n][3]))
        return [(self.alphas[order[n]] + self.alphas[order[n + 1]]) / 2 for n in key[:k]]


def make_baseline(baseline, x: torch.Tensor) -> torch.Tensor:
    if isinstance(baseline, str):
        if baseline == "black":
            return torch.zeros_like(x)
        if baseline == "white":
            return torch.ones_like(x)
        if baseline == "blur":
            return gaussian_blur(x, max(x.shape[2:]) / 20)
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



def van_der_corput_order(n: int) -> torch.Tensor:
    """0..n-1 sorted by their bit-reversed value: any prefix is spread evenly over the range."""
    bits = max(1, (n - 1).bit_length())
    key = [int(format(i, f"0{bits}b")[::-1], 2) for i in range(n)]
    return torch.tensor(sorted(range(n), key=lambda i: key[i]), dtype=torch.float32)
