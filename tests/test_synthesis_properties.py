"""Properties of input reconstruction on the trained demo model (issue 6, "must show").

All on fw.demo.load("shapes") (64x64, a small ResNet), with few steps so the module stays quick.
"""
import pytest
import torch

import featwidget as fw

pytestmark = pytest.mark.usefixtures("one_thread")

DEMO = "shapes"
STEPS_MAX = 96     # channel maximization
STEPS_HF = 48      # high-frequency comparison
STEPS_INV = 100    # inversion per stage
STEPS_GEN = 40     # DGN-AM


@pytest.fixture(scope="module")
def demo():
    return fw.demo.load(DEMO)


@pytest.fixture(scope="module")
def net(demo):
    return demo.network


def _eval(net, x, target):
    with torch.no_grad(), fw.engine.preserved(net.module):
        return net.evaluate(x, target)


def high_frequency_share(img: torch.Tensor) -> torch.Tensor:
    """Share of the spectral power (per image, summed over channels, mean removed) at spatial frequencies above
    half the Nyquist frequency, i.e. |f| > 0.25 cycles per pixel."""
    centred = img - img.mean((2, 3), keepdim=True)
    power = torch.fft.fft2(centred).abs().pow(2).sum(1)
    fy = torch.fft.fftfreq(img.shape[-2])[:, None]
    fx = torch.fft.fftfreq(img.shape[-1])[None, :]
    high = (fy * fy + fx * fx).sqrt() > 0.25
    return power[:, high].sum(1) / power.flatten(1).sum(1)


def test_high_frequency_share_of_known_images():
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2  # all power at Nyquist
    assert high_frequency_share(checker.float().expand(1, 3, 16, 16)).item() == pytest.approx(1.0)
    y = torch.arange(32).float()
    slow = torch.sin(2 * torch.pi * y / 16)[None, None, :, None].expand(1, 1, 32, 32)  # 1/16 cycle per pixel
    assert high_frequency_share(slow).item() == pytest.approx(0.0, abs=1e-9)


def test_maximization_beats_every_one_of_1000_demo_images(net):
    data = fw.demo.dataset(DEMO, 1000, seed=1, split="test").images
    with torch.no_grad():
        acts = net.activations(data, ["layer3"])["layer3"].mean((2, 3))  # (1000, C) channel means
    best = acts.max(0).values
    chans = best.argsort(descending=True)[:4].tolist()  # the four channels the data drives hardest
    r = fw.maximize(net, fw.Channel("layer3", chans), batch=4, steps=STEPS_MAX, lr=0.1, seed=0)
    reached = _eval(net, r.images, fw.Channel("layer3", chans))
    assert (reached > best[chans]).all(), (reached, best[chans])


def test_total_variation_and_blur_remove_high_frequencies(net, demo):
    # the default (Fourier) parameterization already damps high frequencies; the priors must still cut them
    kw = dict(batch=3, steps=STEPS_HF, seed=0, lr=0.1)
    with torch.no_grad():
        peak = net.activations(demo.images, ["layer2"])["layer2"].amax((0, 2, 3))
    target = fw.Channel("layer2", peak.argsort(descending=True)[:3].tolist())
    plain = fw.maximize(net, target, **kw)
    smooth = fw.maximize(net, target, regularizers={"tv": 0.5, "blur": 1.0}, **kw)
    hf_plain, hf_smooth = high_frequency_share(plain.images), high_frequency_share(smooth.images)
    assert (hf_smooth < 0.5 * hf_plain).all(), (hf_plain, hf_smooth)
    # smoother, yet still a maximization: the objective went up under the priors too
    assert (smooth.objective[-1] > smooth.objective[0]).all()


def test_log_softmax_makes_the_target_the_top_class_more_often_than_the_logit(net):
    # Nguyen et al. 2019, Table 1: raising a raw logit can also raise its rivals; the log-softmax cannot.
    # fw.maximize at its defaults (256 steps, decorrelated Fourier parameterization, standard transforms, no
    # penalties, lr 0.05), every class twice (20 images, each from its own random start and transforms), counted
    # at the END of the optimization. Measured here (5 seeds x 10 classes): the logit objective reaches the class
    # in 37 of 50 runs and loses some with more steps (its rivals keep rising), the log-softmax in 48 of 50.
    classes = list(range(len(net.classes))) * 2
    hits = {}
    for name, kind in (("logit", fw.Logit), ("logprob", fw.LogProb)):
        r = fw.maximize(net, kind(classes), batch=len(classes), seed=0)
        assert r.steps == 256
        with torch.no_grad():
            hits[name] = int((net(r.images).argmax(1) == torch.tensor(classes)).sum())
    assert hits["logprob"] > hits["logit"] and hits["logprob"] >= 0.9 * len(classes), hits


def relative_error(reconstruction: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per image ||x' - x||^2 / ||x - mean(x)||^2: 0 is perfect, 1 is no better than the image's mean value."""
    return (reconstruction - x).pow(2).flatten(1).sum(1) / (x - x.mean((1, 2, 3), keepdim=True)).pow(2).flatten(1).sum(1)


def test_inversion_error_grows_with_depth_across_the_digits_stages():
    # Mahendran & Vedaldi 2015 inversion at fw.invert's defaults (200 steps, alpha-norm 1e-4, TV 0.5), measured
    # in pixels as in Dosovitskiy & Brox 2016: the mean relative reconstruction error over 8 demo digits grows
    # strictly from stage to stage (conv block 1, conv block 2, fc1, fc2), while every code is matched (the
    # normalized code-space loss is small at every stage: the error is information the stage dropped, not a
    # failed optimization). Measured here over seeds 0-2: about 0.06, 0.25, 0.9, 1.05. The logits (one step
    # further) are as far from the image as fc2 (~1.0-1.1) and are not part of the claim.
    d = fw.demo.load("digits")
    x = d.images[:8]
    errors = []
    for stage in ["features.2", "features.5", "classifier.2", "classifier.4"]:
        r = fw.invert(d.network, x, stage, seed=0)
        assert r.loss[-1].mean() < 0.05, (stage, r.loss[-1])
        errors.append(relative_error(r.images, x).mean().item())
    assert all(b > 1.05 * a for a, b in zip(errors, errors[1:])), errors


def test_inversion_keeps_the_image_at_the_stem_and_loses_it_deeper(net, demo):
    # On the shapes model the plain pixel error is not ordered beyond the stem: the model was trained on random
    # colours and is largely colour-invariant, so reconstructions from layer1 on match the code in other colours
    # (errors around 1.5, worse than the mean colour). Measured with the best affine colour map fitted per image
    # (unexplained variance), the error does grow stage by stage at fw.invert's defaults over 8 images x 2 seeds
    # x 200 steps (stem 0.08, layer1 0.27, layer2 0.35, layer3 0.43, avgpool 0.55), but with 4 images and 100
    # or 150 steps layer2 and layer3 come within 0.01 of each other for some seeds, so this quick test (its own
    # lr and TV) asserts the robust part only: the stem keeps the image, every later stage loses most of it.
    x = demo.images[::4]  # 4 images of different classes
    stages = ["relu", "layer1", "layer2", "layer3"]
    errors = []
    for s in stages:
        r = fw.invert(net, x, s, steps=STEPS_INV, lr=0.1, tv=0.05, seed=0)
        assert (r.loss[-1] < 0.5 * r.loss[0]).all()  # the code itself is matched: the loss fell
        errors.append(relative_error(r.images, x).mean().item())
    assert errors[0] < 0.6 * min(errors[1:]), dict(zip(stages, errors))


def test_adversarial_flips_90_percent_within_15_steps_at_8_over_255(net):
    data = fw.demo.dataset(DEMO, 80, seed=2, split="test")
    with torch.no_grad():
        correct = net(data.images).argmax(1) == data.labels
    x = data.images[correct][:50]
    assert x.shape[0] == 50
    r = fw.adversarial(net, x, steps=15, epsilon=8 / 255, norm="linf")
    assert r.delta.abs().max() <= 8 / 255 + 1e-6 and r.images.min() >= 0 and r.images.max() <= 1
    assert r.classes.shape == (16, 50) and (r.classes[0] == data.labels[correct][:50]).all()
    assert r.fooled.float().mean() >= 0.9, r.fooled.float().mean()
    # targeted, L2: the runner-up class is reached for most images
    with torch.no_grad():
        runner_up = net(x[:10]).topk(2, 1).indices[:, 1]
    t = fw.adversarial(net, x[:10], target_class=runner_up, steps=15, epsilon=2.0, norm="l2")
    assert t.delta.flatten(1).norm(dim=1).max() <= 2.0 + 1e-4
    assert t.fooled.float().mean() >= 0.8


def test_fooling_images_from_noise_are_classified_with_high_confidence(net):
    classes = list(range(len(net.classes)))
    r = fw.fooling(net, classes, steps=50, seed=0)
    assert (r.classes[-1] == torch.tensor(classes)).all() and (r.probability[-1] > 0.9).all()


def test_generator_parameterization_reaches_classes_through_the_generator(net):
    classes = list(range(len(net.classes)))
    r = fw.maximize(net, fw.LogProb(classes), batch=len(classes), steps=STEPS_GEN, param="generator",
                    transforms=None, seed=0)
    # The shipped generator is a small VAE that draws blurry coloured blobs, a weak prior for ten shape
    # classes: the log-probabilities rise clearly, but only some classes become the top one.
    assert r.objective[-1].mean() > r.objective[0].mean() + 1.0, (r.objective[0], r.objective[-1])
    with torch.no_grad():
        hits = int((net(r.images).argmax(1) == torch.tensor(classes)).sum())
    assert hits >= 3, hits


def test_deepdream_amplifies_the_layer(net, demo):
    x = demo.images[:3]
    d = fw.deepdream(net, x, "layer2", octaves=3, steps=4, seed=0)
    before, after = _eval(net, x, fw.LayerNorm("layer2")), _eval(net, d.images, fw.LayerNorm("layer2"))
    assert (after > 2 * before).all(), (before, after)
    assert d.objective.shape == (12, 3)


def test_demo_model_is_left_exactly_as_it_was(net, demo):
    from featwidget.engine import assert_unchanged, snapshot

    snap = snapshot(net.module)
    fw.maximize(net, fw.Channel("layer2", 0) + fw.Diversity("layer2"), batch=2, steps=2, param="generator",
                transforms=None)
    fw.deepdream(net, demo.images[:1], "layer1", octaves=1, steps=1)
    fw.invert(net, demo.images[:1], "layer1", steps=2)
    fw.adversarial(net, demo.images[:2], steps=2)
    assert_unchanged(net.module, snap)
