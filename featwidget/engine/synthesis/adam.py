"""Adam (Kingma & Ba 2015) for the few tensors of an image parameterization.

The update is torch's own fused kernel (``torch._fused_adam_``, what ``torch.optim.Adam(fused=True)`` runs;
``torch.optim.adam.adam``'s plain loop where the device has no fused kernel), so the arithmetic is exactly
``torch.optim.Adam``'s; what this class leaves out is the optimizer's per-step bookkeeping (step hooks,
graph-capture checks, argument checks, grouping tensors by device and dtype -- they all share one here --,
``.grad`` attributes), about 0.15 ms a step: more than the update itself on a 128 px image. ``lr`` may be
changed between steps (a live slider).
"""
from __future__ import annotations

import torch
from torch.optim.adam import adam as _adam

BETAS = (0.9, 0.999)
EPS = 1e-8


class Adam:
    def __init__(self, tensors: list, lr: float):
        self.tensors = list(tensors)
        self.lr = lr
        self._avg = [torch.zeros_like(t) for t in self.tensors]
        self._avg_sq = [torch.zeros_like(t) for t in self.tensors]
        # the fused kernel keeps the step count on the tensors' device, so stepping never waits for it
        self._count = [torch.zeros((), dtype=torch.float32, device=t.device) for t in self.tensors]
        self._fused = None  # decided by the first step: whether this device and dtype have the fused kernel

    @torch.no_grad()
    def step(self, grads) -> None:
        """One update of every tensor with its gradient (in the order of ``tensors``)."""
        grads = list(grads)
        if self._fused is None:
            try:
                self._update(grads, fused=True)
                self._fused = True
                return
            except (RuntimeError, TypeError):  # no fused kernel here: torch's plain loop, from a fresh state
                self._fused = False
                self._avg = [torch.zeros_like(t) for t in self.tensors]
                self._avg_sq = [torch.zeros_like(t) for t in self.tensors]
                self._count = [torch.zeros((), dtype=torch.float32) for _ in self.tensors]
        self._update(grads, fused=self._fused)

    def _update(self, grads, fused: bool) -> None:
        if fused:  # the two calls torch.optim.adam's fused path makes for one device and dtype
            torch._foreach_add_(self._count, 1)
            torch._fused_adam_(self.tensors, grads, self._avg, self._avg_sq, [], self._count, amsgrad=False,
                               lr=self.lr, beta1=BETAS[0], beta2=BETAS[1], weight_decay=0.0, eps=EPS,
                               maximize=False)
            return
        _adam(self.tensors, grads, self._avg, self._avg_sq, [], self._count, amsgrad=False, beta1=BETAS[0],
              beta2=BETAS[1], lr=self.lr, weight_decay=0.0, eps=EPS, maximize=False, foreach=False)
