"""The embedded demo: procedural datasets, shipped models, the training script (issue 2, item 5)."""
import pytest
import torch
from torch import nn

import featwidget as fw
from featwidget.demo import shapes
from featwidget.demo.catalog import SPECS
from featwidget.demo.loading import load_model
from featwidget.engine import assert_unchanged, snapshot

HELD_OUT_SEED = 2026  # split="test": a stream no training run draws from


@pytest.fixture(scope="module")
def held_out():
    """1,000 fresh test images per demo (the confounded one with true and with shuffled marks)."""
    return {
        "shapes": fw.demo.dataset("shapes", 1000, seed=HELD_OUT_SEED),
        "digits": fw.demo.dataset("digits", 1000, seed=HELD_OUT_SEED),
        **{f"shapes-confounded/{c}": fw.demo.dataset("shapes-confounded", 1000, seed=HELD_OUT_SEED, confound=c)
           for c in ("class", "random")},
    }


def accuracy(name, data):
    net = fw.demo.load(name).network
    with torch.no_grad():
        pred = torch.cat([net(xb).argmax(1) for xb in data.images.split(250)])
    return (pred == data.labels).float().mean().item()


# ---------------------------------------------------------------------------------------------- datasets
@pytest.mark.parametrize("name,size", [("shapes", (3, 64, 64)), ("shapes-confounded", (3, 64, 64)),
                                       ("digits", (1, 28, 28))])
def test_dataset_shapes_ranges_balance_and_determinism(name, size):
    d = fw.demo.dataset(name, 40, seed=3, split="train")
    assert isinstance(d, fw.demo.Dataset) and len(d) == 40
    assert d.images.shape == (40, *size) and d.images.dtype == torch.float32
    assert d.labels.shape == (40,) and d.labels.dtype == torch.long
    assert 0 <= d.images.min() and d.images.max() <= 1
    assert len(d.classes) == 10 and len(set(d.classes)) == 10
    assert torch.equal(torch.bincount(d.labels, minlength=10), torch.full((10,), 4))  # balanced
    again = fw.demo.dataset(name, 40, seed=3, split="train")
    assert torch.equal(d.images, again.images) and torch.equal(d.labels, again.labels)
    other = fw.demo.dataset(name, 40, seed=4, split="train")
    assert not torch.equal(d.images, other.images)


@pytest.mark.parametrize("name", fw.demo.NAMES)
def test_train_and_test_splits_never_share_an_image(name):
    train = fw.demo.dataset(name, 100, seed=0, split="train").images.flatten(1)
    test = fw.demo.dataset(name, 100, seed=0, split="test").images.flatten(1)
    # the closest train/test pair is still far apart: different streams, not shifted copies of one
    assert torch.cdist(test, train).min() > 1.0


def test_digits_are_mnist_like_grayscale():
    d = fw.demo.dataset("digits", 100, seed=1)
    assert d.images.shape[1] == 1 and d.marks is None and d.classes == [str(i) for i in range(10)]
    border = torch.cat([d.images[..., :2, :].flatten(1), d.images[..., -2:, :].flatten(1)], 1)
    assert border.mean() < 0.05  # dark background, the digit is centred
    ink = (d.images > 0.5).flatten(1).float().mean(1)
    assert (ink > 0.04).all() and (ink < 0.4).all()  # every image has a stroke, none is a blob


def test_marks_are_class_glyphs_in_the_border_and_only_when_confounded():
    n = 60
    plain = fw.demo.dataset("shapes", n, seed=5)
    none = fw.demo.dataset("shapes-confounded", n, seed=5, confound="none")
    marked = fw.demo.dataset("shapes-confounded", n, seed=5)  # confound="class" is the default
    shuffled = fw.demo.dataset("shapes-confounded", n, seed=5, confound="random")
    assert plain.marks is None and none.marks is None
    assert torch.equal(plain.images, none.images) and torch.equal(none.labels, marked.labels)
    for d, expect_true_class in ((marked, True), (shuffled, False)):
        m = d.marks
        assert m.shape == (n, 4) and m.dtype == torch.long
        assert ((m[:, 2] - m[:, 0]) == 5).all() and ((m[:, 3] - m[:, 1]) == 5).all()
        assert (m >= 0).all() and (m[:, 2:] <= 64).all()
        # the mark is in the border band, outside the central region where shapes live
        inner = (m[:, 0] >= shapes.INNER) & (m[:, 2] <= 64 - shapes.INNER) & \
                (m[:, 1] >= shapes.INNER) & (m[:, 3] <= 64 - shapes.INNER)
        assert not inner.any()
        # which class each mark shows, read back from its position
        shown = (m[:, None, :2] == shapes.MARK_CORNERS[None]).all(-1).float().argmax(1)
        if expect_true_class:
            assert torch.equal(shown, d.labels)
        else:
            assert (shown != d.labels).float().mean() > 0.6
            assert torch.equal(torch.bincount(shown, minlength=10), torch.bincount(d.labels, minlength=10))
        # inside the box: exactly the glyph of that class, in all channels; outside: the unmarked image
        inside = torch.zeros(n, 64, 64, dtype=torch.bool)
        for i, (y0, x0, y1, x1) in enumerate(m.tolist()):
            inside[i, y0:y1, x0:x1] = True
            assert torch.equal(d.images[i, :, y0:y1, x0:x1], shapes.GLYPHS[shown[i]].expand(3, -1, -1))
        assert torch.equal(d.images.permute(0, 2, 3, 1)[~inside], none.images.permute(0, 2, 3, 1)[~inside])


def test_every_shape_fits_its_unit_circle_and_covers_its_centre_region():
    # placement keeps the unit circle (scaled by the radius) inside the central region, so this is what
    # guarantees that a shape never overlaps a mark
    a = torch.linspace(0, 2 * torch.pi, 2000)
    u, v = torch.cos(a)[None, None], torch.sin(a)[None, None]
    for fn in shapes.SDFS:
        assert fn(u, v).min() > 0, fn.__name__
    g = torch.linspace(-1, 1, 201)
    gv, gu = torch.meshgrid(g, g, indexing="ij")
    disk = gu ** 2 + gv ** 2 <= 1
    for fn in shapes.SDFS:  # and no shape is a speck: each covers a good part of its circle
        assert (fn(gu[None], gv[None])[0][disk] < 0).float().mean() > 0.2, fn.__name__


def test_shapes_never_reach_the_border_band_where_marks_go():
    # without pixel noise the background is an exact linear ramp, so any shape pixel in the band would show up
    # as a non-zero second difference
    x = fw.demo.dataset("shapes", 300, seed=7, noise=0.0).images
    band = torch.ones(64, 64, dtype=torch.bool)
    band[shapes.INNER - 1:64 - shapes.INNER + 1, shapes.INNER - 1:64 - shapes.INNER + 1] = False
    d2y = torch.zeros_like(x)
    d2x = torch.zeros_like(x)
    d2y[..., 1:-1, :] = x[..., 2:, :] - 2 * x[..., 1:-1, :] + x[..., :-2, :]
    d2x[..., :, 1:-1] = x[..., :, 2:] - 2 * x[..., :, 1:-1] + x[..., :, :-2]
    ring = band.clone()
    ring[[0, -1], :] = False
    ring[:, [0, -1]] = False
    assert d2y[..., ring].abs().max() < 1e-5 and d2x[..., ring].abs().max() < 1e-5
    # ...while in the middle there is a shape in every image
    assert (d2x[..., ~band].abs().flatten(1).amax(1) > 0.05).all()


# ---------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("name", fw.demo.NAMES)
def test_load_gives_a_wrapped_eval_model_and_sample_images(name):
    demo = fw.demo.load(name)
    spec = SPECS[name]
    assert demo.name == name and isinstance(demo.network, fw.Network)
    assert demo.network.input_size == spec.input_size and demo.network.classes == demo.classes
    assert not demo.network.module.training
    assert demo.images.shape == (16, *spec.input_size) and demo.labels.shape == (16,)
    assert torch.equal(demo.labels, demo.labels.sort().values)  # sorted by class for display
    assert set(demo.labels.tolist()) == set(range(10))  # every class shown at least once
    assert (demo.marks is not None) == (name == "shapes-confounded")
    assert fw.demo.load(name) is demo  # cached within the process
    assert spec.weights.stat().st_size <= 2 * 2**20
    state = torch.load(spec.weights, map_location="cpu", weights_only=True)
    assert all(v.dtype in (torch.float32, torch.long) for v in state.values())
    preds = demo.network.predict(demo.images, k=1)
    assert sum(p[0][0] == y for p, y in zip(preds, demo.labels.tolist())) >= 14


def test_shapes_architecture_reuses_inplace_relu_and_ends_in_gap_linear():
    net = fw.demo.load("shapes").network
    for block in ("layer1", "layer2", "layer3"):
        relu = net.submodule(f"{block}.relu")
        assert isinstance(relu, nn.ReLU) and relu.inplace and net.layer(f"{block}.relu").calls == 2
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.module.modules())
    assert [l.kind for l in net.layers[-2:]] == ["AdaptiveAvgPool2d", "Linear"]
    assert net.layer("avgpool").out_shape == (64, 1, 1) and net.layer("fc").out_shape == (10,)
    n_params = sum(p.numel() for p in net.module.parameters())
    assert n_params * 4 <= 2 * 2**20


def test_digits_architecture_is_lenet():
    net = fw.demo.load("digits").network
    kinds = [l.kind for l in net.layers]
    assert kinds.count("Conv2d") == 2 and kinds.count("MaxPool2d") == 2 and kinds.count("Linear") == 3
    assert "BatchNorm2d" not in kinds and all(not getattr(m, "inplace", False) for m in net.module.modules())


def test_held_out_accuracy_shapes(held_out):
    assert accuracy("shapes", held_out["shapes"]) >= 0.90


def test_held_out_accuracy_digits(held_out):
    assert accuracy("digits", held_out["digits"]) >= 0.97


def test_confounded_model_learned_the_mark_not_the_shape(held_out):
    with_mark = accuracy("shapes-confounded", held_out["shapes-confounded/class"])
    shuffled = accuracy("shapes-confounded", held_out["shapes-confounded/random"])
    assert with_mark >= 0.90
    assert shuffled <= with_mark - 0.25


@pytest.mark.parametrize("name", fw.demo.NAMES)
def test_engine_on_demo_models_and_safety_contract(name):
    spec = SPECS[name]
    module = load_model(name).train()  # a fresh copy, handed over in train mode as a user might
    snap = snapshot(module)
    bn_before = {k: v.clone() for k, v in module.state_dict().items() if "running" in k or "batches" in k}
    net = fw.wrap(module, input_size=spec.input_size, mean=spec.mean, std=spec.std)
    x = fw.demo.dataset(name, 4, seed=11).images
    acts = net.activations(x)
    assert set(acts) == set(net.layer_names)
    for l in net.layers:
        assert tuple(acts[l.name].shape[1:]) == l.out_shape
    preds = net.predict(x, k=3)
    assert len(preds) == 4 and all(len(p) == 3 for p in preds)
    conv = net.conv_layers[-1]
    xg = x.clone().requires_grad_(True)
    for target in [None, 2, fw.Prob(1), fw.LogProb([0, 1, 2, 3]), fw.Channel(conv, 1), fw.LayerNorm(conv),
                   fw.Neuron(conv, 0), fw.Logit(1) - fw.Logit(2) + 0.5 * fw.Channel(conv, 1)]:
        with fw.engine.preserved(module):
            v = net.evaluate(xg, target)
            (g,) = torch.autograd.grad(v.sum(), xg)
        assert v.shape == (4,) and g.shape == x.shape and torch.isfinite(g).all() and g.abs().sum() > 0
    # the wrapped logits are the model's own logits on normalized input, in eval mode
    with torch.no_grad():
        module.eval()
        direct = module((x - torch.tensor(spec.mean).view(1, -1, 1, 1)) / torch.tensor(spec.std).view(1, -1, 1, 1))
        module.train()
    assert torch.allclose(net(x), direct, atol=1e-5)
    assert_unchanged(module, snap)
    assert module.training and all(m.training for m in module.modules())
    for k, v in module.state_dict().items():
        if k in bn_before:
            assert torch.equal(v, bn_before[k])


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("name", ["shapes-confounded", "digits"])
def test_training_script_smoke(name, tmp_path, capsys):
    from featwidget.demo import train

    out = tmp_path / f"{name}.pt"
    report = train.main([name, "--out", str(out), "--steps", "3", "--n-train", "16", "--batch", "8",
                         "--eval", "20", "--threads", "1"])
    printed = capsys.readouterr().out
    assert "step 3/3" in printed and str(out) in printed
    state = torch.load(out, map_location="cpu", weights_only=True)
    model = SPECS[name].build()
    model.load_state_dict(state)  # strict: the file is exactly this architecture's state_dict
    assert report["out"] == str(out) and 0.0 <= report["class" if name == "shapes-confounded" else "accuracy"] <= 1
    trained = torch.nn.utils.parameters_to_vector(model.parameters())
    torch.manual_seed(0)
    init = torch.nn.utils.parameters_to_vector(SPECS[name].build().parameters())
    assert not torch.equal(trained, init)  # the steps did update the weights


def test_training_script_rejects_bad_arguments(capsys):
    from featwidget.demo import train

    with pytest.raises(SystemExit):
        train.main(["nonsense"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["digits", "--steps", "0"])
    assert "--steps must be at least 1" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("call,match", [
    (lambda: fw.demo.dataset("shape", 10), r"Unknown demo 'shape'\. Choose one of: 'shapes', 'shapes-confounded'"),
    (lambda: fw.demo.load("mnist"), r"Unknown demo 'mnist'\. Choose one of: .*'digits'"),
    (lambda: fw.demo.dataset("shapes", 0), r"n must be a positive whole number of images, got 0; e\.g\. n=1000"),
    (lambda: fw.demo.dataset("digits", -5), r"got -5"),
    (lambda: fw.demo.dataset("digits", 2.5), r"got 2\.5"),
    (lambda: fw.demo.dataset("digits", 10, seed=-1), r"seed must be a non-negative whole number, got -1"),
    (lambda: fw.demo.dataset("digits", 10, split="val"), r"Unknown split 'val'\. Use split='train' or split='test'"),
    (lambda: fw.demo.dataset("shapes-confounded", 10, confound="yes"),
     r"Unknown confound 'yes'\. Use confound='class' .* 'random' .* 'none'"),
    (lambda: fw.demo.dataset("shapes", 10, confound="random"),
     r"Demo 'shapes' has no confound.*fw\.demo\.dataset\('shapes-confounded'"),
])
def test_bad_inputs_name_the_fix(call, match):
    with pytest.raises(fw.FeatwidgetError, match=match):
        call()
