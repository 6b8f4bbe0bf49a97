"""featwidget: see what a convolutional network has learned, live, in a notebook.

The public API (DESIGN.md section 3). Engine functions return tensors; views are anywidget classes.
"""
from .engine import (
    Cancelled,
    Channel,
    FeatwidgetError,
    Layer,
    LayerNorm,
    Logit,
    LogProb,
    Network,
    Neuron,
    Prob,
    Target,
    filters,
    wrap,
)
from . import demo
from .widgets import Filters

__version__ = "0.1.0"
