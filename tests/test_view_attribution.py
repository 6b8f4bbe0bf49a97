"""fw.Attribution, Python side: every method through the view equals the engine, streaming, superseding,
compare mode, errors that recover, headless export."""
import numpy as np
import pytest
import torch
from torch import nn

import featwidget as fw
from featwidget.widgets._base import from_payload
from featwidget.widgets.attribution import METHODS, to_map
from models import tiny_gap_cnn


@pytest.fixture
def setup():
    net = fw.wrap(tiny_gap_cnn(), input_size=(3, 16, 16), mean=0.5, std=0.25, classes=list("abcd"))
    x = torch.rand(1, 3, 16, 16)
    view = fw.Attribution(net, x[0])
    yield net, x, view.wait(60)
    view.close()


def shown(view):
    return from_payload(view.result["map"])


def test_each_method_shows_the_engine_map(setup):
    net, x, view = setup
    assert view.status == "idle" and view.result_seq == view.seq and view.result["method"] == "guided"
    assert np.allclose(shown(view), to_map(fw.guided_backprop(net, x)).numpy(), atol=1e-6)
    assert [p["label"] for p in view.predictions] == [net.classes[i] for i, _, _ in net.predict(x, 4)[0]]
    assert view.layer == "5"  # Grad-CAM's default: the last convolutional feature map
    engine = {
        "gradient": lambda: fw.gradient(net, x, 2), "saliency": lambda: fw.saliency(net, x, 2),
        "input_x_gradient": lambda: fw.input_x_gradient(net, x, 2), "deconvnet": lambda: fw.deconvnet(net, x, 2),
        "guided": lambda: fw.guided_backprop(net, x, 2), "cam": lambda: fw.cam(net, x, 2),
        "smoothgrad": lambda: fw.smoothgrad(net, x, 2, samples=50, seed=0),
        "integrated_gradients": lambda: fw.integrated_gradients(net, x, 2, steps=50),
        "grad_cam": lambda: fw.grad_cam(net, x, 2, layer="5"),
        "guided_grad_cam": lambda: fw.guided_grad_cam(net, x, 2, layer="5"),
        "lrp": lambda: fw.lrp(net, x, 2, epsilon=1e-6),
    }
    assert set(engine) == set(METHODS)
    view.target = 2
    for method in METHODS:
        before = view.seq
        view.method = method
        view.wait(60)
        assert view.seq == before + 1 and view.result_seq == view.seq and view.status == "idle", view.error
        assert view.result["method"] == method and "partial" not in view.result
        assert np.allclose(shown(view), to_map(engine[method]()).numpy(), atol=1e-5, rtol=1e-4), method


def test_knobs_reach_the_engine_and_a_custom_target_works():
    net = fw.wrap(tiny_gap_cnn(), input_size=(3, 16, 16))
    x = torch.rand(1, 3, 16, 16)
    target = fw.Logit(1) - fw.Logit(3)
    view = fw.Attribution(net, x, method="lrp", target=target, lrp_rule="gamma").wait(60)
    assert "Logit" in view.target_label and view.target == -1
    assert np.allclose(shown(view), to_map(fw.lrp(net, x, target, rule="gamma")).numpy(), atol=1e-6)
    with view.hold_trait_notifications():
        view.method, view.steps, view.baseline = "integrated_gradients", 7, "blur"
    view.wait(60)
    want = fw.integrated_gradients(net, x, target, steps=7, baseline="blur")
    assert np.allclose(shown(view), to_map(want).numpy(), atol=1e-6)
    view.close()


def test_smoothgrad_streams_running_means_and_a_new_sigma_supersedes(setup):
    net, x, view = setup
    seen = []
    view.observe(lambda ch: seen.append(dict(ch["new"])), names=["result"])
    view.samples = 60
    view.method = "smoothgrad"
    view.wait(60)
    final = seen[-1]
    assert final["seq"] == view.seq and "partial" not in final
    partial = [r for r in seen if r.get("partial")]
    assert partial and all(r["seq"] == view.seq for r in partial)  # running means of the newest request only
    assert not np.allclose(from_payload(partial[0]["map"]), from_payload(final["map"]))
    # two sigma changes in a row: the first request is cancelled, only the second one is ever published
    seen.clear()
    view.sigma = 0.3
    first = view.seq
    view.sigma = 0.05
    view.wait(60)
    assert view.seq == first + 1 and all(r["seq"] == view.seq for r in seen)
    want = fw.smoothgrad(net, x, None, sigma=0.05, samples=60, seed=0)
    assert np.allclose(shown(view), to_map(want).numpy(), atol=1e-6)


def test_compare_mode_shows_every_method_and_says_which_cannot_run():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    view = fw.Attribution(model, torch.rand(3, 8, 8), compare=True).wait(120)
    assert view.status == "idle", view.error
    maps = from_payload(view.result["maps"])
    assert maps.shape == (len(METHODS), 8, 8) and view.result["methods"] == METHODS
    cam = METHODS.index("cam")
    assert "global average pooling" in view.result["errors"][cam] and np.isnan(maps[cam]).all()
    assert all(not e for i, e in enumerate(view.result["errors"]) if i != cam)
    assert np.isfinite(np.delete(maps, cam, axis=0)).all()
    png = view.to_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    view.close()


def test_errors_show_in_the_banner_and_the_view_recovers(setup):
    net, x, view = setup
    view.method = "grad_cam"
    view.layer = "nope"
    view.wait(60)
    assert view.status == "error" and "Unknown layer 'nope'" in view.error
    view.layer = "2"
    view.wait(60)
    assert view.status == "idle" and view.error == ""
    assert np.allclose(shown(view), to_map(fw.grad_cam(net, x, layer="2")).numpy(), atol=1e-6)
    png = view.to_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
