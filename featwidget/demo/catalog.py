"""What each demo is: its architecture, input size, normalization and training recipe (one place for both
``fw.demo.load`` and ``python -m featwidget.demo.train``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from . import models

WEIGHTS = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class Spec:
    name: str
    build: Callable[[], nn.Module]
    input_size: tuple
    mean: tuple
    std: tuple
    # training recipe: optimizer steps, batch size, fresh images generated per epoch, peak learning rate
    steps: int
    batch: int
    n_train: int
    lr: float
    passes: int = 1  # epochs over each generated set before a fresh one is drawn
    augment: tuple = ()  # class-preserving augmentations applied per batch (see train.AUGMENTATIONS)
    noise: float | None = None  # pixel noise of the training images (None: the generator's default)

    @property
    def weights(self) -> Path:
        return WEIGHTS / f"{self.name}.pt"


SPECS = {
    "shapes": Spec("shapes", models.ShapesResNet, (3, 64, 64), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25),
                   steps=2400, batch=64, n_train=6400, lr=6e-3, passes=2, augment=("dihedral", "channels")),
    "shapes-confounded": Spec("shapes-confounded", models.ShapesResNet, (3, 64, 64), (0.5, 0.5, 0.5),
                              (0.25, 0.25, 0.25), steps=500, batch=64, n_train=6400, lr=3e-3, passes=2,
                              augment=("channels",)),
    "digits": Spec("digits", models.LeNet, (1, 28, 28), (0.13,), (0.3,),
                   steps=600, batch=64, n_train=9600, lr=2e-3),
}
