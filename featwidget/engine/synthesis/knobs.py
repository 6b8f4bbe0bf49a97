"""Knobs: small mutable settings objects that an optimization reads afresh at every step.

A view moves a slider while ``fw.maximize`` runs; the slider writes ``knob.value`` and the next step uses it.
Assignments are validated on the spot, so a bad value is reported where it is made (the view's error banner),
not a hundred steps later.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import FeatwidgetError


@dataclass
class Knob:
    """Base class. ``value`` is the one number a slider drives (a weight, a sigma, a number of pixels)."""

    value: float = 0.0

    # field name -> (lowest allowed value, whether the lowest value itself is allowed, type)
    _limits = {"value": (0.0, True, float)}
    _help = "a non-negative number"

    def __setattr__(self, name, v):
        limits = type(self)._limits.get(name)
        if limits is not None:
            lo, inclusive, kind = limits
            try:
                ok = v is not None and not isinstance(v, bool) and math.isfinite(float(v))
                ok = ok and (kind is float or float(v) == int(v))
            except (TypeError, ValueError, OverflowError):
                ok = False
            ok = ok and (float(v) > lo or (inclusive and float(v) == lo))
            if not ok:
                need = f"at least {lo:g}" if inclusive else f"more than {lo:g}"
                what = "an integer" if kind is int else "a number"
                raise FeatwidgetError(
                    f"{type(self).__name__}.{name} must be {what} {need}, got {v!r} "
                    f"({type(self).__name__}.value is {self._help})."
                )
            v = kind(v)
        object.__setattr__(self, name, v)

    @property
    def active(self) -> bool:
        return self.value > 0
