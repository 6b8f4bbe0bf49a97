"""The confound lesson ("tank on a cloudy day") as a property of occlusion maps on the trained demo models.

On ``shapes-confounded`` every training image carried a small class mark, and the network learned the mark:
most of the positive occlusion mass (drop of the predicted class's probability) lies inside the 5x5 mark box.
On ``shapes`` (no marks) it lies mostly on the shape. Patches of 4 px (smaller than the mark) keep the map from
smearing far beyond the object that matters; the map is averaged over the windows covering each pixel.
"""
import pytest
import torch

import featwidget as fw
from featwidget.demo import shapes as shape_gen

pytestmark = pytest.mark.usefixtures("one_thread")

N, SIZE, STRIDE = 20, 4, 3


def positive_mass_inside(maps, masks):
    pos = maps.clamp_min(0)
    return (pos * masks).sum((1, 2, 3)) / pos.sum((1, 2, 3)).clamp_min(1e-12)


def shape_masks(n):
    """Pixels of the shape in each test image: rendered without pixel noise (same random stream, so the same
    shapes), the background is an exact linear ramp; a plane fitted on the border band, where shapes never are,
    predicts it everywhere, and shape pixels are those that differ from it."""
    clean = fw.demo.dataset("shapes", n, noise=0.0).images
    size = clean.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    design = torch.stack([torch.ones_like(yy), yy, xx], -1).reshape(-1, 3)
    inner = slice(shape_gen.INNER, size - shape_gen.INNER)
    band = torch.ones(size, size, dtype=torch.bool)
    band[inner, inner] = False
    a = design[band.reshape(-1)]
    values = clean.permute(0, 2, 3, 1).reshape(n, -1, 3)
    coef = torch.linalg.lstsq(a.expand(n, -1, -1), values[:, band.reshape(-1)]).solution  # (n, 3, C)
    background = (design @ coef).reshape(n, size, size, -1).permute(0, 3, 1, 2)
    return ((clean - background).abs().sum(1, keepdim=True) > 0.1).float()


def test_shape_masks_find_the_shapes():
    masks = shape_masks(N)
    area = masks.mean((1, 2, 3))
    assert (area > 0.02).all() and (area < 0.4).all()
    border = masks.clone()
    border[:, :, shape_gen.INNER:-shape_gen.INNER, shape_gen.INNER:-shape_gen.INNER] = 0
    assert border.sum() == 0


def test_confounded_model_looks_at_the_mark():
    demo = fw.demo.load("shapes-confounded")
    data = fw.demo.dataset("shapes-confounded", N, confound="class")
    masks = torch.zeros(N, 1, 64, 64)
    for i, (y0, x0, y1, x1) in enumerate(data.marks.tolist()):
        masks[i, :, y0:y1, x0:x1] = 1
    maps = fw.occlusion(demo.network, data.images, None, SIZE, STRIDE, "gray")
    inside = positive_mass_inside(maps, masks)
    assert inside.mean() > 0.5, inside  # the mark box is 25 of 4096 pixels


def test_clean_model_looks_at_the_shape():
    demo = fw.demo.load("shapes")
    data = fw.demo.dataset("shapes", N)
    maps = fw.occlusion(demo.network, data.images, None, SIZE, STRIDE, "gray")
    on_shape = positive_mass_inside(maps, shape_masks(N))
    assert on_shape.mean() > 0.5, on_shape
