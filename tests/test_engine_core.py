import time

import pytest
import torch
from torch import nn

import featwidget as fw
from featwidget.engine import assert_unchanged, snapshot
from models import tiny_gap_cnn, zoo


@pytest.mark.parametrize("name", list(zoo().keys()))
def test_layers_activations_predict_targets_and_safety(model_zoo, name):
    module, size = model_zoo[name]
    snap = snapshot(module)
    net = fw.wrap(module, input_size=size, mean=0.5, std=0.25)
    assert net.layers and all(isinstance(l, fw.Layer) for l in net.layers)
    x = torch.rand(2, *size)
    acts = net.activations(x)
    assert set(acts) == set(net.layer_names)
    for l in net.layers:
        assert tuple(acts[l.name].shape[1:]) == l.out_shape
    preds = net.predict(x, k=3)
    assert len(preds) == 2 and len(preds[0]) == 3
    probs = [p for _, _, p in preds[0]]
    assert probs == sorted(probs, reverse=True) and 0 < probs[0] <= 1
    # every target kind evaluates to one value per image and has a gradient w.r.t. the input
    mid = net.layers[len(net.layers) // 2]
    ch = min(1, mid.out_shape[0] - 1)
    xg = x.clone().requires_grad_(True)
    for target in [None, 3, fw.Prob([1, 2]), fw.LogProb(0), fw.Channel(mid.name, ch), fw.LayerNorm(mid.name),
                   fw.Neuron(mid.name, ch), fw.Logit(1) - fw.Logit(2) + 0.5 * fw.Channel(mid.name, ch)]:
        with fw.engine.preserved(module):
            v = net.evaluate(xg, target)
            (g,) = torch.autograd.grad(v.sum(), xg)
        assert v.shape == (2,) and g.shape == x.shape and torch.isfinite(g).all()
    assert_unchanged(module, snap)
    assert module.training  # handed over in train mode, still in train mode


def test_activation_of_reused_inplace_relu_is_its_last_call():
    import torchvision

    m = torchvision.models.resnet18(weights=None).eval()
    net = fw.wrap(m, preset="imagenet")
    relu = net.layer("layer1.0.relu")
    assert relu.calls == 2
    x = torch.rand(1, 3, 224, 224)
    acts = net.activations(x, ["layer1.0.relu", "layer1.0", "layer1.0.bn1"])
    # last call of the shared ReLU is the block output; bn1 must not be clobbered by the in-place ReLU
    assert torch.equal(acts["layer1.0.relu"], acts["layer1.0"])
    assert (acts["layer1.0.bn1"] < 0).any()


def test_targets_algebra_values():
    out = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]])
    assert torch.allclose((fw.Logit(2) - fw.Logit(0))(out, {}), torch.tensor([2.0, 5.0]))
    assert torch.allclose((0.5 * fw.Logit([0, 1]))(out, {}), torch.tensor([0.5, -0.5]))
    assert torch.allclose(fw.Prob(2)(out, {}), torch.softmax(out, 1)[:, 2])
    assert torch.allclose(fw.LogProb(1)(out, {}), torch.log_softmax(out, 1)[:, 1])
    assert torch.allclose(fw.engine.as_target(None)(out, {}), torch.tensor([3.0, 5.0]))
    acts = {"l": torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)}
    assert torch.allclose(fw.Channel("l", 1)(None, acts), acts["l"][:, 1].mean((1, 2)))
    assert torch.allclose(fw.Neuron("l", 2, 0, 1)(None, acts), acts["l"][:, 2, 0, 1])
    assert torch.allclose(fw.LayerNorm("l")(None, acts), acts["l"].flatten(1).pow(2).mean(1))
    with pytest.raises(fw.FeatwidgetError, match="out of range: valid values are 0 to 2"):
        fw.Logit(7)(out, {})


def test_activation_cache_serves_repeats_and_is_bounded():
    import torchvision

    m = torchvision.models.resnet18(weights=None).eval()
    calls = []
    h = m.conv1.register_forward_hook(lambda *a: calls.append(1))
    net = fw.wrap(m, preset="imagenet", cache_bytes=8 * 2**20)
    calls.clear()
    x = torch.rand(1, 3, 224, 224)
    net.activations(x, ["layer3"])
    net.activations(x, ["layer3"])
    assert len(calls) == 1  # second request came from the cache
    net.activations(x)  # all layers: more than 8 MiB in total
    assert net.cache.nbytes <= 8 * 2**20
    # the weights moved: the cache must not serve old activations
    before = net.activations(x, ["layer3"])["layer3"]
    with torch.no_grad():
        m.layer3[0].conv1.weight.mul_(2)
    after = net.activations(x, ["layer3"])["layer3"]
    assert not torch.equal(before, after)
    h.remove()


def test_forward_stops_at_deepest_requested_layer():
    import torchvision

    m = torchvision.models.vgg11(weights=None).eval()
    seen = []
    h = m.classifier.register_forward_hook(lambda *a: seen.append(1))
    net = fw.wrap(m, preset="imagenet")
    seen.clear()
    net.activations(torch.rand(1, 3, 224, 224), ["features.3"])
    assert seen == []
    h.remove()


@pytest.mark.parametrize("model,layer,size,stride", [
    ("vgg16", "features.29", 196, 16), ("vgg16", "features.30", 212, 32),
    ("resnet18", "layer4", 435, 32), ("resnet18", "layer2", 99, 8), ("alexnet", "features.10", 163, 16),
])
def test_receptive_fields_match_published_values(model, layer, size, stride):
    import torchvision

    net = fw.wrap(getattr(torchvision.models, model)(weights=None), preset="imagenet")
    rf = net.receptive_field(layer)
    assert rf.size == (size, size) and rf.stride == (stride, stride)


def test_filters_are_copies_of_conv_weights():
    import torchvision

    m = torchvision.models.alexnet(weights=None)
    w = fw.filters(fw.wrap(m, preset="imagenet"), "features.3")
    assert w.shape == (192, 64, 5, 5) and torch.equal(w, m.features[3].weight)
    w.zero_()
    assert m.features[3].weight.abs().sum() > 0
    with pytest.raises(fw.FeatwidgetError, match="not a convolution"):
        fw.filters(fw.wrap(m, preset="imagenet"), "features.1")


class TestBadInput:
    net = fw.wrap(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)),
                  input_size=(3, 32, 32))

    @pytest.mark.parametrize("x,msg", [
        (torch.rand(3, 32, 32), r"x\[None\]"),
        (torch.rand(0, 3, 32, 32), "empty"),
        (torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8), r"x.float\(\) / 255"),
        (torch.full((1, 3, 32, 32), float("nan")), "NaN"),
        (torch.rand(1, 1, 32, 32), r"expand\(-1, 3, -1, -1\)"),
        (torch.rand(1, 3, 16, 16), "interpolate"),
        (torch.randn(1, 3, 32, 32) * 3, "expects images in \\[0, 1\\]"),
        # one bad pixel in an otherwise valid batch (the fast check reads only the minimum and maximum)
        (torch.rand(2, 3, 32, 32).index_put_((torch.tensor(1), torch.tensor(2), torch.tensor(5), torch.tensor(7)),
                                             torch.tensor(float("nan"))), "1 NaN or infinite"),
        (torch.rand(2, 3, 32, 32).index_put_((torch.tensor(0), torch.tensor(0), torch.tensor(0), torch.tensor(0)),
                                             torch.tensor(float("inf"))), "1 NaN or infinite"),
        (torch.rand(1, 3, 32, 32, dtype=torch.float64) + 0.01, "expects images in \\[0, 1\\]"),
    ])
    def test_bad_images_name_problem_and_fix(self, x, msg):
        with pytest.raises(fw.FeatwidgetError, match=msg):
            self.net.activations(x)

    def test_unknown_layer_suggests_closest(self):
        with pytest.raises(fw.FeatwidgetError, match="Unknown layer 'O'.*Known layers"):
            self.net.activations(torch.rand(1, 3, 32, 32), ["O"])
        with pytest.raises(fw.FeatwidgetError, match="Did you mean 'layer4'"):
            fw.wrap(__import__("torchvision").models.resnet18(weights=None), preset="imagenet").layer("layer5")

    def test_class_out_of_range(self):
        with pytest.raises(fw.FeatwidgetError, match="valid values are 0 to 4"):
            self.net.evaluate(torch.rand(1, 3, 32, 32), 9)
        for bad, c in (([1, 5], 5), ([0, -1], -1), (-2, -2)):
            with pytest.raises(fw.FeatwidgetError, match=f"Class index {c} is out of range"):
                self.net.evaluate(torch.rand(2, 3, 32, 32), fw.Prob(bad))

    def test_wrap_errors(self):
        with pytest.raises(fw.FeatwidgetError, match="input_size"):
            fw.wrap(nn.Linear(2, 2))
        with pytest.raises(fw.FeatwidgetError, match="Check input_size"):
            fw.wrap(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), input_size=(3, 8, 8))


def test_imagenet_preset_with_weights_enum_names_classes_without_downloading():
    import torchvision

    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    net = fw.wrap(torchvision.models.resnet18(weights=None), preset="imagenet", weights=weights)
    assert net.input_size == (3, 224, 224)
    assert net.classes[0] == "tench" and len(net.classes) == 1000
    assert torch.allclose(net.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    generic = fw.wrap(torchvision.models.resnet18(weights=None), preset="imagenet")
    assert generic.classes[7] == "class 7"
    # normalization happens inside: net(x) equals the module on the normalized batch
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        manual = net.module.eval()((x - net.mean) / net.std)
    assert torch.allclose(net(x), manual, atol=1e-5)


def test_receptive_fields_of_the_residual_demo_by_hand():
    # conv1 3x3/2 -> 3 px; each block: 3x3 (stride 2, 2, 1) then 3x3/1: 7, 15 | 23, 39 | 55, 71. The shortcut
    # 1x1 convs see their block's input. Computed twice, around other allocations, which once confused the
    # storage-address bookkeeping (freed storage reused by a later tensor).
    for batch in (0, 8):
        net = fw.wrap(fw.demo.load("shapes").network.module, input_size=(3, 64, 64))
        if batch:
            net.predict(torch.rand(batch, 3, 64, 64))
        expect = {"conv1": (3, 2), "layer1.conv1": (7, 4), "layer1": (15, 4), "layer2.downsample.0": (15, 8),
                  "layer2.conv1": (23, 8), "layer2": (39, 8), "layer3.conv1": (55, 8), "layer3": (71, 8),
                  "layer3.downsample.0": (39, 8)}
        got = {n: (net.receptive_field(n).size[0], net.receptive_field(n).stride[0]) for n in expect}
        assert got == expect


def test_preserved_restores_flags_and_drops_only_hooks_registered_inside():
    shared = nn.Conv2d(3, 3, 1)  # one module reached twice, and a parameter tied across two modules
    m = nn.Sequential(shared, nn.BatchNorm2d(3), shared, nn.Linear(3, 3), nn.Linear(3, 3))
    m[4].weight = m[3].weight
    m.train()
    m[1].eval()
    m[3].bias.requires_grad_(False)
    kept = m[1].register_forward_hook(lambda *a: None)
    snap = snapshot(m)
    for fail in (False, True):
        try:
            with fw.engine.preserved(m):
                assert not any(x.training for x in m.modules())
                assert not any(p.requires_grad for p in m.parameters())
                m[2].register_forward_pre_hook(lambda *a: None)  # "forgotten" by an interrupted call
                m[1].register_forward_hook(lambda *a: None, with_kwargs=True, always_call=True)
                if fail:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            assert fail
        assert_unchanged(m, snap)
        assert [x.training for x in m] == [True, False, True, True, True]
        assert not m[1]._forward_hooks_with_kwargs and not m[1]._forward_hooks_always_called
    assert list(m[1]._forward_hooks) == [kept.id]


def test_engine_calls_on_one_model_may_overlap_across_threads():
    """A view's worker and the kernel thread (or two views) run the same model at once: neither waits for
    the other, each gets its own answer (module hooks act per thread), and the model is restored after the
    last call ends."""
    import threading

    torch.manual_seed(0)
    m = tiny_gap_cnn().train()
    net = fw.wrap(m, input_size=(3, 32, 32))
    xs = [torch.rand(2, 3, 32, 32) for _ in range(4)]
    layers = [l.name for l in net.layers if len(l.out_shape) == 3]
    calls = {
        "activations": lambda x: net.activations(x, layers)[layers[-1]],
        "gradient": lambda x: fw.gradient(net, x, 1),
        "guided": lambda x: fw.guided_backprop(net, x, fw.Channel(layers[1], 0)),
        "grad_cam": lambda x: fw.grad_cam(net, x, 2),
        "lrp": lambda x: fw.lrp(net, x, 0),
        "occlusion": lambda x: fw.occlusion(net, x, 1, size=8, stride=8),
    }
    want = {(k, i): f(x).clone() for k, f in calls.items() for i, x in enumerate(xs)}
    net = fw.wrap(m, input_size=(3, 32, 32), cache_bytes=0)  # every activation request runs the model
    snap = snapshot(m)
    errors, got = [], {}

    def worker(i):
        try:
            for _ in range(3):
                for k, f in calls.items():
                    got[(k, i)] = f(xs[i]).clone()
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(xs))]
    for t_ in threads:
        t_.start()
    for t_ in threads:
        t_.join(120)
    assert not errors, errors
    for key, value in want.items():
        assert torch.allclose(got[key], value, atol=1e-5), key
    assert_unchanged(m, snap)
    assert all(mod.training for mod in m.modules())


def test_a_call_does_not_wait_for_a_long_call_on_the_same_model_in_another_thread():
    import threading

    torch.manual_seed(0)
    m = tiny_gap_cnn()
    net = fw.wrap(m, input_size=(3, 32, 32))
    x = torch.rand(1, 3, 32, 32)
    started, stop = threading.Event(), threading.Event()

    def long_call():
        def progress(fraction, partial=None):
            started.set()
            return not stop.is_set()

        try:
            fw.smoothgrad(net, x, 1, samples=10 ** 7, batch_size=4, progress=progress)
        except fw.Cancelled:
            pass

    t_ = threading.Thread(target=long_call)
    t_.start()
    try:
        assert started.wait(30)
        out = []
        quick = threading.Thread(target=lambda: out.append(fw.gradient(net, x, 1)))
        quick.start()
        quick.join(5.0)  # the long call needs hours; a call that waited for it would still be blocked
        assert out, "fw.gradient waited for the other thread's call"
        g = out[0]
        assert not m.training  # the long call still holds the model in eval mode
    finally:
        stop.set()
        t_.join(60)
    xg = x.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(m.eval()(xg)[:, 1].sum(), xg)
    assert torch.allclose(g, want, atol=1e-6)
