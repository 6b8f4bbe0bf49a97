"""A byte-bounded LRU cache of layer activations.

Moving the layer or channel slider must not re-run the network: activations of an input are kept, keyed by
a fingerprint of the input *and* of the weights (parameter version counters move whenever an optimizer
updates them in place, so a model being trained never serves stale activations). The bound is in bytes
(default 256 MiB, ``fw.wrap(..., cache_bytes=...)``); least recently used entries are dropped first, and a
single tensor larger than the bound is simply not cached.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch

DEFAULT_CACHE_BYTES = 256 * 2**20


def fingerprint(x: torch.Tensor) -> str:
    data = x.detach().to("cpu", torch.float32).contiguous().numpy()
    h = hashlib.blake2b(data.tobytes(), digest_size=16)
    h.update(str(tuple(x.shape)).encode())
    h.update(str(x.device).encode())
    return h.hexdigest()


def weights_version(module: torch.nn.Module) -> tuple:
    return tuple(p._version for p in module.parameters()) + tuple(b._version for b in module.buffers())


class ActivationCache:
    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.max_bytes = int(max_bytes)
        self._items: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key):
        with self._lock:
            t = self._items.get(key)
            if t is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return t

    def put(self, key, tensor: torch.Tensor) -> None:
        size = tensor.element_size() * tensor.nelement()
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.element_size() * old.nelement()
            self._items[key] = tensor
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, t = self._items.popitem(last=False)
                self._bytes -= t.element_size() * t.nelement()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
