"""``mode="approximate"``: Krypton's two approximations (Nakandala et al. 2019, section 4).

1. Projective-field threshold ``tau``: a recomputed region never grows beyond ``tau`` of its map's height and
   width (see ``incremental``); the change outside it is ignored, i.e. read from the unoccluded activations.
2. Adaptive drill-down: evaluate every other window in each direction first (about a quarter of them),
   interpolate the grid bilinearly for the rest, then evaluate (under ``tau``) only the fraction ``refine`` of
   the remaining windows whose interpolated drop is largest in magnitude -- where the map has structure.

Both trade accuracy for speed; ``benchmarks/occlusion.py`` reports the error against exact mode.
"""
from __future__ import annotations

import numpy as np
import torch

TAU = 0.5
REFINE = 0.25


def coarse_axis(n: int) -> np.ndarray:
    """Indices kept on one axis: every other window, always including the last (the border-flush one)."""
    keep = list(range(0, n, 2))
    if keep[-1] != n - 1:
        keep.append(n - 1)
    return np.array(keep)


def interpolation(n: int, keep: np.ndarray) -> torch.Tensor:
    """(n, len(keep)) matrix of linear interpolation weights from the kept indices to all indices."""
    eye = np.eye(len(keep))
    return torch.tensor(np.stack([np.interp(np.arange(n), keep, e) for e in eye], axis=1), dtype=torch.float32)


def coarse_windows(n_y: int, n_x: int) -> torch.Tensor:
    ky, kx = coarse_axis(n_y), coarse_axis(n_x)
    return torch.tensor((ky[:, None] * n_x + kx[None, :]).reshape(-1))


def planned(n_y: int, n_x: int, refine: float) -> int:
    """How many windows drill-down evaluates."""
    n_coarse = len(coarse_windows(n_y, n_x))
    return n_coarse + int(round(refine * (n_y * n_x - n_coarse)))


def drill_down(evaluate, grid: torch.Tensor, done: torch.Tensor, refine: float, publish=None) -> None:
    """Fill ``grid`` (B, nY, nX) using ``evaluate(window_ids)``, which writes exact values into ``grid`` and
    marks ``done``; interpolated estimates stay where no window was evaluated. ``publish()`` is called once the
    interpolated coarse grid is complete (the first full-size picture)."""
    n_y, n_x = grid.shape[1:]
    coarse = coarse_windows(n_y, n_x)
    evaluate(coarse)
    ky, kx = coarse_axis(n_y), coarse_axis(n_x)
    wy, wx = interpolation(n_y, ky).to(grid), interpolation(n_x, kx).to(grid)
    estimate = wy @ grid[:, ky][:, :, kx] @ wx.T
    grid.copy_(torch.where(done, grid, estimate))
    if publish is not None:
        publish()
    n_refine = planned(n_y, n_x, refine) - len(coarse)
    if n_refine > 0:
        score = estimate.abs().amax(0).reshape(-1).masked_fill(done.reshape(-1), -1.0)
        evaluate(score.topk(n_refine).indices.sort().values)
