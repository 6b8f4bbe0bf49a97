"""fw.Filters and fw.Activations without a browser: traits -> exact results, cache use, errors, export."""
import numpy as np
import pytest
import torch
import torchvision
from ipywidgets.widgets.widget import _remove_buffers
from torch import nn

import featwidget as fw
from featwidget.engine import assert_unchanged, snapshot
from featwidget.widgets import render
from featwidget.widgets._base import from_payload

XSS = '<img src=x onerror="window.__xss=1">'
CLASSES = ["circle", "square", XSS, "star", "cross", "ring"]


def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 12, 3), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, len(CLASSES)),
    )


@pytest.fixture
def model():
    return tiny_cnn()


@pytest.fixture
def net(model):
    return fw.wrap(model, input_size=(3, 24, 24), mean=0.5, std=0.25, classes=CLASSES)


@pytest.fixture
def image():
    return torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(1))


def forward_counter(module):
    calls = []
    # a pre-hook: run(..., output=False) stops the pass early, so the module's forward never finishes
    handle = module.register_forward_pre_hook(lambda m, i: calls.append(1))
    return calls, handle


# ---------------------------------------------------------------------------------------------- Filters
def test_filters_first_layer_in_rgb_exactly_the_weights(net, model):
    v = fw.Filters(net).wait()
    assert (v.status, v.layer, v.mode, v.layers) == ("idle", "0", "rgb", ["0", "3"])
    r = v.result
    assert r["shown"] == "rgb" and r["in_channels"] == 3 and r["note"] == ""
    np.testing.assert_array_equal(from_payload(r["weights"]), model[0].weight.detach().numpy())
    assert r["min"] == pytest.approx(float(model[0].weight.detach().min()))
    assert v.hint == ""


def test_filters_deeper_layer_mean_or_one_input_channel(net, model):
    w = model[3].weight.detach()
    v = fw.Filters(net, layer="3").wait()
    assert v.mode == "mean"  # picked because layer 3 has 8 inputs
    np.testing.assert_allclose(from_payload(v.result["weights"]), w.mean(1, keepdim=True).numpy(), rtol=1e-6)
    v.mode = "channel"
    v.in_channel = 5
    v.wait()
    np.testing.assert_array_equal(from_payload(v.result["weights"]), w[:, 5:6].numpy())
    assert v.result["shown"] == "channel"
    v.in_channel = 99  # past the last input channel: the last one, said visibly
    v.wait()
    np.testing.assert_array_equal(from_payload(v.result["weights"]), w[:, 7:8].numpy())
    assert "out of range 0..7" in v.result["note"]
    v.mode = "rgb"  # rgb on an 8-input layer shows the mean and says so
    v.wait()
    assert v.result["shown"] == "mean" and "needs 3 input channels" in v.result["note"]


def test_filters_errors_then_recovery(net):
    v = fw.Filters(net).wait()
    v.layer = "1"  # a ReLU
    v.wait()
    assert v.status == "error" and "not a convolution" in v.error and "0, 3" in v.error
    v.mode = "sideways"
    v.wait()
    assert v.status == "error" and "Unknown mode 'sideways'" in v.error
    v.mode = "mean"
    v.layer = "3"
    v.wait()
    assert (v.status, v.error, v.result["layer"]) == ("idle", "", "3")


def test_filters_plain_module_gets_defaults_and_a_hint(model):
    snap = snapshot(model)
    v = fw.Filters(model).wait()
    assert v.status == "idle" and "mean" in v.hint and "std" in v.hint and "fw.wrap" in v.hint
    assert_unchanged(model, snap)
    with pytest.raises(fw.FeatwidgetError, match="expects an fw.Network or a torch.nn.Module"):
        fw.Filters("resnet")


def test_filters_plain_module_with_a_fixed_input_size_needs_no_forward_pass():
    lenet = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 24 * 24, 10))
    v = fw.Filters(lenet).wait()
    assert v.status == "idle" and v.layers == ["0"] and v.mode == "mean" and "mean/std" in v.hint
    np.testing.assert_array_equal(from_payload(v.result["weights"]), lenet[0].weight.detach().numpy())


def test_filters_png_export_is_the_grid(net):
    v = fw.Filters(net).wait()
    v.normalization, v.per_filter = "minmax", True
    pic = v.render()
    # 8 filters of 3x3, each blown up 8x (24 px) -> 3 columns x 3 rows with 2 px gaps
    assert pic.shape == (3 * 26 - 2, 3 * 26 - 2, 3)
    w = from_payload(v.result["weights"])[0]  # per-filter min-max: the smallest value is black in each channel
    lo, hi = w.min(), w.max()
    expected = np.round((np.moveaxis(w, 0, -1) - lo) / (hi - lo) * 255).astype(np.uint8)
    np.testing.assert_array_equal(pic[0:24:8, 0:24:8], expected)
    assert v.to_png()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------- Activations
def test_activations_maps_and_numbers_are_exact(net, image):
    v = fw.Activations(net, image).wait()
    assert v.status == "idle" and v.layer == "0" and v.channel == 0
    assert v.layers == ["0", "1", "2", "3", "4", "5"]
    ref = net.activations(image[None], ["0", "4"])
    maps = from_payload(v.result["maps"])
    np.testing.assert_array_equal(maps, ref["0"][0].numpy())
    v.layer = "4"
    v.wait()
    a = ref["4"][0]
    np.testing.assert_array_equal(from_payload(v.result["maps"]), a.numpy())
    s = v.result["stats"]
    np.testing.assert_allclose(from_payload(s["mean"]), a.mean((1, 2)).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(from_payload(s["max"]), a.amax((1, 2)).numpy())
    np.testing.assert_allclose(from_payload(s["zeros"]), (a == 0).float().mean((1, 2)).numpy())
    assert 0 < from_payload(s["zeros"]).mean() < 1  # a ReLU output: some zeros, not all
    rf = net.receptive_field("4")
    assert v.result["rf"] == {"stride": list(rf.stride), "offset": list(rf.offset)}
    np.testing.assert_array_equal(from_payload(v.input_image), np.round(image.numpy() * 255).astype(np.uint8))


def test_activations_top5_predictions_keep_class_names_verbatim(net, image):
    v = fw.Activations(net, image).wait()
    want = net.predict(image[None], k=5)[0]
    assert [(p["index"], p["label"]) for p in v.predictions] == [(i, label) for i, label, _ in want]
    assert [p["prob"] for p in v.predictions] == pytest.approx([q for _, _, q in want])
    hostile = fw.wrap(tiny_cnn(), input_size=(3, 24, 24), classes=[XSS] * len(CLASSES))
    assert fw.Activations(hostile, image).wait().predictions[0]["label"] == XSS


def test_layer_and_channel_changes_run_no_forward_pass(net, model, image):
    v = fw.Activations(net, image).wait()
    calls, handle = forward_counter(model)
    computes = []
    original = v.compute
    v.compute = lambda progress: computes.append(v.layer) or original(progress)
    try:
        for layer in ["3", "4", "2", "0"]:
            v.layer = layer
            v.wait()
            assert v.status == "idle" and v.result["layer"] == layer
        seq = v.seq
        for c in [3, 1, 7]:
            v.channel = c  # served from the maps already in `result`: no request at all
        assert v.seq == seq and v.result_seq == seq
    finally:
        handle.remove()
    assert calls == []
    assert computes == ["3", "4", "2", "0"]


def test_channel_is_clamped_when_the_layer_has_fewer_channels(net, image):
    v = fw.Activations(net, image, layer="3", channel=11).wait()
    assert v.channel == 11
    v.layer = "0"  # 8 channels
    v.wait()
    assert v.channel == 7


def test_invalid_layer_from_python_is_an_error_and_a_valid_one_recovers(net, image):
    v = fw.Activations(net, image).wait()
    v.layer = "conv9"
    v.wait()
    assert v.status == "error" and "Unknown layer 'conv9'" in v.error and v.result_seq < v.seq
    v.layer = "7"  # the Linear layer: no channel maps
    v.wait()
    assert v.status == "error" and "not channel maps" in v.error
    v.layer = "3"
    v.wait()
    assert (v.status, v.error, v.result["layer"], v.result_seq) == ("idle", "", "3", v.seq)


def test_bytes_per_update_are_four_per_map_value(net, image):
    v = fw.Activations(net, image, layer="3").wait()
    _, _, buffers = _remove_buffers({"result": v.result})
    c, h, w = v.result["maps"]["shape"]
    assert sum(memoryview(b).nbytes for b in buffers) == 4 * c * h * w + 3 * 4 * c


def test_activations_plain_module_and_safety(model, image):
    model.train()
    snap = snapshot(model)
    v = fw.Activations(model, image).wait()
    assert v.status == "idle" and "mean" in v.hint and "std" in v.hint
    v.layer = "3"
    v.wait()
    assert_unchanged(model, snap)
    assert model.training
    with pytest.raises(fw.FeatwidgetError, match="batch of 2"):
        fw.Activations(model, torch.rand(2, 3, 24, 24))


def test_set_image_recomputes(net, image):
    v = fw.Activations(net, image, layer="3").wait()
    other = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(7))
    v.set_image(other)
    v.wait()
    np.testing.assert_array_equal(from_payload(v.result["maps"]), net.activations(other[None], "3")["3"][0].numpy())


def test_activations_png_is_the_input_under_the_chosen_map(net, image):
    v = fw.Activations(net, image, layer="0", channel=2).wait()
    v.opacity = 0.0
    k = round(256 / 24)
    base = render.upscale(render.image_rgb(from_payload(v.input_image)), k)
    np.testing.assert_array_equal(v.render(), base)
    v.opacity, v.colormap, v.normalization = 1.0, "gray", "minmax"
    m = from_payload(v.result["maps"])[2]  # stride 1 with padding: unit (i, j) sits on pixel (i, j)
    expected = np.round((m - m.min()) / (m.max() - m.min()) * 256)
    got = v.render()[::k, ::k, 0]
    np.testing.assert_array_equal(got, render.colorize((m - m.min()) / (m.max() - m.min()), "gray")[..., 0])
    assert abs(got.astype(float) - expected * 255 / 256).max() <= 1


def test_resnet_layer_changes_are_cache_hits(image):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    net = fw.wrap(model, input_size=(3, 64, 64))
    x = torch.rand(3, 64, 64)
    v = fw.Activations(net, x).wait()
    calls, handle = forward_counter(model)
    try:
        for layer in ["layer1.0.relu", "layer3", "layer4.1", "maxpool"]:  # reused in-place ReLUs included
            v.layer = layer
            v.wait()
            assert v.status == "idle"
    finally:
        handle.remove()
    assert calls == []
    np.testing.assert_array_equal(from_payload(v.result["maps"]), net.activations(x[None], "maxpool")["maxpool"][0])
