"""Input reconstruction (the optimization family): activation maximization, DeepDream, inversion,
adversarial and fooling images. See ``maximize`` for the shared loop and ``settings`` for live control."""
from .adversarial import Adversarial, adversarial, fooling
from .deepdream import deepdream
from .invert import Inversion, invert
from .maximize import Synthesis, maximize
from .objectives import Diversity, Reconstruction
from .param import PARAMS
from .regularizers import L2, TV, AlphaNorm, Blur, Clip, EdgeEnergy, GradientBlur, REGULARIZERS, gaussian_blur
from .settings import Settings
from .transforms import TRANSFORMS, Jitter, Pad, Rotate, Scale
