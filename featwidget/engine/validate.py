"""Input checks shared by every engine entry point. Messages name the problem and the fix."""
from __future__ import annotations

import numpy as np
import torch

from .errors import FeatwidgetError


def as_batch(x, input_size: tuple | None = None) -> torch.Tensor:
    """Check that ``x`` is a float batch (B, C, H, W) of finite pixels in [0, 1] matching ``input_size``."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise FeatwidgetError(f"Expected a torch.Tensor batch of images (B, C, H, W), got {type(x).__name__}.")
    if not x.is_floating_point():
        raise FeatwidgetError(
            f"Images have integer dtype {x.dtype}; featwidget expects floats in [0, 1]. "
            f"Convert with x.float() / 255 (for uint8 images)."
        )
    if x.dim() == 3:
        raise FeatwidgetError(
            f"Got a single image of shape {tuple(x.shape)}; engine functions take a batch (B, C, H, W). "
            f"Add the batch dimension with x[None] or x.unsqueeze(0)."
        )
    if x.dim() != 4:
        raise FeatwidgetError(f"Expected a batch of images (B, C, H, W), got shape {tuple(x.shape)}.")
    if x.shape[0] == 0:
        raise FeatwidgetError("The batch is empty (B = 0): pass at least one image.")
    if input_size is not None:
        c, h, w = input_size
        if x.shape[1] != c:
            raise FeatwidgetError(
                f"The network expects {c} channel(s) but the images have {x.shape[1]}. "
                + ("Convert grayscale to RGB with x.expand(-1, 3, -1, -1)." if c == 3 and x.shape[1] == 1 else
                   "Convert RGB to grayscale with x.mean(1, keepdim=True)." if c == 1 and x.shape[1] == 3 else
                   "Pass images with the right number of channels, or fw.wrap(..., input_size=...).")
            )
        if tuple(x.shape[2:]) != (h, w):
            raise FeatwidgetError(
                f"The network was wrapped for {h}x{w} images but got {x.shape[2]}x{x.shape[3]}. Resize with "
                f"torch.nn.functional.interpolate(x, size=({h}, {w}), mode='bilinear'), or wrap the model with "
                f"fw.wrap(model, input_size=({c}, {x.shape[2]}, {x.shape[3]}))."
            )
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        n_bad = int((~finite).sum())
        raise FeatwidgetError(
            f"The images contain {n_bad} NaN or infinite value(s). Clean them first, e.g. "
            f"torch.nan_to_num(x, nan=0.0).clamp(0, 1)."
        )
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise FeatwidgetError(
            f"Pixel values range over [{lo:.3g}, {hi:.3g}], but featwidget expects images in [0, 1] and "
            f"normalizes them itself. Pass un-normalized images (x.clamp(0, 1) if the overshoot is rounding), "
            f"and give the normalization to fw.wrap(model, mean=..., std=...)."
        )
    return x


def positive(name: str, value, allow_zero: bool = False):
    if value is None or not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        need = "zero or more" if allow_zero else "more than zero"
        raise FeatwidgetError(f"{name} must be {need}, got {value!r}.")
    return value
