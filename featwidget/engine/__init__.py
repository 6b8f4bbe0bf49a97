"""The visualization engine: pure PyTorch + numpy, usable from a script, never imports widgets."""
from .backward import (cam, deconvnet, grad_cam, gradient, guided_backprop, guided_grad_cam, input_x_gradient,
                       integrated_gradients, lrp, saliency, smoothgrad)
from .errors import Cancelled, FeatwidgetError
from .network import Layer, Network, as_network, wrap
from .occlusion import OcclusionGrid, occlusion, occlusion_grid
from .parameters import filters
from .receptive_field import ReceptiveField
from .safety import assert_unchanged, preserved, snapshot
from .targets import Channel, LayerNorm, Logit, LogProb, Neuron, Predicted, Prob, Target, as_target
from .synthesis import Diversity, adversarial, deepdream, fooling, invert, maximize
