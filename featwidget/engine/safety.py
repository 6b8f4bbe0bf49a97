"""The model-safety contract (DESIGN.md section 4).

``preserved(module)`` is the one context manager every engine function runs under. For the duration of the
call it puts the module in eval mode (so BatchNorm running statistics never move and dropout is off) and
freezes the parameters (gradients are taken w.r.t. the input only; trainable parameters would cost 25-35 %
per step for nothing). On exit -- return, exception or cancel -- it restores every submodule's ``training``
flag and every parameter's ``requires_grad``, and removes any hook that appeared during the call.

``snapshot`` / ``assert_unchanged`` are the matching test helper: they record hooks, flags, requires_grad,
parameter and buffer values and ``.grad`` and compare them afterwards.
"""
from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)

# Engine calls on one model may overlap (a view's worker and the kernel thread, or two views): the first call
# in sets the flags, the last one out restores them. Holding a lock for a whole call instead made the kernel
# wait for a view's long computation. What overlapping calls must not share -- module hooks -- is per thread
# (``own_thread``); autograd graphs and TorchFunctionModes are per thread already.
_holds: "weakref.WeakKeyDictionary[nn.Module, _Hold]" = weakref.WeakKeyDictionary()
_holds_guard = threading.Lock()


class _Hold:
    """The flags a model had when the first of the overlapping engine calls on it began."""

    __slots__ = ("count", "modules", "params", "training", "grads", "first_hook")

    def __init__(self, module: nn.Module, eval_mode: bool, freeze: bool):
        self.count = 0
        self.first_hook = RemovableHandle.next_id
        self.modules, self.params = _tree(module)
        self.training = [m.__dict__["training"] for m in self.modules]
        self.grads = [p.requires_grad for p in self.params]
        if eval_mode:
            for m, flag in zip(self.modules, self.training):
                if flag:
                    m.__dict__["training"] = False
        if freeze:
            for p, flag in zip(self.params, self.grads):
                if flag:
                    p.requires_grad_(False)

    def release(self) -> None:
        for m, flag in zip(self.modules, self.training):
            if m.__dict__["training"] is not flag:
                m.__dict__["training"] = flag
        for p, flag in zip(self.params, self.grads):
            if p.requires_grad is not flag:
                p.requires_grad_(flag)
        # Backstop: a hook left behind by an interrupted call (e.g. KeyboardInterrupt between register and
        # the handle's remove) is dropped here so the user's model never accumulates featwidget hooks.
        # Nothing was registered anywhere if the handle counter did not move.
        if RemovableHandle.next_id != self.first_hook:
            _drop_hooks_since(self.modules, self.first_hook)


def own_thread(hook):
    """A module hook that acts only on forward passes of the thread that registered it: another engine call
    may run the same model on another thread meanwhile (see ``preserved``)."""
    owner = threading.get_ident()

    def guarded(*args, **kwargs):
        if threading.get_ident() == owner:
            return hook(*args, **kwargs)
        return None

    return guarded


def _hook_keys(module: nn.Module) -> dict[tuple[str, str], set]:
    keys = {}
    for name, sub in module.named_modules(remove_duplicate=False):
        for attr in _HOOK_DICTS:
            d = getattr(sub, attr, None)
            if d:
                keys[(name, attr)] = set(d.keys())
    return keys


# The module hooks engine code registers (forward and backward, pre or post), keyed by the id of the hook's
# RemovableHandle; the *_with_kwargs / *_always_called dicts hold some of the same ids as flags.
_CALL_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_FLAG_DICTS = ("_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")


def _tree(module: nn.Module):
    """Every submodule and every parameter once (as ``modules()`` / ``parameters()``), in one walk over
    ``__dict__``: ``named_modules`` builds a name string per module and ``parameters()`` walks the tree a
    second time, which together cost more than a forward pass of a small model."""
    modules, params = [], []
    seen_m, seen_p = set(), set()
    stack = [module]
    while stack:
        m = stack.pop()
        if id(m) in seen_m:
            continue
        seen_m.add(id(m))
        modules.append(m)
        d = m.__dict__
        for p in d["_parameters"].values():
            if p is not None and id(p) not in seen_p:
                seen_p.add(id(p))
                params.append(p)
        stack.extend(c for c in d["_modules"].values() if c is not None)
    return modules, params


def _drop_hooks_since(modules, first_id: int) -> None:
    """Remove every module hook registered with a handle id of ``first_id`` or more (handle ids only grow).
    Runs after every call that registered any hook -- graph node hooks of a backward rule too -- so it reads
    only the four dicts of call hooks."""
    for m in modules:
        d = m.__dict__
        for attr in _CALL_HOOK_DICTS:
            h = d.get(attr)
            if h:
                for k in [k for k in h if k >= first_id]:
                    del h[k]
                    for flags in _FLAG_DICTS:
                        f = d.get(flags)
                        if f:
                            f.pop(k, None)


@contextmanager
def preserved(module: nn.Module, eval_mode: bool = True, freeze: bool = True):
    """Run a block of engine code on ``module`` and leave the module exactly as it was found.

    Engine calls on a small model take a few milliseconds, so this bookkeeping touches only what it must
    change: flags are written through ``__dict__`` (``nn.Module.__setattr__`` costs more than a small conv),
    and hooks are told apart by their handle ids instead of a snapshot of every hook dict. Calls that overlap
    on one model (from several threads, or nested) share one hold: flags are set once and restored when the
    last call ends, so no call waits for another."""
    with _holds_guard:
        hold = _holds.get(module)
        if hold is None or hold.count == 0:
            hold = _holds[module] = _Hold(module, eval_mode, freeze)
        hold.count += 1
    try:
        yield module
    finally:
        with _holds_guard:
            hold.count -= 1
            if hold.count == 0:
                hold.release()


@dataclass
class ModuleSnapshot:
    hooks: dict
    training: dict
    requires_grad: dict
    params: dict
    buffers: dict
    grads: dict = field(default_factory=dict)


def snapshot(module: nn.Module) -> ModuleSnapshot:
    """Record everything the safety contract promises to keep."""
    return ModuleSnapshot(
        hooks=_hook_keys(module),
        training={n: m.training for n, m in module.named_modules()},
        requires_grad={n: p.requires_grad for n, p in module.named_parameters()},
        params={n: p.detach().clone() for n, p in module.named_parameters()},
        buffers={n: b.detach().clone() for n, b in module.named_buffers()},
        grads={n: (None if p.grad is None else p.grad.detach().clone()) for n, p in module.named_parameters()},
    )


def assert_unchanged(module: nn.Module, snap: ModuleSnapshot) -> None:
    """Raise AssertionError naming the first thing that differs from ``snap``."""
    now = snapshot(module)
    assert now.hooks == snap.hooks, f"hooks changed: {snap.hooks} -> {now.hooks}"
    for n, flag in snap.training.items():
        assert now.training[n] == flag, f"training flag of {n or '<root>'} changed to {now.training[n]}"
    for n, flag in snap.requires_grad.items():
        assert now.requires_grad[n] == flag, f"requires_grad of {n} changed to {now.requires_grad[n]}"
    for n, v in snap.params.items():
        assert torch.equal(now.params[n], v), f"parameter {n} changed"
    for n, v in snap.buffers.items():
        assert torch.equal(now.buffers[n], v), f"buffer {n} changed (BatchNorm statistics moved?)"
    for n, g in snap.grads.items():
        h = now.grads[n]
        assert (g is None and h is None) or (g is not None and h is not None and torch.equal(g, h)), (
            f".grad of parameter {n} was written"
        )
