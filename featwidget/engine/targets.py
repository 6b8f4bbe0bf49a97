"""Targets: one algebra shared by every method (gradient methods, occlusion, optimization).

A target is a value computed from a forward pass -- a logit, a probability, a hidden unit, a channel's mean,
a layer's energy -- that a method explains or maximizes. Targets add, subtract and scale like numbers
(``fw.Logit(3) - fw.Logit(5)``, ``0.5 * fw.Channel("conv2", 7)``), as Lucid's objectives do, and evaluate to
one value per sample. Class indices and channels may be per-sample (a sequence or tensor of length B).

A target declares which layers it reads (``layers``) and whether it needs the network output
(``needs_output``); the engine uses that to stop the forward pass at the deepest layer read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch

from .errors import FeatwidgetError

Index = Union[int, Sequence[int], torch.Tensor]


def _index(value: Index, batch: int, device, what: str) -> torch.Tensor:
    """``value`` as B indices on ``device`` (None: where it is -- the host for an int or a list)."""
    idx = torch.as_tensor(value, device=device).long().reshape(-1)
    if idx.numel() == 1:
        idx = idx.expand(batch)
    if idx.numel() != batch:
        raise FeatwidgetError(
            f"{what} has {idx.numel()} entries for a batch of {batch} images; give one index, or one per image."
        )
    return idx


def _pick(values: torch.Tensor, index: Index, what: str, where: str) -> torch.Tensor:
    """``values[b, index[b]]`` for every sample b, (B,); ``index`` one entry for all or one per sample.

    The range is checked where the index lives: an int or a list on the host, so that an optimization step on
    a GPU never waits for a check; only an index the user put on the GPU costs a synchronization (an
    out-of-range gather there would be a device-side assert that breaks the CUDA context)."""
    n = values.shape[1]
    if type(index) is int:  # one index for the whole batch: a column
        if not 0 <= index < n:
            raise FeatwidgetError(f"{where} {index} is out of range: valid values are 0 to {n - 1}.")
        return values[:, index]
    idx = _index(index, values.shape[0], None, what)  # an int / list stays on the host
    bad = idx[(idx < 0) | (idx >= n)]
    if bad.numel():
        raise FeatwidgetError(f"{where} {bad[0].item()} is out of range: valid values are 0 to {n - 1}.")
    return values.gather(1, idx[:, None].to(values.device))[:, 0]


class Target:
    """Base class. Subclasses implement ``evaluate(output, acts) -> (B,)``."""

    layers: tuple = ()
    needs_output: bool = False

    def evaluate(self, output, acts: dict) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, output, acts) -> torch.Tensor:
        return self.evaluate(output, acts)

    def __add__(self, other):
        return Combination.of(self) + other

    def __radd__(self, other):
        return Combination.of(self) + other

    def __sub__(self, other):
        return Combination.of(self) + (-1.0) * as_target(other)

    def __rsub__(self, other):
        return as_target(other) - self

    def __mul__(self, k):
        if isinstance(k, Target):
            raise FeatwidgetError("Targets can be scaled by numbers, not multiplied with each other.")
        return Combination(((float(k), self),))

    __rmul__ = __mul__

    def __neg__(self):
        return (-1.0) * self

    def __truediv__(self, k):
        return self * (1.0 / float(k))


@dataclass(frozen=True, eq=False)
class Combination(Target):
    terms: tuple  # ((weight, Target), ...)

    @staticmethod
    def of(t: Target) -> "Combination":
        return t if isinstance(t, Combination) else Combination(((1.0, t),))

    @property
    def layers(self):
        return tuple(dict.fromkeys(l for _, t in self.terms for l in t.layers))

    @property
    def needs_output(self):
        return any(t.needs_output for _, t in self.terms)

    def __add__(self, other):
        other = Combination.of(as_target(other))
        return Combination(self.terms + other.terms)

    def __mul__(self, k):
        if isinstance(k, Target):
            raise FeatwidgetError("Targets can be scaled by numbers, not multiplied with each other.")
        return Combination(tuple((w * float(k), t) for w, t in self.terms))

    __rmul__ = __mul__

    def evaluate(self, output, acts):
        return sum(w * t.evaluate(output, acts) for w, t in self.terms)

    def __repr__(self):
        return " + ".join(f"{w:g}*{t!r}" for w, t in self.terms)


@dataclass(frozen=True, eq=False)
class _ClassScore(Target):
    """A score of class ``c`` read off the network output after ``scores`` (identity, softmax, ...)."""

    c: Index
    needs_output = True

    @staticmethod
    def scores(output: torch.Tensor) -> torch.Tensor:
        return output

    def evaluate(self, output, acts):
        return _pick(self.scores(output), self.c, "Class index", "Class index")


class Logit(_ClassScore):
    """The raw score of class ``c`` (Simonyan et al. 2014 recommend it over the softmax for attribution)."""


class Prob(_ClassScore):
    """Softmax probability of class ``c``."""

    @staticmethod
    def scores(output):
        return torch.softmax(output, dim=1)


class LogProb(_ClassScore):
    """Log-softmax of class ``c``: raising it also pushes the other classes down (Nguyen et al. 2019)."""

    @staticmethod
    def scores(output):
        return torch.log_softmax(output, dim=1)


@dataclass(frozen=True, eq=False)
class Predicted(Target):
    """The logit of the class the network predicts for each image (what ``target=None`` means)."""

    needs_output = True

    def evaluate(self, output, acts):
        return output.gather(1, output.detach().argmax(1, keepdim=True))[:, 0]

    def __repr__(self):
        return "Predicted()"


def _act(acts: dict, layer: str) -> torch.Tensor:
    return acts[layer]


@dataclass(frozen=True, eq=False)
class Neuron(Target):
    """One unit of a layer: channel ``channel`` at (y, x); the spatial centre when y, x are None."""

    layer: str
    channel: Index
    y: int | None = None
    x: int | None = None

    @property
    def layers(self):
        return (self.layer,)

    def evaluate(self, output, acts):
        a = _act(acts, self.layer)
        where = f"Channel of layer {self.layer!r}"
        if a.dim() == 2:
            return _pick(a, self.channel, "Channel index", where)
        if a.dim() != 4:
            raise FeatwidgetError(f"Neuron needs a (B, C) or (B, C, H, W) layer; {self.layer!r} gives {tuple(a.shape)}.")
        h, w = a.shape[2:]
        y = h // 2 if self.y is None else self.y
        x = w // 2 if self.x is None else self.x
        if not (0 <= y < h and 0 <= x < w):
            raise FeatwidgetError(f"Position ({y}, {x}) is outside layer {self.layer!r} of size {h}x{w}.")
        return _pick(a[:, :, y, x], self.channel, "Channel index", where)


@dataclass(frozen=True, eq=False)
class Channel(Target):
    """The mean activation of one channel over all positions."""

    layer: str
    channel: Index

    @property
    def layers(self):
        return (self.layer,)

    def evaluate(self, output, acts):
        a = _act(acts, self.layer)
        per_channel = a.flatten(2).mean(2) if a.dim() > 2 else a
        return _pick(per_channel, self.channel, "Channel index", f"Channel of layer {self.layer!r}")


@dataclass(frozen=True, eq=False)
class LayerNorm(Target):
    """Mean squared activation of a whole layer: the DeepDream objective (Mordvintsev et al. 2015)."""

    layer: str

    @property
    def layers(self):
        return (self.layer,)

    def evaluate(self, output, acts):
        a = _act(acts, self.layer)
        return a.flatten(1).pow(2).mean(1)


def as_target(target) -> Target:
    """``None`` -> predicted-class logit; ``int`` / sequence / tensor of ints -> ``Logit``."""
    if target is None:
        return Predicted()
    if isinstance(target, Target):
        return target
    if isinstance(target, bool):
        raise FeatwidgetError("A target must be a class index or an fw target such as fw.Logit(3), not a bool.")
    if isinstance(target, (int, Sequence, torch.Tensor)) and not isinstance(target, str):
        return Logit(target)
    raise FeatwidgetError(
        f"Cannot use {target!r} as a target: give a class index, None (the predicted class), or an fw target "
        f"such as fw.Logit(3), fw.Channel('layer', 5) or fw.Logit(3) - fw.Logit(5)."
    )
