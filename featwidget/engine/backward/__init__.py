"""Backward ("deconvolutional") methods: propagate a target back to the pixels (DESIGN.md section 1).

Every function takes an ``fw.Network`` or a plain ``nn.Module``, a batch ``x`` (B, C, H, W) in [0, 1] and a
target of the algebra (``None``: the predicted class), and returns a tensor (B, C or 1, H, W) on x's device.
"""
from .cam import cam, default_layer, grad_cam, guided_grad_cam
from .gradient import deconvnet, gradient, guided_backprop, input_x_gradient, saliency
from .integrated_gradients import integrated_gradients
from .lrp import lrp
from .rules import swapped
from .smoothgrad import smoothgrad

__all__ = [
    "gradient", "saliency", "guided_backprop", "deconvnet", "input_x_gradient", "smoothgrad",
    "integrated_gradients", "cam", "grad_cam", "guided_grad_cam", "lrp", "swapped", "default_layer",
]
