"""``Settings``: everything an optimization reads at every step, kept in one mutable object.

``fw.maximize(..., settings=s)`` re-reads ``s`` before each step, so ``s.set("tv", 0.3)``, ``s.lr = 0.02`` or
``s.param = "pixel"`` from another thread (a view's slider) takes effect at the next step without a restart.
Without ``settings=`` the keyword arguments of ``fw.maximize`` build one.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

from ..errors import FeatwidgetError
from . import transforms as T
from .knobs import Knob
from .param import PARAMS
from .regularizers import REGULARIZERS


def _unknown(kind: str, name, known) -> FeatwidgetError:
    close = difflib.get_close_matches(str(name), list(known), n=2, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return FeatwidgetError(f"Unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(known)}.")


def knobs(spec, table: dict, kind: str, size: int | None = None) -> dict:
    """``{name: Knob}`` from None, a dict of names to numbers or knobs, a list of knobs, or "standard"."""
    if spec is None or spec is False:
        return {}
    if isinstance(spec, str):
        if kind == "transform" and spec == "standard":
            return T.standard(size or 224)
        raise FeatwidgetError(f"Give {kind}s as a dict such as {{'{next(iter(table))}': 1.0}}, a list, or None; got {spec!r}.")
    by_class = {cls: name for name, cls in table.items()}
    out = {}
    items = spec.items() if isinstance(spec, dict) else [(None, k) for k in spec]
    for name, v in items:
        if isinstance(v, Knob):
            key = by_class.get(type(v))
            if key is None or (name is not None and name != key):
                raise FeatwidgetError(f"{type(v).__name__} is not a {kind} for {name or 'this list'!r}; "
                                      f"known {kind}s: {', '.join(table)}.")
            out[key] = v
        elif name is None:
            raise FeatwidgetError(f"A list of {kind}s must hold {kind} objects (e.g. fw.synthesis.TV(0.1)); got {v!r}.")
        elif name not in table:
            raise _unknown(kind, name, table)
        else:
            out[name] = table[name](v)
    return out


# Adam step sizes that work for each parameterization: pixel logits saturate quickly, a generator code
# (unit Gaussian) needs larger steps to travel.
LR = {"fourier": 0.05, "pixel": 0.02, "generator": 0.1}


@dataclass
class Settings:
    lr: float | None = None  # None: the parameterization's own default (LR)
    param: str = "fourier"
    decorrelate: bool = True
    noise: float = 0.0
    regularizers: dict = field(default_factory=dict)
    transforms: dict = field(default_factory=dict)
    preview_every: int = 8

    def __setattr__(self, name, v):
        if name == "lr" and v is not None and not _number(v, 0.0, strict=True):
            raise FeatwidgetError(f"The learning rate lr must be a number above 0, got {v!r}; try lr=0.05.")
        if name == "noise" and not _number(v, 0.0, strict=False):
            raise FeatwidgetError(f"noise is the standard deviation of the Langevin noise and must be 0 or more, got {v!r}.")
        if name == "param" and v not in PARAMS:
            raise _unknown("parameterization", v, PARAMS)
        if name == "preview_every" and not (isinstance(v, int) and v >= 1):
            raise FeatwidgetError(f"preview_every must be an integer of at least 1, got {v!r}.")
        if name in ("lr", "noise") and v is not None:
            v = float(v)
        object.__setattr__(self, name, v)

    @property
    def step_size(self) -> float:
        return LR[self.param] if self.lr is None else self.lr

    def set(self, name: str, value) -> None:
        """Set ``lr``, ``noise``, ``param``, ``decorrelate``, or the ``value`` of a regularizer / transform by its
        name (created if it is not there yet)."""
        if name in ("lr", "noise", "param", "decorrelate", "preview_every"):
            setattr(self, name, value)
            return
        for table, current in ((REGULARIZERS, self.regularizers), (T.TRANSFORMS, self.transforms)):
            if name in table:
                if name in current:
                    current[name].value = value
                else:
                    current[name] = table[name](value)
                return
        raise _unknown("setting", name, ["lr", "noise", "param", "decorrelate", *REGULARIZERS, *T.TRANSFORMS])


def _number(v, lo: float, strict: bool) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return not isinstance(v, bool) and math.isfinite(f) and (f > lo if strict else f >= lo)
