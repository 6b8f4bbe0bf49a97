"""The embedded default: procedural datasets and small models with shipped weights (DESIGN.md section 6).

``fw.demo.load(name)`` gives a trained, wrapped network and sample images; ``fw.demo.dataset(name, n)`` gives
fresh labelled images. Names: ``"shapes"`` (ten shape classes, 64x64 RGB), ``"shapes-confounded"`` (the same
shapes, but every training image carries a small class mark -- the network learns the mark, not the shape),
``"digits"`` (28x28 grayscale, LeNet). Retrain with ``python -m featwidget.demo.train NAME``.
"""
from .datasets import NAMES, Dataset, dataset
from .loading import Demo, load

__all__ = ["NAMES", "Dataset", "Demo", "dataset", "load"]
