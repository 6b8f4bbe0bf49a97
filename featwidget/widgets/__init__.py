"""Views: one anywidget class per view, thin (traits <-> engine calls). See _base.py for how to add one."""
from ._base import View, tensor_payload
from .filters import Filters
from .activations import Activations
from .attribution import Attribution
from .featurevis import FeatureVis
from .inversion import Inversion
from .adversarial import Adversarial
from .occlusion import Occlusion
