"""Only the channels an objective reads (synthesis/channels.py): same values and gradients, and never where the
zero channels could be seen."""
import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

import featwidget as fw
from featwidget.engine import preserved
from featwidget.engine.synthesis.channels import OnlyChannels, channels_read

pytestmark = pytest.mark.usefixtures("one_thread")
maximize_module = importlib.import_module("featwidget.engine.synthesis.maximize")


class ConvWeights(TorchFunctionMode):
    """Records the weight shape of every convolution."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.conv2d:
            self.shapes.append(tuple(args[1].shape))
        return func(*args, **(kwargs or {}))


def small(groups=1):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1, groups=groups), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
    return m, fw.wrap(m, input_size=(3, 20, 20), mean=0.5, std=0.25)


@pytest.mark.parametrize("target", [fw.Channel("2", 5), fw.Neuron("2", 3, 4, 7),
                                    fw.Channel("2", 5) - 0.5 * fw.Channel("2", 11) + fw.Neuron("2", 5)])
def test_read_channels_value_and_gradient_equal_the_full_convolution(target):
    m, net = small()
    found = channels_read(net, target)
    assert found is not None and found[0] is m[2]
    x = torch.rand(3, 3, 20, 20)
    with preserved(m):
        xi = x.clone().requires_grad_(True)
        full = net.evaluate(xi, target)
        (g_full,) = torch.autograd.grad(full.sum(), xi)
        spy = ConvWeights()
        xi = x.clone().requires_grad_(True)
        with spy, OnlyChannels(*found):
            part = net.evaluate(xi, target)
        (g_part,) = torch.autograd.grad(part.sum(), xi)
    assert spy.shapes[-1][0] == len(found[1]) < 16  # the objective layer computed only the channels read
    assert torch.allclose(part, full, rtol=1e-6, atol=1e-7)
    assert (g_part - g_full).abs().max() <= 1e-5 * g_full.abs().max()


def test_not_used_where_the_zero_channels_could_be_seen():
    m, net = small()
    assert channels_read(net, fw.Channel("2", 5) + fw.Logit(1)) is None  # the pass runs on to the output
    assert channels_read(net, fw.LayerNorm("2")) is None  # reads every channel
    assert channels_read(net, fw.Channel("0", 2) + fw.Channel("2", 5)) is None  # two layers
    assert channels_read(net, fw.Channel("3", 5)) is None  # not a convolution
    assert channels_read(net, fw.Channel("2", [1, 2, 3])) is None  # per-image channels
    assert channels_read(small(groups=2)[1], fw.Channel("2", 5)) is None
    seen = []
    handle = m[2].register_forward_hook(lambda mod, inp, out: seen.append(out.detach().clone()))
    try:
        assert channels_read(net, fw.Channel("2", 5)) is None  # a user's hook sees the whole output
        fw.maximize(net, fw.Channel("2", 5), steps=1, transforms=None, seed=0)
    finally:
        handle.remove()
    assert bool((seen[-1].flatten(2).abs().amax(2) > 0).all())


def test_maximize_is_the_same_with_and_without(monkeypatch):
    _, net = small()
    target = fw.Channel("2", 5) + 0.3 * fw.Neuron("2", 9)
    kwargs = dict(steps=6, size=20, batch=2, seed=3, transforms={"jitter": 2, "rotate": 5.0})
    spy = ConvWeights()
    with spy:
        sliced = fw.maximize(net, target, **kwargs)
    assert (2, 8, 3, 3) in spy.shapes
    monkeypatch.setattr(maximize_module, "channels_read", lambda net, target: None)
    full = fw.maximize(net, target, **kwargs)
    assert torch.allclose(sliced.objective, full.objective, rtol=1e-5, atol=1e-7)
    assert torch.allclose(sliced.images, full.images, atol=1e-5)
