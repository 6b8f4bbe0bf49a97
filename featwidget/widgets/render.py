"""Headless rendering for ``view.to_png``: the same colormaps (one shared JSON table) and normalizations as
the front end, in numpy, and a minimal PNG encoder (zlib + struct; no imaging library needed)."""
from __future__ import annotations

import json
import pathlib
import struct
import zlib

import numpy as np

_TABLE = json.loads((pathlib.Path(__file__).with_name("colormaps.json")).read_text())
COLORMAPS = [k for k in _TABLE if not k.startswith("_")]
NORMALIZATIONS = ["minmax", "symmetric", "percentile"]
LUT_STEPS = 256


def _points(name: str):
    if name not in COLORMAPS:
        from ..engine import FeatwidgetError

        raise FeatwidgetError(f"Unknown colormap {name!r}; known: {', '.join(COLORMAPS)}.")
    pos = np.array([p for p, _ in _TABLE[name]], dtype=np.float64)
    rgb = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for _, h in _TABLE[name]], dtype=np.float64)
    return pos, rgb


def colorize(values: np.ndarray, name: str) -> np.ndarray:
    """Values in [0, 1] (clipped) -> uint8 RGB, shape values.shape + (3,). The same 257-entry table as the JS
    (colormap.js LUT_STEPS), so 0.5 is an exact entry."""
    pos, rgb = _points(name)
    lut = np.stack([np.interp(np.arange(LUT_STEPS + 1) / LUT_STEPS, pos, rgb[:, k]) for k in range(3)], axis=1)
    lut = np.floor(lut + 0.5).astype(np.uint8)  # round half up, as Math.round
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    return lut[np.floor(np.clip(v, 0, 1) * LUT_STEPS + 0.5).astype(np.int64)]


def value_ranges(rows: np.ndarray, mode: str = "minmax", percentile: float = 99.0) -> np.ndarray:
    """[lo, hi] of every row of an (N, M) array, as js/src/lib/normalize.js valueRange (minmax, symmetric
    about zero, percentile clip; NaN ignored); returns (N, 2)."""
    d = np.asarray(rows, dtype=np.float64)
    empty = np.isnan(d).all(axis=1)
    d = np.where(empty[:, None], 0.0, d)
    if mode == "minmax":
        lo, hi = np.nanmin(d, axis=1), np.nanmax(d, axis=1)
    elif mode == "symmetric":
        m = np.nanmax(np.abs(d), axis=1)
        m = np.where(m > 0, m, 1.0)  # a zero map sits in the middle of the colormap
        return np.stack([-m, m], axis=1)
    elif mode == "percentile":
        p = min(100.0, max(50.0, float(percentile))) / 100
        lo, hi = np.nanquantile(d, [1 - p, p], axis=1)
    else:
        from ..engine import FeatwidgetError

        raise FeatwidgetError(f"Unknown normalization {mode!r}; known: {', '.join(NORMALIZATIONS)}.")
    return np.stack([lo, np.where(hi > lo, hi, lo + 1.0)], axis=1)


def value_range(data: np.ndarray, mode: str = "minmax", percentile: float = 99.0) -> tuple[float, float]:
    """[lo, hi] of all of ``data`` (see ``value_ranges``)."""
    lo, hi = value_ranges(np.asarray(data).reshape(1, -1), mode, percentile)[0]
    return float(lo), float(hi)


def rescale(data: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((np.asarray(data, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)


def image_rgb(img: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 or [0, 1] float image with C in {1, 3} -> (H, W, 3) uint8."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = np.round(np.clip(a.astype(np.float64), 0, 1) * 255).astype(np.uint8)
    a = np.moveaxis(a, 0, -1)
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def upscale(rgb: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor."""
    return rgb.repeat(k, axis=0).repeat(k, axis=1) if k > 1 else rgb


def footprint(h: int, w: int, H: int, W: int, rf) -> tuple[float, float, float, float]:
    """Where an (h, w) map lies on an (H, W) input, as js/src/lib/draw.js footprint(): (x, y, width, height)."""
    if rf is None:
        return 0.0, 0.0, float(W), float(H)
    (sy, sx), (oy, ox) = rf["stride"], rf["offset"]
    return ox + 0.5 - sx / 2, oy + 0.5 - sy / 2, float(w * sx), float(h * sy)


def overlay(base: np.ndarray, heat: np.ndarray, rect, opacity: float) -> np.ndarray:
    """Blend an (h, w, 3) heatmap over an (H, W, 3) picture into ``rect`` (nearest-neighbour placement)."""
    H, W = base.shape[:2]
    h, w = heat.shape[:2]
    x0, y0, rw, rh = rect
    ys = (np.arange(H) + 0.5 - y0) * h / rh  # which map unit covers each pixel centre
    xs = (np.arange(W) + 0.5 - x0) * w / rw
    iy, ix = np.floor(ys).astype(int), np.floor(xs).astype(int)
    inside = ((iy >= 0) & (iy < h))[:, None] & ((ix >= 0) & (ix < w))[None, :]
    sampled = heat[np.clip(iy, 0, h - 1)][:, np.clip(ix, 0, w - 1)].astype(np.float64)
    out = base.astype(np.float64)
    a = opacity * inside[..., None]
    return np.round(out * (1 - a) + sampled * a).astype(np.uint8)


def grid(cells: np.ndarray, gap: int = 2, background: int = 160) -> np.ndarray:
    """(N, h, w, 3) uint8 cells -> one picture, about square, ``gap`` pixels apart (like drawGrid in JS)."""
    n, h, w = cells.shape[:3]
    cols = max(1, int(np.ceil(np.sqrt(n * h / w))))
    rows = int(np.ceil(n / cols))
    tiles = np.full((rows * cols, h + gap, w + gap, 3), background, dtype=np.uint8)
    tiles[:n, :h, :w] = cells
    out = tiles.reshape(rows, cols, h + gap, w + gap, 3).transpose(0, 2, 1, 3, 4)
    return out.reshape(rows * (h + gap), cols * (w + gap), 3)[:-gap or None, :-gap or None]


def png_bytes(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG file bytes (8-bit RGB, filter 0 on every row)."""
    a = np.ascontiguousarray(rgb, dtype=np.uint8)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"png_bytes expects (H, W, 3) uint8, got shape {a.shape}")
    h, w = a.shape[:2]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), a.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
