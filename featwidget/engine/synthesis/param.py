"""Image parameterizations (Olah et al. 2017): what the optimizer actually moves.

- ``Pixel``: one free value per pixel and channel.
- ``Fourier``: the image's 2-D spectrum, scaled by 1/frequency so that every frequency moves at a similar
  rate; plain pixel gradients are dominated by high frequencies, this preconditioning is what makes the
  pictures clean.
- ``Generator``: the latent code of a small trained decoder (DGN-AM, Nguyen et al. 2016): only images the
  generator can draw are reachable, a strong learned prior.

With ``decorrelate=True`` (3 channels) the free values live in a decorrelated colour space (the square root of
ImageNet's colour covariance, as in Lucid) and a sigmoid maps to [0, 1]. Every parameterization can re-encode
an image (``set_image``): that is how octaves, blur / clip operations and a mid-run switch of parameterization
keep the current picture.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..errors import FeatwidgetError

_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR = _SVD_SQRT / _SVD_SQRT.norm(dim=0).max()
COLOR_INV = torch.linalg.inv(COLOR)
_EPS = 1e-4
_FOURIER_GAIN = 4.0  # Lucid's "magic" divisor: keeps the initial image's contrast low


def _logit(img: torch.Tensor) -> torch.Tensor:
    img = img.clamp(_EPS, 1 - _EPS)
    return torch.log(img) - torch.log1p(-img)


def _mix(matrix: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    # (C, C) @ (B, C, H*W): a matrix product with the pixels as the long, contiguous dimension runs at about
    # twice the speed of einsum's (B*H*W, C) x (C, C) layout; for one image a plain mm skips the batched
    # product's overhead (a quarter of the time at 128 px). (A 1x1 convolution is no faster on CPU, and cuDNN
    # would run it in TF32: re-encoding an image would no longer be exact.)
    if t.shape[0] == 1:
        return torch.mm(matrix, t.reshape(t.shape[1], -1)).view_as(t)
    return torch.matmul(matrix, t.flatten(2)).view_as(t)


class Param:
    kind = ""

    def __init__(self, batch: int, channels: int, size: tuple, decorrelate: bool, device):
        self.batch, self.channels, self.size = batch, channels, tuple(size)
        self.decorrelate = bool(decorrelate) and channels == 3
        self.device = device
        self._color = COLOR.to(device)
        self._color_inv = COLOR_INV.to(device)

    tensors: list

    def image(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_image(self, img: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self):
        """``(image, saved)``: the image as a plain tensor (no graph) and what ``pullback`` needs. An
        optimization step backpropagates through the network with autograd and through the image with
        ``pullback``: a parameterization with a hand-written gradient then costs no graph at all."""
        img = self.image()
        return img.detach(), img

    def pullback(self, saved, grad: torch.Tensor) -> list:
        """The gradients of ``tensors`` given the gradient ``grad`` of the image from ``decode``."""
        return list(torch.autograd.grad(saved, self.tensors, grad))

    # colour space -> [0, 1]
    def _to_rgb(self, t: torch.Tensor) -> torch.Tensor:
        if self.decorrelate:
            t = _mix(self._color, t)
        return torch.sigmoid(t)

    def _from_rgb(self, img: torch.Tensor) -> torch.Tensor:
        t = _logit(img)
        if self.decorrelate:
            t = _mix(self._color_inv, t)
        return t


class Pixel(Param):
    kind = "pixel"

    def __init__(self, batch, channels, size, decorrelate, device, rng):
        super().__init__(batch, channels, size, decorrelate, device)
        raw = torch.randn(batch, channels, *self.size, generator=rng) * 0.01
        self.raw = raw.to(device).requires_grad_(True)
        self.tensors = [self.raw]

    def image(self):
        return self._to_rgb(self.raw)

    @torch.no_grad()
    def set_image(self, img):
        self.raw.copy_(self._from_rgb(img))


def _frequencies(h: int, w: int) -> torch.Tensor:
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


@functools.lru_cache(maxsize=16)
def _spectrum_scale(h: int, w: int, decay: float, device) -> torch.Tensor:
    """1 / frequency (floored at the lowest frequency) ** decay, for the (H, W // 2 + 1) real spectrum."""
    return (1.0 / _frequencies(h, w).clamp(min=1.0 / max(h, w)) ** decay).to(device)


def _hermitian_weight(weight: torch.Tensor, w: int) -> torch.Tensor:
    """``weight`` with the half-spectrum columns that stand for two columns of the full spectrum doubled.

    The gradient of irfft2 is rfft2 of the incoming gradient with columns 1 .. w - (w // 2 + 1) doubled (each
    of them is also its mirror image's conjugate); folding that into the weight makes it one multiply."""
    double = torch.ones(w // 2 + 1, weight.shape[-1], device=weight.device, dtype=weight.dtype)
    double[1:w - (w // 2 + 1) + 1] = 2.0
    return weight * double


def _fourier_image(spectrum, weight, color, size) -> torch.Tensor:
    """sigmoid(colour @ irfft2(spectrum * weight))."""
    t = torch.fft.irfft2(torch.view_as_complex(spectrum * weight), s=size, norm="ortho")
    if color is not None:
        t = _mix(color, t)
    return t.sigmoid_()  # t is this function's own temporary


def _fourier_pullback(grad, img, back_weight, color) -> torch.Tensor:
    """The gradient of ``_fourier_image`` w.r.t. the spectrum, given the image's gradient ``grad``: exactly
    sigmoid', colour^T, rfft2 and one multiply by the precomputed ``back_weight``."""
    g = torch.ops.aten.sigmoid_backward(grad, img)
    if color is not None:
        g = _mix(color.T, g)
    return torch.view_as_real(torch.fft.rfft2(g, norm="ortho")).mul_(back_weight)


class _FourierImage(torch.autograd.Function):
    """``_fourier_image`` with ``_fourier_pullback`` as its backward.

    Autograd would run the same four operations backwards, plus a complex multiply of half the spectrum (the
    Hermitian doubling), complex view bookkeeping and one graph node per operation."""

    @staticmethod
    def forward(ctx, spectrum, weight, back_weight, color, size):
        img = _fourier_image(spectrum, weight, color, size)
        ctx.save_for_backward(img, back_weight, color)
        ctx.has_color = color is not None
        return img

    @staticmethod
    def backward(ctx, grad):
        img, back_weight, color = ctx.saved_tensors
        return _fourier_pullback(grad, img, back_weight, color if ctx.has_color else None), None, None, None, None


class Fourier(Param):
    kind = "fourier"

    def __init__(self, batch, channels, size, decorrelate, device, rng, decay: float = 1.0):
        super().__init__(batch, channels, size, decorrelate, device)
        h, w = self.size
        self.scale = _spectrum_scale(h, w, float(decay), torch.device(device))
        # The scale and the gain folded into one real factor per (frequency, re/im): one multiply per step.
        # Stored at full size: broadcasting over the last dimension of 2 runs at a tenth of the speed.
        self._weight = (self.scale / _FOURIER_GAIN).unsqueeze(-1).expand(h, w // 2 + 1, 2).contiguous()
        self._back_weight = _hermitian_weight(self._weight, w)
        spec = torch.randn(batch, channels, h, w // 2 + 1, 2, generator=rng) * 0.01
        self.spectrum = spec.to(device).requires_grad_(True)
        self.tensors = [self.spectrum]

    def image(self):
        color = self._color if self.decorrelate else None
        return _FourierImage.apply(self.spectrum, self._weight, self._back_weight, color, self.size)

    def decode(self):
        with torch.no_grad():
            img = _fourier_image(self.spectrum, self._weight, self._color if self.decorrelate else None, self.size)
        return img, img

    def pullback(self, img, grad):
        return [_fourier_pullback(grad, img, self._back_weight, self._color if self.decorrelate else None)]

    @torch.no_grad()
    def set_image(self, img):
        z = torch.view_as_real(torch.fft.rfft2(self._from_rgb(img), norm="ortho"))
        self.spectrum.copy_(z / self._weight)


class Generator(Param):
    """The latent code of ``featwidget.demo.generator`` (or any module with ``decode``/``encode``)."""

    kind = "generator"

    def __init__(self, batch, channels, size, decorrelate, device, rng, model=None):
        super().__init__(batch, channels, size, False, device)
        if model is None:
            from ...demo.generator import load

            model = load("shapes")
        self.model = model.to(device).eval().requires_grad_(False)
        z = torch.randn(batch, self.model.latent, generator=rng)
        self.code = z.to(device).requires_grad_(True)
        self.tensors = [self.code]

    def _fit(self, img):
        if tuple(img.shape[-2:]) != self.size:
            img = F.interpolate(img, size=self.size, mode="bilinear", align_corners=False)
        if self.channels != img.shape[1]:
            img = img.mean(1, keepdim=True).expand(-1, self.channels, -1, -1) if self.channels in (1, 3) else img
        if img.shape[1] != self.channels:
            raise FeatwidgetError(
                f"The generator draws {img.shape[1]}-channel images but the network takes {self.channels}; "
                f"use param='fourier' or 'pixel' for this network."
            )
        return img

    def image(self):
        return self._fit(self.model.decode(self.code))

    @torch.no_grad()
    def set_image(self, img):
        out = self.model.out_size
        if img.shape[1] != self.model.channels:
            img = img.mean(1, keepdim=True).expand(-1, self.model.channels, -1, -1)
        img = F.interpolate(img, size=out, mode="bilinear", align_corners=False)
        self.code.copy_(self.model.encode(img))


PARAMS = {"pixel": Pixel, "fourier": Fourier, "generator": Generator}


def make(kind: str, batch: int, channels: int, size: tuple, decorrelate: bool, device, rng,
         image: torch.Tensor | None = None, generator=None, perturb: bool = False) -> Param:
    """A parameterization of ``kind`` holding ``image`` (or its own small random init). ``perturb`` keeps that
    random init on top of ``image``: a flat start (a gray image) would otherwise sit where every ReLU is off
    and no gradient flows."""
    if kind not in PARAMS:
        raise FeatwidgetError(f"Unknown parameterization {kind!r}; use one of: {', '.join(PARAMS)}.")
    extra = {"model": generator} if kind == "generator" else {}
    p = PARAMS[kind](batch, channels, size, decorrelate, device, rng, **extra)
    if image is not None:
        init = [t.detach().clone() for t in p.tensors]
        p.set_image(image)
        if perturb and kind != "generator":
            with torch.no_grad():
                for t, r in zip(p.tensors, init):
                    t.add_(r)
    return p
