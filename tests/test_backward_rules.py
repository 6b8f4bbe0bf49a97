"""Gradient-type methods against exact references: weights of a linear model, a hand-computed two-layer ReLU
net for the three rules, and equivalent networks written with F.relu / nn.ReLU / reused in-place ReLUs."""
import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import featwidget as fw


def test_linear_model_gradient_is_its_weight():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 4, 4))
    x = torch.rand(3, 3, 5, 4)
    w = model[1].weight.detach()
    g = fw.gradient(model, x, target=[2, 0, 3])
    assert torch.allclose(g, w[[2, 0, 3]].reshape(3, 3, 5, 4), atol=1e-6)
    # with normalization inside the network the pixel-space gradient is weight / std
    net = fw.wrap(model, input_size=(3, 5, 4), mean=0.5, std=0.25)
    assert torch.allclose(fw.gradient(net, x, target=1), (w[1] / 0.25).reshape(1, 3, 5, 4).expand(3, -1, -1, -1),
                          atol=1e-5)
    assert torch.allclose(fw.input_x_gradient(model, x, target=1), w[1].reshape(3, 5, 4) * x, atol=1e-6)
    assert torch.allclose(fw.saliency(model, x, target=1), w[1].reshape(3, 5, 4).abs().amax(0).expand(3, 1, 5, 4))


class TwoLayer(nn.Module):
    """4 pixels -> 3 hidden ReLU units -> 1 output; ``how`` picks the way the ReLU is written."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.fc1 = nn.Linear(4, 3)
        self.fc2 = nn.Linear(3, 1, bias=False)
        self.act = nn.ReLU(inplace=how == "inplace_module")
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, -1.0, 0.0, 0.5], [-1.0, 0.0, 1.0, 0.0], [0.5, 0.5, -0.5, 1.0]]))
            self.fc1.bias.copy_(torch.tensor([0.0, 0.1, -1.5]))
            self.fc2.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))

    def forward(self, x):
        s = self.fc1(x.flatten(1))
        h = {"module": lambda: self.act(s), "inplace_module": lambda: self.act(s), "F.relu": lambda: F.relu(s),
             "torch.relu": lambda: torch.relu(s), "torch.relu_": lambda: torch.relu_(s),
             "Tensor.relu_": lambda: s.relu_(), "clamp": lambda: s.clamp(min=0),
             "torch.clamp": lambda: torch.clamp(s, min=0), "clamp_min": lambda: torch.clamp_min(s, 0),
             "clamp_": lambda: s.clamp_(min=0), "maximum": lambda: torch.maximum(s, torch.zeros(()))}[self.how]()
        return self.fc2(h)


# x = (0.3, 0.6, 0.4, 0.8): hidden pre-activations s = (0.1, 0.2, -0.45), incoming gradients g = (1, -2, 0.5).
# backprop  1[s>0] g       = (1, -2, 0)  -> W1^T (1, -2, 0)   = (3, -1, -2, 0.5)
# deconvnet 1[g>0] g       = (1, 0, 0.5) -> W1^T (1, 0, 0.5)  = (1.25, -0.75, -0.25, 1)
# guided    1[s>0]1[g>0] g = (1, 0, 0)   -> W1^T (1, 0, 0)    = (1, -1, 0, 0.5)
HAND = {"backprop": [3.0, -1.0, -2.0, 0.5], "deconvnet": [1.25, -0.75, -0.25, 1.0], "guided": [1.0, -1.0, 0.0, 0.5]}


WAYS = ["module", "inplace_module", "F.relu", "torch.relu", "torch.relu_", "Tensor.relu_", "clamp", "torch.clamp",
        "clamp_min", "clamp_", "maximum"]


@pytest.mark.parametrize("how", WAYS)
@pytest.mark.parametrize("rule", list(HAND))
def test_three_relu_rules_match_hand_computed_values(how, rule):
    model = TwoLayer(how)
    x = torch.tensor([0.3, 0.6, 0.4, 0.8]).reshape(1, 1, 2, 2)
    with torch.no_grad():
        assert torch.allclose(model.fc1(x.flatten(1)), torch.tensor([[0.1, 0.2, -0.45]]))
    g = fw.gradient(model, x, target=0, rule=rule)
    assert torch.allclose(g.flatten(), torch.tensor(HAND[rule]), atol=1e-6)
    short = {"guided": fw.guided_backprop, "deconvnet": fw.deconvnet, "backprop": fw.gradient}[rule]
    assert torch.equal(short(model, x, target=0), g)


class FunctionalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 8, 3, padding=1, stride=2)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        return self.fc(x.mean((2, 3)))


class ModuleNet(FunctionalNet):
    def __init__(self):
        super().__init__()
        self.r1, self.r2 = nn.ReLU(), nn.ReLU(inplace=True)

    def forward(self, x):
        return self.fc(self.r2(self.c2(self.r1(self.c1(x)))).mean((2, 3)))


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_functional_relu_model_equals_the_same_model_with_relu_modules(rule):
    torch.manual_seed(1)
    a = FunctionalNet()
    b = ModuleNet()
    b.load_state_dict(a.state_dict())
    x = torch.rand(3, 3, 16, 16)
    ga, gb = fw.gradient(a, x, rule=rule), fw.gradient(b, x, rule=rule)
    assert torch.allclose(ga, gb, atol=1e-7)
    assert not torch.allclose(ga, fw.gradient(a, x), atol=1e-4)  # the rule really changed something


class ClampNet(FunctionalNet):
    """FunctionalNet with its ReLUs written as a maximum and a clamp."""

    def forward(self, x):
        x = torch.maximum(self.c1(x), torch.zeros(()))
        x = torch.clamp_min(self.c2(x), 0)
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
@pytest.mark.parametrize("tie", [False, True])
def test_relu_written_as_clamp_gets_the_rule_of_relu_exactly(rule, tie):
    torch.manual_seed(4)
    a, b = ClampNet(), ModuleNet()
    x = torch.rand(2, 3, 16, 16)
    if tie:  # pre-activations exactly zero, where torch.maximum passes g / 2 and a ReLU passes nothing
        with torch.no_grad():
            b.c1.bias.zero_()
        x[:, :, 4:12, 4:12] = 0
    a.load_state_dict(b.state_dict())
    assert torch.equal(fw.gradient(a, x, 1, rule=rule), fw.gradient(b, x, 1, rule=rule))
    assert not torch.allclose(fw.gradient(a, x, 1, rule=rule), fw.gradient(a, x, 1), atol=1e-4)
    # a clamp with an upper bound, or a lower bound other than zero, is no ReLU: the plain gradient
    assert fw.engine.backward.rules.guide(torch.rand(3, requires_grad=True).clamp(0, 6).sum(), rule) == 0
    assert fw.engine.backward.rules.guide(torch.rand(3, requires_grad=True).clamp(min=0.1).sum(), rule) == 0


def test_lrp_treats_a_clamp_relu_as_a_relu():
    torch.manual_seed(5)
    a, b = ClampNet(), ModuleNet()
    a.load_state_dict(b.state_dict())
    x = torch.rand(2, 3, 16, 16)
    for rule in ("epsilon", "gamma", "alpha_beta"):
        assert torch.allclose(fw.lrp(a, x, 2, rule=rule), fw.lrp(b, x, 2, rule=rule), atol=1e-7)


class SeparateReluBlock(nn.Module):
    """torchvision's BasicBlock with two separate, non-in-place ReLU modules instead of one reused one."""

    def __init__(self, block):
        super().__init__()
        self.conv1, self.bn1, self.conv2, self.bn2 = block.conv1, block.bn1, block.conv2, block.bn2
        self.downsample = block.downsample
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + identity)


def separate_relu_resnet(model):
    twin = copy.deepcopy(model)
    twin.relu = nn.ReLU()
    for stage in (twin.layer1, twin.layer2, twin.layer3, twin.layer4):
        for i, block in enumerate(stage):
            stage[i] = SeparateReluBlock(block)
    return twin


def hook_guided_reference(model, x, target):
    """Classic guided backprop with backward hooks on separate non-in-place ReLU modules (independent code)."""
    handles = [m.register_full_backward_hook(lambda mod, gi, go: (gi[0].clamp(min=0),))
               for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        (g,) = torch.autograd.grad(out[torch.arange(len(x)), target].sum(), xg)
    finally:
        for h in handles:
            h.remove()
    return g


def test_resnet_reused_inplace_relu_equals_separate_relu_modules():
    torch.manual_seed(2)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics so that the blocks are not near-identities
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    twin = separate_relu_resnet(model).eval()
    x = torch.rand(2, 3, 64, 64)
    target = [3, 7]
    with torch.no_grad():
        assert torch.allclose(model(x), twin(x), atol=1e-5)
    ours = fw.guided_backprop(model, x, target)
    assert torch.allclose(ours, fw.guided_backprop(twin, x, target), atol=1e-6)
    ref = hook_guided_reference(twin, x, torch.tensor(target))
    assert torch.allclose(ours, ref, atol=1e-6, rtol=1e-4)
    assert not torch.allclose(ours, fw.gradient(model, x, target), atol=1e-4)


def test_other_activations_get_the_documented_generalization_with_a_warning():
    class Net(nn.Module):
        def __init__(self, act):
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(4, 3), act, nn.Linear(3, 2)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x.flatten(1))))

    torch.manual_seed(3)
    x = torch.rand(2, 1, 2, 2)
    for act in (nn.GELU(), nn.SiLU(), nn.ELU(), nn.Hardswish(inplace=True), nn.LeakyReLU(0.1)):
        net = Net(act)
        s = net.fc1(x.flatten(1)).detach()
        w1, w2 = net.fc1.weight.detach(), net.fc2.weight.detach()
        g = w2[1].expand(2, -1)  # incoming gradient of logit 1 at the activation output
        sr = s.clone().requires_grad_(True)
        ref = copy.deepcopy(act)
        if hasattr(ref, "inplace"):
            ref.inplace = False
        (d,) = torch.autograd.grad(ref(sr).sum(), sr)  # f'(s), computed apart from featwidget
        expected = {"guided": (d * g).clamp(min=0) @ w1, "deconvnet": g.clamp(min=0) @ w1}
        for rule, want in expected.items():
            fw.engine.backward.rules._warned.clear()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                got = fw.gradient(net, x, target=1, rule=rule)
                fw.gradient(net, x, target=1, rule=rule)
            assert torch.allclose(got.flatten(1), want, atol=1e-6), (type(act).__name__, rule)
            assert len([w for w in caught if "generalization" in str(w.message)]) == 1  # once, not every call


def test_unknown_rule_is_a_clear_error():
    with pytest.raises(fw.FeatwidgetError, match="Unknown rule 'guidedd'.*'guided'"):
        fw.gradient(TwoLayer("module"), torch.rand(1, 1, 2, 2), rule="guidedd")


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_swapped_context_manager_gives_the_same_rule_as_the_graph_walk(rule):
    torch.manual_seed(6)
    model = ClampNet().eval()
    x = torch.rand(2, 3, 16, 16)
    xg = x.clone().requires_grad_(True)
    with fw.engine.backward.swapped(rule):
        value = model(xg)[:, 1]
    (g,) = torch.autograd.grad(value.sum(), xg)
    assert torch.equal(g, fw.gradient(model, x, 1, rule=rule))
    # outside the block nothing is swapped
    xg = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(model(xg)[:, 1].sum(), xg)
    assert torch.equal(plain, fw.gradient(model, x, 1)) and not torch.equal(plain, g)
