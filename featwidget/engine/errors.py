"""Errors raised by the engine.

Every message names the problem *and* the fix, because the same text is shown verbatim in a widget's error
banner to a student who may not read a traceback.
"""
from __future__ import annotations

import difflib


class FeatwidgetError(ValueError):
    """Bad input to a featwidget function (wrong shape, unknown layer, NaN, ...)."""


class Cancelled(Exception):
    """Raised when a ``progress`` callback returns ``False``: the caller no longer wants the result."""


def unknown_layer(name: str, known: list[str]) -> FeatwidgetError:
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return FeatwidgetError(
        f"Unknown layer {name!r}.{hint} Known layers (see net.layers): {listing}"
    )
