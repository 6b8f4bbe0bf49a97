"""CAM / Grad-CAM against their definitions, LRP conservation, the z^B rule and BatchNorm folding."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import featwidget as fw
from featwidget.engine import assert_unchanged, snapshot
from models import tiny_gap_cnn


def test_cam_is_the_class_weighted_feature_map_and_averages_to_the_logit():
    m = tiny_gap_cnn()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        m.eval()
        a = m[:6](x)  # the pooled feature map, 12 x 8 x 8
        logits = m(x)
        m.train()
    w, b = m[8].weight.detach(), m[8].bias.detach()
    raw = torch.einsum("k,bkhw->bhw", w[3], a)[:, None]
    assert torch.allclose(raw.mean((1, 2, 3)) + b[3], logits[:, 3], atol=1e-5)
    want = F.interpolate(raw, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(fw.cam(m, x, 3), want, atol=1e-5)
    diff = torch.einsum("k,bkhw->bhw", w[1] - w[2], a)[:, None]
    assert torch.allclose(fw.cam(m, x, fw.Logit(1) - fw.Logit(2)),
                          F.interpolate(diff, size=(16, 16), mode="bilinear", align_corners=False), atol=1e-5)
    # Selvaraju et al.: on a GAP + linear head, Grad-CAM at the pooled layer is CAM / (h w)
    gc = fw.grad_cam(m, x, 3, layer="5", relu=False)
    assert torch.allclose(gc * 64, want, atol=1e-5)
    relu_first = F.interpolate((raw / 64).clamp(min=0), size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(fw.grad_cam(m, x, 3, layer="5"), relu_first, atol=1e-6)


def test_cam_refuses_networks_without_a_gap_linear_head_and_non_class_targets(model_zoo):
    vgg, size = model_zoo["vgg11"]
    with pytest.raises(fw.FeatwidgetError, match="global average pooling followed by a single linear"):
        fw.cam(vgg, torch.rand(1, *size))
    with pytest.raises(fw.FeatwidgetError, match="fw.cam explains class scores"):
        fw.cam(tiny_gap_cnn(), torch.rand(1, 3, 16, 16), fw.Prob(1))


def test_grad_cam_matches_its_definition_at_a_chosen_layer():
    m = tiny_gap_cnn(seed=1)
    x = torch.rand(2, 3, 16, 16)
    m.eval()
    a = m[:3](x).detach().requires_grad_(True)  # output of the in-place ReLU "2"
    (g,) = torch.autograd.grad(m[3:](a)[:, 2].sum(), a)
    m.train()
    raw = ((g.mean((2, 3), keepdim=True) * a.detach()).sum(1, keepdim=True)).clamp(min=0)
    assert torch.allclose(fw.grad_cam(m, x, 2, layer="2"), raw, atol=1e-6)  # 16x16 already: no resize
    guided = fw.guided_backprop(m, x, 2)
    assert torch.allclose(fw.guided_grad_cam(m, x, 2, layer="2"), guided * raw, atol=1e-6)


@pytest.mark.parametrize("model", ["demo", "resnet18"])
def test_guided_grad_cam_is_one_forward_pass_and_equals_its_two_pass_definition(model_zoo, model):
    if model == "demo":
        net, x, layer = fw.demo.load("shapes").network, fw.demo.load("shapes").images[:3], "layer2"
    else:
        module, size = model_zoo["resnet18"]
        net, x, layer = fw.wrap(module, input_size=size), torch.rand(2, *size), None
    calls = []
    handle = net.module.register_forward_hook(lambda *a: calls.append(1))
    try:
        for target in (None, 3, fw.Logit(1) - fw.Logit(2)):
            calls.clear()
            one = fw.guided_grad_cam(net, x, target, layer=layer)
            assert calls == [1]
            two = fw.grad_cam(net, x, target, layer=layer) * fw.guided_backprop(net, x, target)
            assert torch.equal(one, two) and one.abs().sum() > 0
    finally:
        handle.remove()


@pytest.mark.parametrize("name,layer", [("resnet18", "layer4"), ("vgg11", "features.19"),
                                        ("alexnet", "features.11"), ("mobilenet_v3_small", "features")])
def test_grad_cam_default_layer_is_the_last_convolutional_feature_map(model_zoo, name, layer):
    module, size = model_zoo[name]
    net = fw.wrap(module, input_size=size)
    assert fw.engine.backward.default_layer(net) == layer
    with pytest.raises(fw.FeatwidgetError, match="Unknown layer 'layer44'"):
        fw.grad_cam(net, torch.rand(1, *size), layer="layer44")


class BiasFree(nn.Module):
    """ReLU net without biases, with max and average pooling and a residual addition."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.c3 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.fc1 = nn.Linear(8 * 4 * 4, 16, bias=False)
        self.fc2 = nn.Linear(16, 5, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = F.max_pool2d(self.relu(self.c1(x)), 2)
        x = self.relu(self.c3(torch.relu(self.c2(x))) + x)  # residual addition
        x = F.avg_pool2d(x, 2).flatten(1)
        return self.fc2(self.relu(self.fc1(x)))


@pytest.mark.parametrize("rule", ["epsilon", "gamma", "alpha_beta"])
@pytest.mark.parametrize("input_rule", ["same", "zb"])
def test_lrp_conserves_relevance_on_a_bias_free_relu_net(rule, input_rule):
    torch.manual_seed(0)
    m = BiasFree()
    net = fw.wrap(m, input_size=(3, 16, 16), mean=0.4, std=0.3)
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        logits = net(x)
    target = [0, 2, 4]
    r = fw.lrp(net, x, target, rule=rule, input_rule=input_rule, epsilon=1e-9)
    total = r.flatten(1).sum(1)
    assert torch.allclose(total, logits[torch.arange(3), target], rtol=1e-4, atol=1e-5), (total, logits)
    # a hidden target: the relevance of a channel's mean activation
    r = fw.lrp(net, x, fw.Channel("c3", 1), rule=rule, input_rule=input_rule, epsilon=1e-9)
    with torch.no_grad():
        acts = net.activations(x, ["c3"])["c3"][:, 1].mean((1, 2))
    assert torch.allclose(r.flatten(1).sum(1), acts, rtol=1e-4, atol=1e-5)


def test_lrp_epsilon_on_a_bias_free_relu_net_is_gradient_times_input():
    torch.manual_seed(1)
    m = BiasFree()
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(fw.lrp(m, x, 1, input_rule="same", epsilon=1e-12), fw.input_x_gradient(m, x, 1),
                          atol=1e-6)


def test_zb_rule_on_one_linear_layer_matches_its_formula():
    torch.manual_seed(2)
    m = nn.Sequential(nn.Flatten(), nn.Linear(12, 3, bias=False))
    net = fw.wrap(m, input_size=(3, 2, 2), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    x = torch.rand(2, 3, 2, 2)
    mean, std = torch.tensor([0.5, 0.4, 0.3])[:, None, None], torch.tensor([0.2, 0.25, 0.3])[:, None, None]
    xn, lo, hi = ((x - mean) / std).flatten(1), (-mean / std).expand(3, 2, 2).flatten(), ((1 - mean) / std).expand(3, 2, 2).flatten()
    w = m[1].weight.detach()[2]
    contrib = xn * w - lo * w.clamp(min=0) - hi * w.clamp(max=0)
    want = contrib / contrib.sum(1, keepdim=True) * (xn @ w)[:, None]
    assert torch.allclose(fw.lrp(net, x, 2, input_rule="zb").flatten(1), want, atol=1e-5)


class ConvBN(nn.Module):
    def __init__(self, bn=True):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6) if bn else nn.Identity()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def folded_copy(m):
    f = ConvBN(bn=False)
    with torch.no_grad():
        for conv, bn, out in ((m.conv1, m.bn1, f.conv1), (m.conv2, m.bn2, f.conv2)):
            k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            out.weight.copy_(conv.weight * k[:, None, None, None])
            b = conv.bias if conv.bias is not None else torch.zeros_like(k)
            if out.bias is None:
                out.bias = nn.Parameter(torch.zeros_like(k))
            out.bias.copy_((b - bn.running_mean) * k + bn.bias)
        f.fc.load_state_dict(m.fc.state_dict())
    return f.eval()


@pytest.mark.parametrize("rule", ["epsilon", "gamma", "alpha_beta"])
def test_lrp_folds_batchnorm_for_the_call_only(rule):
    torch.manual_seed(3)
    m = ConvBN()
    with torch.no_grad():
        for bn in (m.bn1, m.bn2):
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(-1.5, 1.5)  # negative scales flip the sign of folded weights
            bn.bias.uniform_(-0.2, 0.2)
    m.train()
    snap = snapshot(m)
    x = torch.rand(2, 3, 8, 8)
    ours = fw.lrp(m, x, 1, rule=rule)
    assert_unchanged(m, snap)
    ref = fw.lrp(folded_copy(m), x, 1, rule=rule)
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-4)
    plain = fw.input_x_gradient(m, x, 1)
    assert (ours - plain).abs().max() > 0.05 * ours.abs().max()  # the rules changed something


def test_lrp_names_the_layer_it_cannot_handle(model_zoo):
    for name, layer, what in (("gelu", "features.2", "GELU"), ("mobilenet_v3_small", "features.0.2", "Hardswish")):
        module, size = model_zoo[name]
        snap = snapshot(module)
        with pytest.raises(fw.FeatwidgetError, match=f"LRP has no rule for {what} in layer '{layer}'"):
            fw.lrp(module, torch.rand(1, *size))
        assert_unchanged(module, snap)


def test_lrp_refuses_probability_targets_and_points_to_the_logit():
    m = BiasFree()
    for target in (fw.Prob(1), fw.LogProb([0, 2]), fw.Logit(3) - 0.5 * fw.Prob(1)):
        with pytest.raises(fw.FeatwidgetError, match=r"not for fw.(Prob|LogProb).*target=fw.Logit\("):
            fw.lrp(m, torch.rand(2, 3, 16, 16), target)


@pytest.mark.parametrize("kwargs,match", [
    (dict(rule="z+"), "Unknown LRP rule 'z\\+'"), (dict(input_rule="flat"), "Unknown input_rule 'flat'"),
    (dict(epsilon=-1.0), "epsilon must be"), (dict(rule="alpha_beta", alpha=2, beta=2), "alpha - beta = 1"),
])
def test_lrp_bad_arguments(kwargs, match):
    with pytest.raises(fw.FeatwidgetError, match=match):
        fw.lrp(BiasFree(), torch.rand(1, 3, 16, 16), **kwargs)


class InPlaceSum(nn.Module):
    """A conv output changed in place by something other than a ReLU: the rescaled-gradient path of the
    epsilon rule must hand it to the general one."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        z = self.c1(x)
        z += 0.5  # in place on the first layer's output: its value as made is gone
        return self.fc(F.relu(self.c2(F.relu(z))).mean((2, 3)))


def _lrp_module():
    import importlib
    return importlib.import_module("featwidget.engine.backward.lrp")


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "alexnet", "functional_relu", "demo", "convbn", "inplace"])
def test_lrp_epsilon_fast_path_equals_the_general_path(model_zoo, monkeypatch, name):
    """The epsilon rule runs as a rescaled gradient (lrp_epsilon.py) where it can; every rule also has the
    general per-operation path. Both must give the same relevances, with z^B or without, for a small and a
    large epsilon (where it matters which value each layer's rescaling reads)."""
    lrp_module = _lrp_module()
    torch.manual_seed(4)
    if name == "demo":
        demo = fw.demo.load("shapes")
        net, x = demo.network, demo.images[:2]
    elif name in ("convbn", "inplace"):
        net = ConvBN() if name == "convbn" else InPlaceSum()
        for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
            with torch.no_grad():
                bn.running_mean.uniform_(-0.3, 0.3)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(-1.5, 1.5)
        x = torch.rand(2, 3, 8, 8)
    else:
        net, size = model_zoo[name]
        x = torch.rand(2, *size)
    taken = []
    general = lrp_module._rescaled_gradient

    def spy(*args):
        out = general(*args)
        taken.append(out is not None)
        return out

    for input_rule in ("zb", "same"):
        for eps in (1e-6, 0.25):
            monkeypatch.setattr(lrp_module, "_rescaled_gradient", spy)
            fast = fw.lrp(net, x, 1, epsilon=eps, input_rule=input_rule)
            monkeypatch.setattr(lrp_module, "_rescaled_gradient", lambda *a: None)
            ref = fw.lrp(net, x, 1, epsilon=eps, input_rule=input_rule)
            assert torch.allclose(fast, ref, rtol=1e-4, atol=1e-6 * ref.abs().max()), (input_rule, eps)
            assert ref.abs().sum() > 0
    # the fast path ran (and did not quietly hand over) except where a value was overwritten in place
    assert taken == [name != "inplace"] * 4
    eps_matters = fw.lrp(net, x, 1, epsilon=0.25) - fw.lrp(net, x, 1, epsilon=1e-6)
    assert eps_matters.abs().max() > 1e-4 * fw.lrp(net, x, 1).abs().max()


def test_lrp_epsilon_zero_is_gradient_times_input_even_where_a_layer_output_is_zero():
    m = BiasFree()
    x = torch.rand(2, 3, 16, 16)
    x[:, :, :8] = 0  # bias-free convolutions over a black region: layer outputs exactly 0 there
    r = fw.lrp(m, x, 1, epsilon=0.0, input_rule="same")
    assert torch.isfinite(r).all()
    assert torch.allclose(r, fw.input_x_gradient(m, x, 1), atol=1e-6)
