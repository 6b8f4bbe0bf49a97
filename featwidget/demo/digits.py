"""Procedural 28x28 grayscale handwritten-looking digits 0-9, MNIST-like (white strokes on black).

Each digit is a fixed set of pen strokes (polylines sampled from lines and elliptic arcs) in a unit box. Per
image the strokes are bent by a smooth random displacement field ("handwriting" jitter), placed by a random
affine map (scale, rotation, shear, slant, translation) and drawn with a random pen width: a pixel's ink is
its distance to the nearest stroke segment turned into soft coverage. All images of one digit are drawn in one
batched call; the only Python loop is over the ten digits.
"""
from __future__ import annotations

import math

import torch

SIZE = 28
CLASSES = [str(d) for d in range(10)]
CHUNK = 256  # images per batched distance computation


def _line(p0, p1, k=6):
    t = torch.linspace(0, 1, k)[:, None]
    return (1 - t) * torch.tensor(p0) + t * torch.tensor(p1)


def _arc(cx, cy, rx, ry, a0, a1, k=14):
    """Elliptic arc from angle a0 to a1 (degrees; 0 = right, 90 = down since y grows downwards)."""
    a = torch.deg2rad(torch.linspace(a0, a1, k))
    return torch.stack([cx + rx * torch.cos(a), cy + ry * torch.sin(a)], 1)


# Strokes in a box x in [0, 0.7], y in [0, 1] (digits are taller than wide).
STROKES = [
    [_arc(0.35, 0.5, 0.3, 0.48, 0, 360, 24)],
    [_line((0.2, 0.2), (0.4, 0.0), 4), _line((0.4, 0.0), (0.4, 1.0), 8)],
    [_arc(0.35, 0.28, 0.3, 0.27, 190, 390, 14), _line((0.6, 0.42), (0.05, 1.0), 8), _line((0.05, 1.0), (0.68, 1.0), 6)],
    [_arc(0.33, 0.25, 0.3, 0.24, 200, 450, 14), _arc(0.33, 0.73, 0.33, 0.26, 270, 520, 14)],
    [_line((0.5, 0.0), (0.0, 0.68), 8), _line((0.0, 0.68), (0.7, 0.68), 6), _line((0.5, 0.25), (0.5, 1.0), 8)],
    [_line((0.65, 0.0), (0.12, 0.0), 6), _line((0.12, 0.0), (0.08, 0.45), 5),
     _arc(0.33, 0.68, 0.32, 0.3, 220, 500, 16)],
    [_arc(0.55, 0.55, 0.5, 0.55, 250, 170, 10), _arc(0.36, 0.72, 0.3, 0.27, 180, 540, 20)],
    [_line((0.0, 0.0), (0.7, 0.0), 6), _line((0.7, 0.0), (0.25, 1.0), 10)],
    [_arc(0.35, 0.24, 0.25, 0.23, 0, 360, 18), _arc(0.35, 0.72, 0.32, 0.27, 0, 360, 20)],
    [_arc(0.33, 0.29, 0.3, 0.28, 0, 360, 20), _line((0.63, 0.29), (0.55, 1.0), 8)],
]


def _segments(strokes):
    """All consecutive point pairs of all strokes: (S, 2 ends, 2 coords)."""
    return torch.cat([torch.stack([s[:-1], s[1:]], 1) for s in strokes])


SEGMENTS = [_segments(s) - torch.tensor([0.35, 0.5]) for s in STROKES]  # centred on the box centre


def _uniform(gen, shape, lo, hi):
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def _distance_to_segments(px, py, a, b):
    """Distance from pixel centres (P,) x/y to the nearest segment a->b (m, S, 2): (m, P).

    x and y are kept as separate (m, P, S) planes: no trailing size-2 dimension, half the memory traffic."""
    abx, aby = (b[..., 0] - a[..., 0])[:, None], (b[..., 1] - a[..., 1])[:, None]
    apx, apy = px[None, :, None] - a[:, None, :, 0], py[None, :, None] - a[:, None, :, 1]
    t = ((apx * abx + apy * aby) / (abx * abx + aby * aby).clamp(min=1e-9)).clamp(0, 1)
    return ((apx - t * abx) ** 2 + (apy - t * aby) ** 2).amin(-1).sqrt()


def render(labels: torch.Tensor, gen: torch.Generator, noise: float = 0.03) -> torch.Tensor:
    """Images (n, 1, 28, 28) in [0, 1] of the digits in ``labels``."""
    n = labels.shape[0]
    # the affine map from the digit box to pixels: MNIST digits fill a ~20 px box centred in 28 px
    scale = _uniform(gen, n, 16.0, 20.0)
    aspect = _uniform(gen, n, 0.8, 1.25)
    angle = torch.deg2rad(_uniform(gen, n, -12.0, 12.0))
    shear = _uniform(gen, n, -0.35, 0.35)
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = scale * aspect.sqrt(), scale / aspect.sqrt()
    # A = R(angle) @ [[1, shear], [0, 1]] @ diag(sx, sy)
    a11, a12 = cos * sx, (cos * shear - sin) * sy
    a21, a22 = sin * sx, (sin * shear + cos) * sy
    A = torch.stack([torch.stack([a11, a12], -1), torch.stack([a21, a22], -1)], -2)
    offset = SIZE / 2 + _uniform(gen, (n, 2), -1.5, 1.5)
    # smooth "handwriting" jitter: two random sinusoidal displacement waves per image, in box units
    freq = _uniform(gen, (n, 2, 2), 2.0, 5.0)
    phase = _uniform(gen, (n, 2, 2), 0.0, 2 * math.pi)
    amp = _uniform(gen, (n, 2, 1), 0.0, 0.05)
    width = _uniform(gen, n, 1.4, 3.0)
    ink = _uniform(gen, n, 0.85, 1.0)

    centres = torch.arange(SIZE, dtype=torch.float32) + 0.5
    py, px = torch.meshgrid(centres, centres, indexing="ij")
    px, py = px.reshape(-1), py.reshape(-1)
    dist = torch.empty(n, SIZE * SIZE)
    for d, seg in enumerate(SEGMENTS):
        idx = (labels == d).nonzero().squeeze(1)
        if not idx.numel():
            continue
        pts = seg.reshape(1, -1, 2).expand(idx.numel(), -1, -1)  # (m, 2S, 2): segment ends
        # displacement of each coordinate: amp * sin(freq . p + phase), per axis
        wave = torch.sin(pts[..., None, :].mul(freq[idx][:, None]).sum(-1) + phase[idx][:, None, :, 0])
        pts = pts + amp[idx][:, None, :, 0] * wave
        pts = torch.einsum("mij,mkj->mki", A[idx], pts) + offset[idx][:, None]
        ends = pts.reshape(idx.numel(), -1, 2, 2)
        # in chunks: the (images, pixels, segments) planes of a whole epoch would not fit in memory
        for part in torch.arange(idx.numel()).split(CHUNK):
            dist[idx[part]] = _distance_to_segments(px, py, ends[part, :, 0], ends[part, :, 1])
    coverage = (width[:, None] / 2 - dist + 0.5).clamp(0, 1) * ink[:, None]
    img = coverage.reshape(n, 1, SIZE, SIZE)
    return (img + noise * torch.randn(img.shape, generator=gen)).clamp(0, 1)
