"""The ``progress(fraction, partial_result)`` protocol of long-running engine functions (DESIGN.md section 3)."""
from __future__ import annotations

from typing import Any, Callable, Optional

from .errors import Cancelled

Progress = Optional[Callable[[float, Any], Any]]


def report(progress: Progress, fraction: float, partial: Any = None) -> None:
    """Call the user's callback; a return value of exactly ``False`` cancels the running function."""
    if progress is None:
        return
    if progress(float(min(max(fraction, 0.0), 1.0)), partial) is False:
        raise Cancelled("cancelled by the progress callback")
