"""Image operations shared by several method families (occlusion fills, IG baselines, synthesis regularizers)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Separable Gaussian blur of every channel of a batch (B, C, H, W).

    The kernel reaches ``ceil(truncate * sigma)`` pixels, capped by the image size; reflected borders keep the
    border pixels unbiased (zero padding would darken them). ``sigma <= 0`` returns a copy.
    """
    radius = min(max(1, math.ceil(truncate * sigma)), x.shape[-1] - 1, x.shape[-2] - 1)
    if sigma <= 0 or radius < 1:
        return x.clone()
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
