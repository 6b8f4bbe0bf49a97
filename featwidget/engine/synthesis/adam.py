"""Adam (Kingma & Ba 2015) for the few tensors of an image parameterization.

The update is torch's own (``torch.optim.adam.adam``, the fused kernel where the device has one), so the
arithmetic is exactly ``torch.optim.Adam``'s; what this class leaves out is the optimizer object's per-step
bookkeeping (step hooks, graph-capture checks, grouping tensors by device, ``.grad`` attributes), about 0.1 ms
a step: more than the update itself on a 128 px image. ``lr`` may be changed between steps (a live slider).
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
        mode = {"fused": True} if fused else {"foreach": False}
        _adam(self.tensors, grads, self._avg, self._avg_sq, [], self._count, amsgrad=False, beta1=BETAS[0],
              beta2=BETAS[1], lr=self.lr, weight_decay=0.0, eps=EPS, maximize=False, **mode)
