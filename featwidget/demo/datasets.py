"""``fw.demo.dataset``: freshly generated labelled images for the three demo tasks.

Every (name, seed, split) has its own random stream, derived with numpy's ``SeedSequence``: the "train" and
"test" splits of one seed never share a stream, so a model trained on split="train" is always measured on
images it has never seen. ``shapes`` and ``shapes-confounded`` share their shape images; the confounded one adds
the class marks (see ``shapes.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..engine.errors import FeatwidgetError
from . import digits, shapes

NAMES = ("shapes", "shapes-confounded", "digits")
SPLITS = ("train", "test")
CONFOUNDS = ("class", "random", "none")
_STREAM = {"shapes": 0, "shapes-confounded": 0, "digits": 1}


@dataclass
class Dataset:
    """Images (n, C, H, W) float32 in [0, 1], labels (n,) long, class names, and the mark boxes
    (n, 4) long as (y0, x0, y1, x1) with exclusive ends -- or None when the images carry no mark."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list
    marks: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.labels.shape[0]


def check_name(name) -> str:
    if name not in NAMES:
        raise FeatwidgetError(f"Unknown demo {name!r}. Choose one of: {', '.join(repr(n) for n in NAMES)}.")
    return name


def generator(name: str, seed: int, split: str) -> torch.Generator:
    """The random stream of one (name, seed, split)."""
    state = np.random.SeedSequence([int(seed), SPLITS.index(split), _STREAM[name]]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def balanced_labels(n: int, gen: torch.Generator, k: int = 10) -> torch.Tensor:
    """Every class equally often (up to one), in random order."""
    return (torch.arange(n) % k)[torch.randperm(n, generator=gen)]


def dataset(name: str, n: int, seed: int = 0, split: str = "test", confound: str | None = None,
            noise: float | None = None) -> Dataset:
    """``n`` freshly generated images of demo ``name``.

    ``confound`` applies to ``"shapes-confounded"`` only: ``"class"`` (default) marks each image with its own
    class's mark, ``"random"`` with the mark of another image's class (the labels shuffled), ``"none"`` leaves
    the images unmarked. ``noise`` overrides the pixel-noise level of the generator (training uses it).
    """
    check_name(name)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise FeatwidgetError(f"n must be a positive whole number of images, got {n!r}; e.g. n=1000.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise FeatwidgetError(f"seed must be a non-negative whole number, got {seed!r}; e.g. seed=0.")
    if split not in SPLITS:
        raise FeatwidgetError(f"Unknown split {split!r}. Use split='train' or split='test'.")
    if name == "shapes-confounded":
        confound = "class" if confound is None else confound
        if confound not in CONFOUNDS:
            raise FeatwidgetError(
                f"Unknown confound {confound!r}. Use confound='class' (each image carries its class's mark), "
                f"'random' (marks shuffled across classes) or 'none' (no mark)."
            )
    elif confound not in (None, "none"):
        raise FeatwidgetError(
            f"Demo {name!r} has no confound, so confound={confound!r} does not apply. "
            f"Use fw.demo.dataset('shapes-confounded', ..., confound={confound!r}) for the marked shapes."
        )
    n = int(n)
    gen = generator(name, seed, split)
    labels = balanced_labels(n, gen)
    kw = {} if noise is None else {"noise": float(noise)}
    if name == "digits":
        return Dataset(name, digits.render(labels, gen, **kw), labels, list(digits.CLASSES))
    images = shapes.render(labels, gen, **kw)
    marks = None
    if name == "shapes-confounded" and confound != "none":
        marked = labels if confound == "class" else labels[torch.randperm(n, generator=gen)]
        marks = shapes.mark(images, marked)
    return Dataset(name, images, labels, list(shapes.CLASSES), marks)
