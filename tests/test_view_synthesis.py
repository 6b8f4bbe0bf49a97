"""Python side of fw.FeatureVis / fw.Inversion / fw.Adversarial: live knobs reach the running optimization,
start / stop / reset, restarts on objective changes, results and errors, and the model is left untouched."""
import threading

import numpy as np
import pytest
import torch

import featwidget as fw
from featwidget.engine import assert_unchanged, snapshot
from featwidget.widgets._base import from_payload
from models import FunctionalReluNet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def small():
    torch.manual_seed(0)
    m = FunctionalReluNet().train()
    return m, fw.wrap(m, input_size=(3, 32, 32), mean=0.5, std=0.25, classes=[f"c{i}" for i in range(10)])


def test_featurevis_live_knob_reaches_the_running_optimization_without_restart(small):
    m, net = small
    snap = snapshot(m)
    view = fw.FeatureVis(net, layer="conv2", channel=3, steps=400, batch=2, start=False)
    steps_seen, moved = [], threading.Event()

    def on_result(change):
        r = change["new"]
        if r.get("images") is not None:
            steps_seen.append((r["seq"], r["step"]))
            if r["step"] >= 40 and not moved.is_set():
                moved.set()
                view.stop()

    view.observe(on_result, names=["result"])
    seq = view.start()
    # the slider moves while the run is going: the Settings object the running maximize reads changes at once
    view.tv = 1.5
    view.jitter = 0
    view.param = "pixel"
    assert view.settings.regularizers["tv"].value == 1.5 and view.settings.param == "pixel"
    assert moved.wait(120)
    view.wait(60)
    assert view.seq == seq  # no restart
    assert {s for s, _ in steps_seen} == {seq}
    assert [st for _, st in steps_seen] == sorted(st for _, st in steps_seen)
    r = view.result
    assert r["stopped"] is True and 40 <= r["step"] < 400 and view.status == "idle"
    assert from_payload(r["images"]).shape == (2, 3, 32, 32)
    curve = from_payload(r["objective"])
    assert curve.shape == (r["step"],) and np.isfinite(curve).all()  # one continuous curve
    assert len(view.to_png()) > 100
    assert_unchanged(m, snap)


def test_featurevis_objective_change_restarts_and_reset_clears(small):
    m, net = small
    view = fw.FeatureVis(net, layer="conv2", steps=12, start=True, seed=0)
    view.wait(60)
    first = view.seq
    assert view.result["step"] == 12 and "Channel" in view.result["target"]
    view.objective = "logprob"
    view.class_index = 4
    view.wait(60)
    assert view.seq > first and "LogProb(c=4)" in view.result["target"]
    view.diversity, view.batch = 1.0, 3
    view.wait(60)
    assert "Diversity" not in view.result["target"] or view.objective != "logprob"
    view.objective = "channel"
    view.wait(60)
    assert "Diversity" in view.result["target"] and from_payload(view.result["images"]).shape[0] == 3
    view.tv = 0.7
    view.reset()
    assert view.result == {} and view.tv == 0.0 and view.settings.regularizers["tv"].value == 0.0
    view._on_message(None, {"action": "start"}, [])  # the start button
    view.wait(60)
    assert view.result["step"] == 12


def test_featurevis_bad_live_value_is_refused_with_a_fix(small):
    m, net = small
    view = fw.FeatureVis(net, layer="conv2", steps=5, start=False)
    view.tv = 0.2
    view.tv = -1.0
    assert view.status == "error" and "TV.value must be a number at least 0" in view.error
    assert view.settings.regularizers["tv"].value == 0.2
    view.layer = "nope"  # compute trait: the worker reports the unknown layer with suggestions
    view.wait(30)
    assert view.status == "error" and "Unknown layer 'nope'" in view.error


def test_inversion_view_layer_slider_and_loss(small):
    m, net = small
    snap = snapshot(m)
    x = torch.rand(3, 32, 32)
    view = fw.Inversion(net, x, layer="conv1", steps=30)
    view.wait(60)
    r = view.result
    assert from_payload(r["reconstruction"]).shape == (3, 32, 32) and from_payload(r["loss"]).shape == (30,)
    first = view.seq
    view.layer = "conv2"
    view.wait(60)
    assert view.seq == first + 1 and view.result["layer"] == "conv2"
    assert len(view.to_png()) > 100
    assert_unchanged(m, snap)


def test_adversarial_view_before_after_and_epsilon(small):
    m, net = small
    snap = snapshot(m)
    x = torch.rand(3, 32, 32)
    view = fw.Adversarial(net, x, steps=5)
    view.wait(60)
    r = view.result
    delta = from_payload(r["delta"])
    assert np.abs(delta).max() <= 8 / 255 + 1e-6 and len(r["trajectory"]) == 6
    assert len(view.before) == 5 and len(r["after"]) == 5
    assert r["fooled"] == (r["trajectory"][-1]["class"] != view.before[0]["index"])
    view.epsilon = 2 / 255
    view.wait(60)
    assert np.abs(from_payload(view.result["delta"])).max() <= 2 / 255 + 1e-6
    runner_up = view.before[1]["index"]
    view.target_class = runner_up
    view.epsilon = 0.5
    view.steps = 20
    view.wait(60)
    assert view.result["trajectory"][-1]["class"] == runner_up and view.result["fooled"]
    view.norm = "l1"
    view.wait(30)
    assert view.status == "error" and "norm must be 'linf' or 'l2'" in view.error
    assert len(fw.Adversarial(net, x, steps=2).wait(60).to_png()) > 100
    assert_unchanged(m, snap)
