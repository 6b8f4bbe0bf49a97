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
from .engine.backward import (cam, deconvnet, grad_cam, gradient, guided_backprop, guided_grad_cam,
                              input_x_gradient, integrated_gradients, lrp, saliency, smoothgrad)
from .engine.synthesis import Diversity, adversarial, deepdream, fooling, invert, maximize
from .engine.occlusion import OcclusionGrid, occlusion, occlusion_grid
from .engine import synthesis
from . import demo
from .widgets import Activations, Attribution, Filters
from .widgets import Adversarial, FeatureVis, Inversion
from .widgets import Occlusion

__version__ = "0.1.0"
