"""SmoothGrad (Smilkov et al. 2017): the mean of a gradient-type map over noisy copies of the image.

The noise is Gaussian with standard deviation ``sigma * (x.max() - x.min())`` per image, as in the paper. The
noisy copies are processed ``batch_size`` at a time: memory is bounded by it. The default is sized by the
network's layer outputs (``common.default_batch_size``): on CPUs large models run faster in small chunks
(vgg16: 2 per chunk, 20 % faster than 10) and small ones in large chunks (the shapes demo: 50, 25 % faster).
With a ``progress(fraction, running_mean)`` callback (called after every chunk) the first chunk holds one
sample per image, so that a first picture can be streamed after about one forward+backward pass; without
one, every chunk is full (a chunk of one runs slower per sample). The noise of a sample does not depend on
the chunking (``_Noise``): a seeded run gives the same map streamed or not.
"""
from __future__ import annotations

import torch

from ..errors import FeatwidgetError
from ..progress import report
from ..safety import preserved
from .common import chunks, default_batch_size, fix_predicted, input_gradient, prepare, rows
from .gradient import METHODS

def smoothgrad(net, x, target=None, sigma: float = 0.15, samples: int = 50, method: str = "gradient",
               squared: bool = False, batch_size: int | None = None, seed: int | None = None,
               progress=None) -> torch.Tensor:
    """Mean of ``method``'s map over ``samples`` noisy copies of each image; ``squared`` averages squares
    (SmoothGrad-Squared, Hooker et al. 2019). Returns (B, C, H, W), or (B, 1, H, W) for saliency."""
    sigma = check_sigma(sigma)
    samples = count("samples", samples)
    if batch_size is not None:
        count("batch_size", batch_size)
    if method not in METHODS:
        raise FeatwidgetError(f"Unknown SmoothGrad method {method!r}; use one of {', '.join(map(repr, METHODS))}.")
    net, x, t = prepare(net, x, target)
    rule, post = METHODS[method]
    size = int(batch_size) if batch_size is not None else default_batch_size(net, x)
    b = x.shape[0]
    scale = sigma * (x.amax((1, 2, 3)) - x.amin((1, 2, 3)))
    gen = torch.Generator(device=x.device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    noise = _Noise(gen, x)
    total = samples * b
    acc = counts = None
    with preserved(net.module):
        t = fix_predicted(net, x, t)
        # item i is sample i // b of image i % b: every chunk spreads over the whole batch
        for start, end in chunks(total, size, first=min(b, size) if progress is not None else None):
            image = torch.arange(start, end, device=x.device) % b
            xs = torch.addcmul(x[image], noise.take(start, end), scale[image, None, None, None])
            m = post(input_gradient(net, xs, rows(t, image, b), rule), xs)
            if squared:
                m = m * m
            if acc is None:
                acc = torch.zeros((b, *m.shape[1:]), device=x.device, dtype=m.dtype)
                counts = torch.zeros(b, device=x.device, dtype=m.dtype)
            acc.index_add_(0, image, m)
            counts.index_add_(0, image, torch.ones_like(image, dtype=m.dtype))
            if progress is not None:
                report(progress, end / total, acc / counts.clamp(min=1)[:, None, None, None])
    return acc / samples


class _Noise:
    """Standard normal noise for items ``start:end`` of the run, drawn from the generator in blocks of fixed
    sizes whatever chunks ask for it (the draws of a generator depend on their sizes): first one sample of
    every image, all a streamed first picture needs, then blocks of about eight items (a whole number of
    samples), large enough that a draw runs at full speed (a draw of one 64x64 image costs about 1.5x per
    number)."""

    def __init__(self, gen: torch.Generator, x: torch.Tensor):
        b = x.shape[0]
        self.gen, self.shape, self.block, self.next = gen, x.shape[1:], b * max(1, 8 // b), b
        self.device, self.dtype = x.device, x.dtype
        self.buf = torch.empty((0, *self.shape), device=self.device, dtype=self.dtype)  # items first, first + 1, ...
        self.first = 0

    def _draw(self) -> torch.Tensor:
        n, self.next = self.next, self.block
        return torch.randn((n, *self.shape), generator=self.gen, device=self.device, dtype=self.dtype)

    def take(self, start: int, end: int) -> torch.Tensor:
        if start > self.first:  # items before start are used: drop them
            self.buf, self.first = self.buf[start - self.first:], start
        parts, have = [self.buf], self.first + len(self.buf)
        while have < end:
            parts.append(self._draw())
            have += len(parts[-1])
        if len(parts) > 1:
            self.buf = torch.cat(parts)
        return self.buf[start - self.first:end - self.first]


def check_sigma(sigma) -> float:
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise FeatwidgetError(f"sigma must be a number (a fraction of the image's value range), got {sigma!r}.")
    if not (sigma >= 0 and sigma < float("inf")):
        raise FeatwidgetError(
            f"sigma must be zero or more (a fraction of the image's value range, e.g. 0.15), got {sigma!r}."
        )
    return sigma


def count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
            isinstance(value, float) and value.is_integer()):
        raise FeatwidgetError(f"{name} must be a whole number of at least 1, got {value!r}.")
    if int(value) < 1:
        raise FeatwidgetError(f"{name} must be at least 1, got {value!r}.")
    return int(value)
