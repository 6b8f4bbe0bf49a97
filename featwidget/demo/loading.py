"""``fw.demo.load``: a demo model with its shipped weights, wrapped, plus a fixed batch of sample images."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from ..engine.errors import FeatwidgetError
from ..engine.network import Network, wrap
from .catalog import SPECS
from .datasets import check_name, dataset

SAMPLES = 16  # images in demo.images
SAMPLE_SEED = 0  # demo.images are split="test", seed 0: never seen in training


@dataclass
class Demo:
    """A trained demo network and a fixed batch of held-out sample images (sorted by class)."""

    name: str
    network: Network
    images: torch.Tensor
    labels: torch.Tensor
    classes: list
    marks: torch.Tensor | None = None


_cache: dict[str, Demo] = {}
_lock = threading.Lock()


def load_model(name: str) -> torch.nn.Module:
    """The demo architecture with its shipped weights, in eval mode."""
    spec = SPECS[check_name(name)]
    if not spec.weights.exists():
        raise FeatwidgetError(
            f"The weights of demo {name!r} are missing ({spec.weights}). Reinstall featwidget, or recreate them "
            f"with: python -m featwidget.demo.train {name}"
        )
    model = spec.build()
    model.load_state_dict(torch.load(spec.weights, map_location="cpu", weights_only=True))
    return model.eval()


def load(name: str) -> Demo:
    """Load demo ``name`` (one of ``fw.demo.NAMES``): offline, shipped weights, cached for the process."""
    check_name(name)
    with _lock:
        if name not in _cache:
            spec = SPECS[name]
            data = dataset(name, SAMPLES, seed=SAMPLE_SEED, split="test")
            order = data.labels.argsort(stable=True)
            net = wrap(load_model(name), input_size=spec.input_size, mean=spec.mean, std=spec.std,
                       classes=data.classes)
            marks = None if data.marks is None else data.marks[order]
            _cache[name] = Demo(name, net, data.images[order], data.labels[order], data.classes, marks)
        return _cache[name]
