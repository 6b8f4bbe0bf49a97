"""fw.Occlusion, Python side: the map equals the engine's, coarse-to-fine publishing, targets, errors, export."""
import numpy as np
import pytest
import torch

import featwidget as fw
from featwidget.widgets._base import from_payload
from models import tiny_gap_cnn


@pytest.fixture
def setup():
    net = fw.wrap(tiny_gap_cnn(), input_size=(3, 24, 24), mean=0.5, std=0.25, classes=list("abcd"))
    x = torch.rand(1, 3, 24, 24)
    view = fw.Occlusion(net, x[0], size=6, stride=2)
    seen = []
    view.observe(lambda ch: seen.append((ch["new"].get("seq"), bool(ch["new"].get("coarse")),
                                         bool(ch["new"].get("partial")))), names="result")
    yield net, x, view.wait(60), seen
    view.close()


def shown(view):
    return torch.from_numpy(from_payload(view.result["map"]).copy())


def test_view_shows_the_engine_map_coarse_first(setup):
    net, x, view, seen = setup
    assert view.status == "idle", view.error
    assert torch.allclose(shown(view), fw.occlusion(net, x, None, 6, 2)[0, 0], atol=1e-6)
    assert view.result["coarse"] is False and "partial" not in view.result
    seen.clear()
    before = view.seq
    view.size = 8
    view.wait(60)
    assert view.seq == before + 1 and view.result["size"] == 8
    assert torch.allclose(shown(view), fw.occlusion(net, x, None, 8, 2)[0, 0], atol=1e-6)
    mine = [s for s in seen if s[0] == view.seq]
    assert mine[0] == (view.seq, True, True) and mine[-1] == (view.seq, False, False)  # coarse, then full
    grid = from_payload(view.result["grid"])
    assert grid.shape == (len(view.result["ys"]), len(view.result["xs"]))
    assert abs(view.result["value"] - float(torch.softmax(net(x), 1).max())) < 1e-6


def test_stride_is_clamped_to_size_and_targets(setup):
    net, x, view, _ = setup
    view.stride = 20  # larger than the patch: clamped (the slider's range is the size)
    view.wait(60)
    assert view.result["stride"] == 6 and view.status == "idle"
    assert torch.allclose(shown(view), fw.occlusion(net, x, None, 6, 6)[0, 0], atol=1e-6)
    view.target = 2
    view.wait(60)
    assert torch.allclose(shown(view), fw.occlusion(net, x, fw.Prob(2), 6, 6)[0, 0], atol=1e-6)
    assert view.result["target"] == "probability of c"
    view.fill = "blur"
    view.wait(60)
    assert torch.allclose(shown(view), fw.occlusion(net, x, fw.Prob(2), 6, 6, "blur")[0, 0], atol=1e-6)
    assert from_payload(view.result["fill_image"]).shape == (3, 24, 24)


def test_custom_target_errors_recover_and_export(setup, tmp_path):
    net, x, _, _ = setup
    view = fw.Occlusion(net, x[0], size=6, stride=3, target=fw.Channel("4", 1) - fw.Logit(0))
    view.wait(60)
    assert torch.allclose(shown(view), fw.occlusion(net, x, fw.Channel("4", 1) - fw.Logit(0), 6, 3)[0, 0],
                          atol=1e-6)
    view.fill = "purple"
    view.wait(60)
    assert view.status == "error" and "Unknown fill" in view.error
    view.fill = "zero"
    view.wait(60)
    assert view.status == "idle" and view.error == ""
    png = view.to_png(tmp_path / "occ.png")
    assert png[:4] == b"\x89PNG" and (tmp_path / "occ.png").exists()
    view.close()


def test_demo_view_defaults():
    demo = fw.demo.load("shapes")
    view = fw.Occlusion(demo.network, demo.images[0])
    view.wait(60)
    assert (view.size, view.stride, view.max_size) == (16, 8, 32) and view.status == "idle", view.error
    assert np.isfinite(from_payload(view.result["map"])).all()
    view.close()
