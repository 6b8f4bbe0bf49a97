"""Every backward method on several architectures: the safety contract (DESIGN.md section 4), per-sample and
hidden-layer targets, stopping the forward pass at a hidden target, cancelling, and the demo models."""
import warnings

import pytest
import torch
from torch import nn

import featwidget as fw
from featwidget.engine import assert_unchanged, snapshot
from models import completeness_errors, tiny_gap_cnn

METHODS = {
    "gradient": lambda n, x, t: fw.gradient(n, x, t),
    "saliency": lambda n, x, t: fw.saliency(n, x, t),
    "guided_backprop": lambda n, x, t: fw.guided_backprop(n, x, t),
    "deconvnet": lambda n, x, t: fw.deconvnet(n, x, t),
    "input_x_gradient": lambda n, x, t: fw.input_x_gradient(n, x, t),
    "smoothgrad": lambda n, x, t: fw.smoothgrad(n, x, t, samples=2, method="guided", seed=0),
    "integrated_gradients": lambda n, x, t: fw.integrated_gradients(n, x, t, steps=2),
    "cam": lambda n, x, t: fw.cam(n, x, t),
    "grad_cam": lambda n, x, t: fw.grad_cam(n, x, t),
    "guided_grad_cam": lambda n, x, t: fw.guided_grad_cam(n, x, t),
    "lrp": lambda n, x, t: fw.lrp(n, x, t, rule="gamma"),
}
CHANNELS_OUT = {"saliency": 1, "cam": 1, "grad_cam": 1}
# the errors the issue allows: CAM needs a GAP + linear head, LRP names a layer it has no rule for
ALLOWED = {("vgg11", "cam"), ("alexnet", "cam"), ("mobilenet_v3_small", "cam"), ("mobilenet_v3_small", "lrp"),
           ("gelu", "lrp")}


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "alexnet", "mobilenet_v3_small", "functional_relu", "gelu"])
def test_every_method_keeps_the_model_unchanged(model_zoo, name):
    module, size = model_zoo[name]
    net = fw.wrap(module, input_size=size, mean=0.45, std=0.25)
    x = torch.rand(1, *size)
    snap = snapshot(module)
    for method, call in METHODS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # generalized rules on Hardswish / GELU warn, tested elsewhere
            try:
                out = call(net, x, 4)
            except fw.FeatwidgetError as e:
                assert (name, method) in ALLOWED, f"{name} {method}: {e}"
                assert_unchanged(module, snap)
                continue
        assert (name, method) not in ALLOWED, f"{name} {method} was expected to refuse"
        assert out.shape == (1, CHANNELS_OUT.get(method, 3), *size[1:]), (method, out.shape)
        assert out.device == x.device and torch.isfinite(out).all(), method
        assert out.abs().sum() > 0, method
    # one comparison after all calls: parameters, buffers, .grad, hooks and flags cannot drift back by chance
    # (comparing after each call clones vgg11's 130M parameters eleven times)
    assert_unchanged(module, snap)
    assert all(m.training for m in module.modules())  # handed over in train mode, still in train mode


def test_module_state_survives_an_error_in_the_middle_of_a_forward_pass():
    class Breaks(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 2)
            self.fail = False

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x)))
            if self.fail:
                raise RuntimeError("boom")
            return self.fc(x.mean((2, 3)))

    m = Breaks().train()
    net = fw.wrap(m, input_size=(3, 8, 8))
    m.fail = True
    snap = snapshot(m)
    for call in (lambda: fw.guided_backprop(net, torch.rand(1, 3, 8, 8)), lambda: fw.lrp(net, torch.rand(1, 3, 8, 8))):
        with pytest.raises(RuntimeError, match="boom"):
            call()
        assert_unchanged(m, snap)
        assert m.training
    # the rule swap is gone afterwards: a plain autograd pass outside featwidget is the plain gradient
    m.fail = False
    m.eval()
    xg = torch.rand(1, 3, 8, 8, requires_grad=True)
    (g,) = torch.autograd.grad(m(xg)[0, 1], xg)
    assert torch.allclose(g, fw.gradient(net, xg.detach(), 1))


@pytest.mark.parametrize("method", list(METHODS))
def test_per_sample_targets_equal_one_image_at_a_time(method):
    m = tiny_gap_cnn(classes=5)
    net = fw.wrap(m, input_size=(3, 16, 16))
    x = torch.rand(3, 3, 16, 16)
    target = fw.Logit([0, 3, 1]) - 0.5 * fw.Logit([2, 2, 4])
    batch = METHODS[method](net, x, target)
    single = torch.cat([METHODS[method](net, x[i:i + 1], fw.Logit(c) - 0.5 * fw.Logit(d))
                        for i, (c, d) in enumerate([(0, 2), (3, 2), (1, 4)])])
    if method == "smoothgrad":  # a different noise draw per call: compare at sigma = 0 instead
        batch = fw.smoothgrad(net, x, target, sigma=0, samples=2, method="guided")
        single = fw.guided_backprop(net, x, target)
    assert torch.allclose(batch, single, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "cam"])
def test_a_hidden_unit_target_stops_the_forward_pass_at_its_layer(method):
    m = tiny_gap_cnn(classes=5, seed=1)
    net = fw.wrap(m, input_size=(3, 16, 16))
    x = torch.rand(2, 3, 16, 16)
    calls = []
    handle = m[4].register_forward_hook(lambda *a: calls.append(1))  # the layer after the target's layer
    try:
        call = METHODS[method]
        if method in ("grad_cam", "guided_grad_cam"):
            out = (fw.grad_cam if method == "grad_cam" else fw.guided_grad_cam)(net, x, fw.Neuron("2", 3), layer="0")
        else:
            out = call(net, x, fw.Neuron("2", 3))
    finally:
        handle.remove()
    assert calls == [] and out.abs().sum() > 0


def test_hidden_unit_and_channel_gradients_are_exact():
    m = tiny_gap_cnn(classes=5, seed=2).eval()
    x = torch.rand(2, 3, 16, 16)
    xg = x.clone().requires_grad_(True)
    a = m[:3](xg)
    (want,) = torch.autograd.grad(a[:, 3, 8, 8].sum() - a[:, 1].mean((1, 2)).sum(), xg)
    got = fw.gradient(m, x, fw.Neuron("2", 3) - fw.Channel("2", 1))
    assert torch.allclose(got, want, atol=1e-6)


def _demo(name):
    return fw.demo.load(name)  # the weights ship with the package: a missing one is a failure


@pytest.mark.parametrize("name", ["shapes", "shapes-confounded", "digits"])
def test_demo_models_safety_and_integrated_gradients_completeness(name):
    demo = _demo(name)
    net = demo.network
    x = demo.images[:2]
    snap = snapshot(net.module)
    for method, call in METHODS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out = call(net, x, None)
            except fw.FeatwidgetError as e:
                assert method == "cam" and name == "digits", f"{name} {method}: {e}"
                continue
        assert out.shape[0] == 2 and out.shape[2:] == x.shape[2:] and torch.isfinite(out).all(), method
        assert_unchanged(net.module, snap)
    # completeness within 1 % at 64 steps (the check), black baseline; the adaptive rule also beats
    # the uniform midpoint rule at the same number of gradient evaluations
    err = completeness_errors(net, demo.images[:4], steps=64, batch_size=32)
    assert (err[True][:2] <= 0.01).all(), err
    assert err[True].sum() < err[False].sum(), err
