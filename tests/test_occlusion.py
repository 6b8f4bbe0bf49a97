"""fw.occlusion: exact (incremental) mode equals a naive loop of full forward passes; geometry, fills, targets,
validation, progress/cancel and the safety contract."""
import pytest
import torch
import torchvision

import featwidget as fw
from featwidget.demo import models as demo_models
from featwidget.engine import assert_unchanged, snapshot
from featwidget.engine.occlusion import incremental
from featwidget.engine.occlusion.chain import Opaque, Residual, Spatial, chain_of
from featwidget.engine.occlusion.evaluate import Occluder
from featwidget.engine.occlusion.fill import fill_image
from featwidget.engine.occlusion.patches import starts, windows
from models import zoo

pytestmark = pytest.mark.usefixtures("one_thread")


def axis_starts(n, k, s):
    pos = list(range(0, n - k + 1, s))
    return pos if pos[-1] == n - k else pos + [n - k]


def naive(net, x, target, size, stride, fill):
    """One occluded image at a time through the whole network; map = mean drop over the covering windows."""
    kh, kw = size if isinstance(size, tuple) else (size, size)
    sh, sw = stride if isinstance(stride, tuple) else (stride, stride)
    h, w = x.shape[2:]
    fill_img = fill_image(x, fill, (kh, kw))
    ys, xs = axis_starts(h, kh, sh), axis_starts(w, kw, sw)
    grid = torch.zeros(x.shape[0], len(ys), len(xs))
    total = torch.zeros(x.shape[0], 1, h, w)
    count = torch.zeros(1, 1, h, w)
    with fw.engine.preserved(net.module), torch.no_grad():
        for b in range(x.shape[0]):
            t = target[b] if isinstance(target, list) else target
            clean = net.evaluate(x[b:b + 1], t)[0]
            for i, y in enumerate(ys):
                for j, xx in enumerate(xs):
                    occluded = x[b:b + 1].clone()
                    occluded[:, :, y:y + kh, xx:xx + kw] = fill_img[b:b + 1, :, y:y + kh, xx:xx + kw]
                    drop = clean - net.evaluate(occluded, t)[0]
                    grid[b, i, j] = drop
                    total[b, :, y:y + kh, xx:xx + kw] += drop
                    if b == 0:
                        count[:, :, y:y + kh, xx:xx + kw] += 1
    return grid, total / count


def per_image(t, n):
    """A class target with one class per image -> one target per image (the naive loop runs image by image)."""
    if isinstance(t, (fw.Prob, fw.Logit)) and torch.as_tensor(t.c).numel() == n > 1:
        return [type(t)(int(c)) for c in torch.as_tensor(t.c)]
    return t


def check_exact(net, x, target, size, stride, fill="gray", **kw):
    g = fw.occlusion_grid(net, x, target, size, stride, fill, **kw)
    m = fw.occlusion(net, x, target, size, stride, fill, **kw)
    grid, ref_map = naive(fw.engine.as_network(net, x), x, per_image(g.target, x.shape[0]), size, stride, fill)
    assert g.drop.shape == grid.shape and m.shape == (x.shape[0], 1, *x.shape[2:])
    assert torch.allclose(g.drop, grid, atol=1e-4, rtol=0), (g.drop - grid).abs().max()
    assert torch.allclose(m, ref_map, atol=1e-4, rtol=0), (m - ref_map).abs().max()
    assert grid.abs().max() > 1e-5  # the maps are not trivially zero
    return g


def follow_regions_to_the_end(monkeypatch):
    """No switch to full passes, neither by region size nor by the cost model: every op runs on crops."""
    monkeypatch.setattr(incremental, "FULL_SWITCH", 2.0)
    monkeypatch.setattr(incremental, "WORTH_IT", float("inf"))


@pytest.fixture(params=["default", "incremental"])
def switch(request, monkeypatch):
    """Run both with the default plan (switch to full passes where cheaper) and with regions followed to the end."""
    if request.param == "incremental":
        follow_regions_to_the_end(monkeypatch)
    return request.param


def _net(module, size, **kw):
    torch.manual_seed(0)
    return fw.wrap(module.eval(), input_size=size, mean=0.45, std=0.25, **kw)


@pytest.fixture(scope="module")
def shapes_net():
    torch.manual_seed(0)
    m = demo_models.ShapesResNet()
    for mod in m.modules():  # the demo zero-initialises bn2; random BatchNorm makes the residual path matter
        if isinstance(mod, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(mod.weight, 0.5, 1.5)
            torch.nn.init.uniform_(mod.bias, -0.2, 0.2)
            mod.running_mean.uniform_(-0.1, 0.1)
    return _net(m, (3, 64, 64))


def test_windows_cover_every_pixel_with_a_flush_last_window():
    assert starts(64, 16, 8).tolist() == [0, 8, 16, 24, 32, 40, 48]
    assert starts(64, 12, 11).tolist() == [0, 11, 22, 33, 44, 52]  # 52 = 64 - 12, flush with the border
    assert starts(10, 10, 3).tolist() == [0]
    ys, xs, k, s = windows(30, 20, (7, 5), (4, 3))
    assert k == (7, 5) and s == (4, 3)
    for n, st, kk in [(30, ys, 7), (20, xs, 5)]:
        covered = torch.zeros(n)
        for p in st.tolist():
            assert 0 <= p and p + kk <= n
            covered[p:p + kk] += 1
        assert covered.min() >= 1


@pytest.fixture(scope="module")
def vgg16():
    return _net(torchvision.models.vgg16(weights=None, num_classes=10), (3, 64, 64))


@pytest.fixture(scope="module")
def resnet18():
    return _net(torchvision.models.resnet18(weights=None, num_classes=10), (3, 64, 64))


def test_chains_follow_vgg_and_resnet_incrementally(vgg16, resnet18):
    vgg, res = vgg16, resnet18
    mob = _net(torchvision.models.mobilenet_v3_small(weights=None, num_classes=10), (3, 64, 64))
    with fw.engine.preserved(vgg.module), torch.no_grad():
        cv = chain_of(vgg)
    with fw.engine.preserved(res.module), torch.no_grad():
        cr = chain_of(res)
    with fw.engine.preserved(mob.module), torch.no_grad():
        cm = chain_of(mob)
    assert cv.exact and sum(isinstance(s, Spatial) for s in cv.stages) == 13 + 5
    assert cr.exact and sum(isinstance(s, Residual) for s in cr.stages) == 8
    assert cr.stage_of("layer3") == cr.stage_of("layer3.1") and isinstance(cr.stages[cr.stage_of("layer3")], Residual)
    # mobilenet's inverted residuals (x + block(x), squeeze-excitation) are not followed: opaque from there on
    assert cm.exact and any(isinstance(s, Opaque) for s in cm.stages) and isinstance(cm.stages[0], Spatial)
    # and the occluder really follows regions (no full passes) through the first stages, by its own cost model
    for net, n, first_full in [(vgg, 64, 10), (fw.wrap(res.module, input_size=(3, 224, 224)), 224, 6)]:
        x = torch.rand(1, 3, n, n)
        ys, xs, k, _ = windows(n, n, 8, 8)
        with fw.engine.preserved(net.module), torch.no_grad():
            occ = Occluder(net, x, torch.zeros_like(x), None, k, ys.repeat_interleave(len(xs)), xs.repeat(len(ys)))
        assert not occ.plain and occ.ses.full_from >= first_full


@pytest.mark.parametrize("size,stride,n", [(8, 8, 2), (12, 11, 2), ((12, 6), (9, 5), 1)])
def test_exact_equals_naive_on_demo_architecture(shapes_net, switch, size, stride, n):
    x = torch.rand(n, 3, 64, 64)
    check_exact(shapes_net, x, None, size, stride)


@pytest.mark.parametrize("fill", ["gray", "zero", "mean", "random", "blur", 0.2, torch.tensor([1.0, 0.0, 0.5])])
def test_every_fill_equals_naive(shapes_net, fill):
    x = torch.rand(1, 3, 64, 64)
    check_exact(shapes_net, x, fw.Logit(3), 12, 10, fill)


def test_lenet_digits_architecture_and_plain_module():
    torch.manual_seed(0)
    m = demo_models.LeNet().eval()
    x = torch.rand(2, 1, 28, 28)
    check_exact(m, x, None, 5, 3)  # a plain nn.Module: default wrap
    check_exact(m, x, fw.Logit(1) - fw.Logit(7), (7, 4), (6, 4))


def test_targets_hidden_units_and_differences(shapes_net, switch):
    x = torch.rand(2, 3, 64, 64)
    # a stage output: followed incrementally, stops at layer2
    check_exact(shapes_net, x, fw.Neuron("layer2", 5, 3, 4), 10, 7)
    check_exact(shapes_net, x, fw.Channel("layer1", 2) - 0.5 * fw.Logit(1), 10, 7)
    # an inner layer of a block (its ReLU runs twice): plain batched passes
    check_exact(shapes_net, x, fw.Channel("layer1.conv2", 3), 16, 16)
    # per-image classes
    check_exact(shapes_net, x, fw.Prob([2, 7]), 16, 12)


def test_default_target_is_probability_of_unoccluded_prediction(shapes_net):
    x = torch.rand(2, 3, 64, 64)
    g = fw.occlusion_grid(shapes_net, x, size=16, stride=16)
    with torch.no_grad():
        probs = torch.softmax(shapes_net(x), 1)
    assert isinstance(g.target, fw.Prob)
    assert torch.allclose(g.value, probs.max(1).values, atol=1e-6)
    pinned = fw.occlusion_grid(shapes_net, x, fw.engine.Predicted(), size=16, stride=16)
    assert torch.allclose(pinned.value, shapes_net(x).max(1).values, atol=1e-5)


def test_exact_equals_naive_on_resnet18(resnet18, monkeypatch):
    x = torch.rand(1, 3, 64, 64)
    check_exact(resnet18, x, fw.Logit(4), 16, 8, "mean")
    follow_regions_to_the_end(monkeypatch)
    check_exact(resnet18, x, fw.Logit(4), 13, 9, "mean")


def test_exact_equals_naive_on_vgg16(vgg16, monkeypatch):
    x = torch.rand(1, 3, 64, 64)
    check_exact(vgg16, x, fw.Logit(5), (16, 40), (13, 24), "blur", batch_size=3)  # ragged last chunk
    follow_regions_to_the_end(monkeypatch)
    check_exact(vgg16, x, fw.Logit(2), 24, 20, "gray")


@pytest.mark.parametrize("name", list(zoo().keys()))
def test_safety_contract_and_exactness_on_zoo(model_zoo, name):
    module, size = model_zoo[name]
    snap = snapshot(module)
    net = fw.wrap(module, input_size=size, mean=0.5, std=0.25)
    x = torch.rand(1, *size)
    k = size[1] // 2
    m = fw.occlusion(net, x, None, k, k)
    assert torch.isfinite(m).all()
    assert_unchanged(module, snap)
    assert module.training
    seen = []
    with pytest.raises(fw.Cancelled):
        fw.occlusion(net, x, fw.Logit(0), k // 2, k // 2, batch_size=2, progress=lambda f, p: seen.append(f) or False)
    assert len(seen) == 1
    assert_unchanged(module, snap)
    assert module.training


def test_progress_streams_partial_maps_and_cancels(shapes_net):
    x = torch.rand(1, 3, 64, 64)
    fractions, partials = [], []

    def progress(f, partial):
        fractions.append(f)
        partials.append(partial.clone())

    m = fw.occlusion(shapes_net, x, None, 8, 8, batch_size=16, progress=progress)
    assert len(fractions) == 4 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert torch.allclose(partials[-1], m)
    assert (partials[0][0, 0, 16:] == 0).all() and (partials[0][0, 0, :16] != 0).any()  # first two rows only
    with pytest.raises(fw.Cancelled):
        fw.occlusion(shapes_net, x, None, 8, 8, batch_size=16, progress=lambda f, p: f < 0.5)


def test_approximate_mode(shapes_net):
    x = torch.rand(2, 3, 64, 64)
    exact = fw.occlusion_grid(shapes_net, x, fw.Logit(1), 8, 4)
    # with no projective-field cut and every window refined, approximate mode is exact
    full = fw.occlusion_grid(shapes_net, x, fw.Logit(1), 8, 4, mode="approximate", tau=1.0, refine=1.0)
    assert torch.allclose(full.drop, exact.drop, atol=1e-4) and full.exact.all()
    # drill-down alone: evaluated windows are exact, a quarter coarse + a quarter of the rest
    drill = fw.occlusion_grid(shapes_net, x, fw.Logit(1), 8, 4, mode="approximate", tau=1.0, refine=0.25)
    assert 0.3 < drill.exact.float().mean() < 0.5
    assert torch.allclose(drill.drop[:, drill.exact], exact.drop[:, drill.exact], atol=1e-4)
    assert not torch.allclose(drill.drop, exact.drop, atol=1e-4)
    # projective-field threshold alone: every window evaluated, values approximate
    cut = fw.occlusion_grid(shapes_net, x, fw.Logit(1), 8, 4, mode="approximate", tau=0.3, refine=1.0)
    assert cut.exact.all() and not torch.allclose(cut.drop, exact.drop, atol=1e-4)
    assert torch.isfinite(fw.occlusion(shapes_net, x, mode="approximate")).all()


@pytest.mark.parametrize("kwargs,match", [
    (dict(size=80), "larger than the image"),
    (dict(size=(8, 70)), "larger than the image"),
    (dict(stride=0), "at least 1"),
    (dict(size=8, stride=9), "never be occluded"),
    (dict(size=2.5), "int or a pair"),
    (dict(fill="purple"), "Unknown fill"),
    (dict(fill=torch.tensor([0.5, 0.5])), "channel"),
    (dict(fill=1.5), r"\[0, 1\]"),
    (dict(mode="fast"), "Unknown mode"),
    (dict(batch_size=0), "batch_size"),
    (dict(mode="approximate", tau=0.0), "tau"),
])
def test_bad_arguments_raise_clear_errors(shapes_net, kwargs, match):
    with pytest.raises(fw.FeatwidgetError, match=match):
        fw.occlusion(shapes_net, torch.rand(1, 3, 64, 64), **kwargs)
