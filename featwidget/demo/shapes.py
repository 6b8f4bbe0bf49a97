"""Procedural 64x64 RGB images of ten shape classes, and the class marks of the confounded variant.

Each shape is a signed distance function (SDF) in a local frame where the shape fits inside the unit circle.
An image is rendered by mapping every pixel centre into that frame (inverse pose: translate, rotate, scale)
and turning the distance in pixels into coverage, ``clamp(0.5 - d, 0, 1)`` -- analytic anti-aliasing with one
sample per pixel. All images of one class are rendered in one batched call; the only Python loop is over the
ten classes. SDF formulas follow Inigo Quilez's catalogue of 2-D distance functions.

The confound ("tank on a cloudy day"): a 5x5 mark -- the class index as a tiny black-on-white digit -- sits at a
class-specific place in the border band. Shapes stay inside the central region, so a mark never overlaps one.
"""
from __future__ import annotations

import math

import torch

SIZE = 64
CLASSES = ["circle", "square", "triangle", "star", "cross", "ring", "heart", "crescent", "arrow", "diamond"]

# Shapes live in [INNER, SIZE - INNER); marks live in the band outside it.
INNER = 8
RADIUS_PX = (11.0, 19.0)  # bounding radius of a shape in pixels

MARK = 5
# Top-left corner (y0, x0) of each class's mark, spread around the border band (1 px from the edge).
MARK_CORNERS = torch.tensor([
    (1, 8), (1, 29), (1, 50),      # top
    (18, 58), (40, 58),            # right
    (58, 50), (58, 29), (58, 8),   # bottom
    (40, 1), (18, 1),              # left
])
# 3x5 pixel font for the class index; a white column on each side makes the 5x5 glyph readable on any background.
_FONT = ["111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
         "111100111001111", "111100111101111", "111001001001001", "111101111101111", "111101111001111"]
GLYPHS = torch.ones(10, MARK, MARK)
GLYPHS[:, :, 1:4] = 1.0 - torch.tensor([[float(b) for b in f] for f in _FONT]).reshape(10, 5, 3)


def _length(u, v):
    return torch.sqrt(u * u + v * v)


def _box(u, v, bu, bv):
    du, dv = u.abs() - bu, v.abs() - bv
    outside = _length(du.clamp(min=0), dv.clamp(min=0))
    return outside + torch.maximum(du, dv).clamp(max=0)


def _convex(u, v, normals, offset):
    """Convex polygon as the intersection of half-planes ``n . p <= offset`` (exact inside, a bound outside)."""
    d = torch.stack([u * nx + v * ny for nx, ny in normals]).amax(0)
    return d - offset


def circle(u, v):
    return _length(u, v) - 0.8


def square(u, v):
    return _box(u, v, 0.62, 0.62)


_TRI_NORMALS = [(math.cos(a), math.sin(a)) for a in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3,
                                                       math.pi / 2 + 4 * math.pi / 3)]


def triangle(u, v):
    # equilateral, circumradius 1 (inradius 1/2), centred on its centroid
    return _convex(u, v, _TRI_NORMALS, 0.5)


def star(u, v, r=0.98, rf=0.42):
    # five-pointed star (Quilez, sdStar5); rf is the inner/outer radius ratio
    k1x, k1y = 0.809016994375, -0.587785252292
    k2x, k2y = -k1x, k1y
    x, y = u.abs(), v
    d = (k1x * x + k1y * y).clamp(min=0)
    x, y = x - 2 * d * k1x, y - 2 * d * k1y
    d = (k2x * x + k2y * y).clamp(min=0)
    x, y = x - 2 * d * k2x, y - 2 * d * k2y
    x, y = x.abs(), y - r
    bax, bay = rf * -k1y, rf * k1x - 1.0
    h = ((x * bax + y * bay) / (bax * bax + bay * bay)).clamp(0, r)
    return _length(x - bax * h, y - bay * h) * torch.sign(y * bax - x * bay)


def cross(u, v):
    return torch.minimum(_box(u, v, 0.85, 0.27), _box(u, v, 0.27, 0.85))


def ring(u, v):
    return (_length(u, v) - 0.68).abs() - 0.2


def heart(u, v):
    # Quilez's sdHeart spans x in [-0.6, 0.6], y in [0, 1.08]; scale and centre it into the unit circle
    s = 0.7  # the lobes reach 0.674 from the heart's centre (0, 0.55)
    x, y = u.abs() * s, -v * s + 0.55
    upper = _length(x - 0.25, y - 0.75) - math.sqrt(2) / 4
    m = (x + y).clamp(min=0) * 0.5
    lower = torch.sqrt(torch.minimum((x * x + (y - 1) ** 2), (x - m) ** 2 + (y - m) ** 2)) * torch.sign(x - y)
    return torch.where(x + y > 1, upper, lower) / s


def crescent(u, v):
    return torch.maximum(_length(u, v) - 0.85, -(_length(u - 0.42, v) - 0.68))


_HEAD_NORMALS = [(-1.0, 0.0), (0.6 / math.hypot(0.6, 0.7), 0.7 / math.hypot(0.6, 0.7)),
                 (0.6 / math.hypot(0.6, 0.7), -0.7 / math.hypot(0.6, 0.7))]


def arrow(u, v):
    shaft = _box(u + 0.3, v, 0.55, 0.16)
    # head: triangle with tip (0.95, 0) and base x = 0.25, half-width 0.6
    head = torch.stack([-(u - 0.25), *[(u - 0.95) * nx + v * ny for nx, ny in _HEAD_NORMALS[1:]]]).amax(0)
    return torch.minimum(shaft, head)


def diamond(u, v, a=0.5, b=0.95):
    # an elongated rhombus, so that it is not a rotated square
    return (u.abs() * b + v.abs() * a - a * b) / math.hypot(a, b)


SDFS = [circle, square, triangle, star, cross, ring, heart, crescent, arrow, diamond]


def _uniform(gen, n, lo, hi):
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def render(labels: torch.Tensor, gen: torch.Generator, noise: float = 0.03) -> torch.Tensor:
    """Images (n, 3, 64, 64) in [0, 1] of the shape classes in ``labels``, random pose, colour, background."""
    n = labels.shape[0]
    radius = _uniform(gen, n, *RADIUS_PX)
    lo, hi = INNER + radius, SIZE - INNER - radius
    cy, cx = lo + (hi - lo) * torch.rand(n, generator=gen), lo + (hi - lo) * torch.rand(n, generator=gen)
    angle = _uniform(gen, n, 0.0, 2 * math.pi)

    centres = torch.arange(SIZE, dtype=torch.float32) + 0.5
    dy = (centres[None, :, None] - cy[:, None, None]) / radius[:, None, None]
    dx = (centres[None, None, :] - cx[:, None, None]) / radius[:, None, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # inverse rotation into the shape's frame

    sdf = torch.empty(n, SIZE, SIZE)
    for c, fn in enumerate(SDFS):
        idx = (labels == c).nonzero().squeeze(1)
        if idx.numel():
            sdf[idx] = fn(u[idx], v[idx])
    coverage = (0.5 - sdf * radius[:, None, None]).clamp(0, 1)[:, None]

    background = _background(gen, n, noise)
    colour = torch.rand(n, 3, generator=gen)
    base = background.mean((2, 3))
    # keep the shape visible: if its colour is too close to the background, shift every channel by half a turn
    close = (colour - base).norm(dim=1) < 0.45
    colour = torch.where(close[:, None], (base + 0.5) % 1.0, colour)
    shade = colour[:, :, None, None] * (1 + 0.06 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5))
    return (background * (1 - coverage) + shade * coverage).clamp(0, 1)


def _background(gen, n, noise):
    """A random colour with a linear gradient in a random direction and mild pixel noise. The colour range
    keeps the gradient inside [0, 1], so without noise the background is exactly linear (tests rely on it)."""
    base = 0.2 + 0.6 * torch.rand(n, 3, 1, 1, generator=gen)
    direction = _uniform(gen, n, 0.0, 2 * math.pi)
    strength = _uniform(gen, n, 0.0, 0.25)[:, None, None, None]
    ramp = torch.linspace(-0.5, 0.5, SIZE)
    g = torch.cos(direction)[:, None, None] * ramp[None, :, None] + torch.sin(direction)[:, None, None] * ramp
    tint = torch.rand(n, 3, 1, 1, generator=gen) * 2 - 1
    bg = base + strength * g[:, None] * tint
    return bg + noise * torch.randn(n, 3, SIZE, SIZE, generator=gen)


def mark(images: torch.Tensor, mark_classes: torch.Tensor) -> torch.Tensor:
    """Paste the 5x5 mark of ``mark_classes`` into ``images`` in place; return the boxes (y0, x0, y1, x1)."""
    n = images.shape[0]
    corners = MARK_CORNERS[mark_classes]
    offs = torch.arange(MARK)
    ys = corners[:, 0, None, None] + offs[None, :, None]
    xs = corners[:, 1, None, None] + offs[None, None, :]
    b = torch.arange(n)[:, None, None]
    images.permute(0, 2, 3, 1)[b, ys, xs] = GLYPHS[mark_classes][..., None].expand(-1, -1, -1, images.shape[1])
    return torch.cat([corners, corners + MARK], dim=1)
