"""Input reconstruction engine: exact checks of the building blocks, live settings, cancel, errors, safety."""
import math

import pytest
import torch
import torch.nn.functional as F

import featwidget as fw
from featwidget.engine import assert_unchanged, snapshot
from featwidget.engine.synthesis import Settings, param as P, transforms as T
from featwidget.engine.imaging import gaussian_blur
from featwidget.engine.synthesis.regularizers import TV, Clip, EdgeEnergy
from models import FunctionalReluNet, zoo

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    m = FunctionalReluNet().train()
    return m, fw.wrap(m, input_size=(3, 32, 32), mean=0.5, std=0.25)


# ------------------------------------------------------------------ building blocks against exact references
@pytest.mark.parametrize("kind", ["pixel", "fourier"])
@pytest.mark.parametrize("decorrelate", [True, False])
def test_parameterizations_reencode_an_image_exactly(kind, decorrelate):
    img = torch.rand(2, 3, 20, 27) * 0.9 + 0.05  # odd width: the real FFT's half spectrum must round-trip
    p = P.make(kind, 2, 3, (20, 27), decorrelate, "cpu", torch.Generator().manual_seed(0), img)
    assert torch.allclose(p.image(), img, atol=1e-5)
    assert p.image().requires_grad


def test_fourier_spectrum_is_scaled_by_inverse_frequency():
    p = P.make("fourier", 1, 1, (16, 16), False, "cpu", torch.Generator().manual_seed(0))
    # the DC term and the lowest frequency share the floor 1/max(h, w); frequency 0.5 is scaled by 2
    assert p.scale[0, 0] == pytest.approx(16.0) and p.scale[0, 1] == pytest.approx(16.0)
    assert p.scale[0, 8] == pytest.approx(2.0)


@pytest.mark.parametrize("width, color", [(7, True), (6, False)])
def test_fourier_image_backward_is_the_exact_gradient(width, color):
    # the hand-written backward (sigmoid', colour^T, rfft2, Hermitian-doubled weight) against finite differences
    spec = torch.randn(2, 3, 6, width // 2 + 1, 2, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(6, width // 2 + 1, 1, dtype=torch.float64) + 0.5
    back = P._hermitian_weight(weight, width)
    mix = P.COLOR.double() if color else None
    assert torch.autograd.gradcheck(lambda s: P._FourierImage.apply(s, weight, back, mix, (6, width)), (spec,))


def test_transforms_identity_pad_and_integer_jitter_are_exact():
    img = torch.rand(2, 3, 10, 12)
    assert T.apply(img, {}) is img
    padded = T.apply(img, {"pad": T.Pad(3)})
    assert torch.allclose(padded, F.pad(img, (3, 3, 3, 3), value=0.5), atol=1e-6)
    # a jitter of 1 px shifts by -1, 0 or +1 in each direction; each output must be an exact shifted copy
    out = T.apply(img, {"jitter": T.Jitter(1)}, torch.Generator().manual_seed(3))
    for b in range(2):
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if torch.allclose(out[b, :, 1:-1, 1:-1], img[b, :, 1 - dy:9 - dy, 1 - dx:11 - dx], atol=1e-6)]
        assert len(matches) == 1


def test_warp_rotation_scale_and_shift_match_references():
    img = torch.rand(2, 1, 8, 8)
    one = torch.ones(2)
    zero2 = torch.zeros(2, 2)
    r = T.warp(img, 0, one, torch.tensor([90.0, -90.0]), zero2)
    # positive angles turn clockwise on screen (y points down)
    assert torch.allclose(r[0], torch.rot90(img[0], -1, (1, 2)), atol=1e-5)
    assert torch.allclose(r[1], torch.rot90(img[1], 1, (1, 2)), atol=1e-5)
    # zoom x2 about the centre: output pixel i samples input (i - 3.5) / 2 + 3.5, i.e. bilinear upsampling
    z = T.warp(img, 0, 2 * one, torch.zeros(2), zero2)
    ref = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)[..., 4:12, 4:12]
    assert torch.allclose(z, ref, atol=1e-5)
    s = T.warp(img, 0, one, torch.zeros(2), torch.tensor([[2.0, -1.0], [0.0, 0.0]]))
    assert torch.allclose(s[0, :, 0:7, 2:], img[0, :, 1:8, :6], atol=1e-6)  # right 2, up 1
    assert torch.allclose(s[0, :, :, :2], torch.full((1, 8, 2), 0.5))  # uncovered: gray fill


def test_warp_backward_is_the_exact_gradient():
    # the one-node warp (grid_sample of the centred image, asking aten for the image's gradient only) against
    # finite differences, and bit for bit against autograd through the three plain operations it replaces
    img = torch.rand(2, 3, 9, 11, dtype=torch.float64, requires_grad=True)
    scale, angle, shift = torch.tensor([0.93, 1.08]), torch.tensor([7.0, -4.0]), torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    assert torch.autograd.gradcheck(lambda i: T.warp(i, 3, scale, angle, shift), (img,))
    out = T.warp(img, 3, scale, angle, shift)
    grid = T.sampling_grid(img, 3, scale, angle, shift)
    plain = F.grid_sample(img - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5
    assert torch.equal(out, plain)
    g = torch.randn_like(out)
    assert torch.equal(torch.autograd.grad(out, img, g)[0], torch.autograd.grad(plain, img, g)[0])


def test_adam_is_torch_adam():
    # the bare fused update against torch.optim.Adam(fused=True) and the plain loop, with lr changed mid-run
    from featwidget.engine.synthesis.adam import Adam

    gen = torch.Generator().manual_seed(0)
    start = torch.randn(2, 3, 5, 4, generator=gen)
    grads = [torch.randn(2, 3, 5, 4, generator=gen) for _ in range(4)]
    mine = start.clone()
    opt = Adam([mine], 0.05)
    refs = [start.clone().requires_grad_(True) for _ in range(2)]
    torch_opts = [torch.optim.Adam([refs[0]], lr=0.05, fused=True), torch.optim.Adam([refs[1]], lr=0.05, foreach=False)]
    for i, g in enumerate(grads):
        lr = 0.05 if i < 2 else 0.01
        opt.lr = lr
        opt.step([g])
        for r, o in zip(refs, torch_opts):
            o.param_groups[0]["lr"] = lr
            r.grad = g.clone()
            o.step()
    assert opt._fused
    assert torch.equal(mine, refs[0].detach())
    assert torch.allclose(mine, refs[1].detach(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["fourier", "pixel"])
@pytest.mark.parametrize("regularizers", [None, {"tv": 0.3, "l2": 0.1, "grad_blur": 1.0}])
def test_a_step_backpropagates_the_exact_gradient_of_the_whole_pipeline(small, kind, regularizers):
    # the step runs autograd through the network only and backpropagates the image's steps by hand; its
    # gradient must be autograd's through everything: parameterization, transforms, network, penalties
    import importlib

    from featwidget.engine import preserved
    from featwidget.engine.synthesis.adam import Adam
    from featwidget.engine.synthesis.settings import knobs

    M = importlib.import_module("featwidget.engine.synthesis.maximize")
    m, net = small
    target = fw.Channel("conv2", 3) + 0.5 * fw.Logit(2)
    settings = Settings(lr=0.05, param=kind, regularizers=knobs(regularizers, M.REGULARIZERS, "regularizer"),
                        transforms=knobs({"pad": 3, "jitter": 2, "scale": 0.1, "rotate": 10.0}, T.TRANSFORMS,
                                         "transform", 24))
    p = P.make(kind, 2, 3, (24, 24), True, "cpu", torch.Generator().manual_seed(0))
    opt = Adam(p.tensors, 0.05)
    seen = []
    opt.step = lambda grads: seen.append([g.clone() for g in grads])
    with preserved(m):
        M._step(net, target, p, opt, settings, torch.Generator().manual_seed(5), 0, False)
        # the reference from plain autograd operations only (no hand-written backward shared with the step)
        if kind == "fourier":
            t = torch.fft.irfft2(torch.view_as_complex(p.spectrum * p._weight), s=(24, 24), norm="ortho")
            img = torch.sigmoid(torch.einsum("ij,bjhw->bihw", P.COLOR, t))
        else:
            img = p._to_rgb(p.raw)
        blur = settings.regularizers.get("grad_blur")
        if blur is not None:
            img.register_hook(blur.blur)
        grid = T.draw(img, settings.transforms, torch.Generator().manual_seed(5))
        x = F.grid_sample(img - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5
        loss = -net.evaluate(x, target).sum()
        for r in settings.regularizers.values():
            if hasattr(r, "penalty"):
                loss = loss + r.value * r.penalty(img).sum()
        ref = torch.autograd.grad(loss, p.tensors)
    for mine, want in zip(seen[0], ref):
        assert (mine - want).abs().max() <= 1e-6 * want.abs().max()


def test_gaussian_blur_keeps_constants_and_mass():
    x = torch.full((1, 3, 9, 9), 0.3)
    assert torch.allclose(gaussian_blur(x, 1.5), x, atol=1e-6)
    y = torch.zeros(1, 1, 21, 21)
    y[0, 0, 10, 10] = 1.0
    b = gaussian_blur(y, 1.0)
    assert b.sum() == pytest.approx(1.0, abs=1e-5) and b[0, 0, 10, 10] < 0.2
    assert torch.allclose(b[0, 0], b[0, 0].T, atol=1e-7)  # isotropic


def test_penalties_match_hand_computation():
    img = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])  # one 2x2 image: dx = 1, dy = 1 at the single corner
    assert TV(1.0).penalty(img).item() == pytest.approx(2.0)
    assert TV(1.0, beta=1.0).penalty(img).item() == pytest.approx(math.sqrt(2.0), abs=1e-4)
    flat = torch.full((1, 3, 8, 8), 0.25)
    assert EdgeEnergy(1.0).penalty(flat).item() == 0.0
    assert fw.synthesis.L2(1.0).penalty(flat).item() == pytest.approx(0.25)
    assert fw.synthesis.AlphaNorm(1.0).penalty(flat).item() == pytest.approx(0.5 ** 6)


def test_clip_grays_exactly_the_requested_share_of_smallest_pixels():
    img = torch.rand(2, 3, 10, 10)
    out = Clip(0.3).apply(img)
    gray = (out == 0.5).all(1)
    assert gray.flatten(1).sum(1).tolist() == [30, 30]
    norms = (2 * img - 1).norm(dim=1)
    assert (norms[gray].max() <= norms[~gray].min() + 1e-6) or True  # per image below:
    for b in range(2):
        assert norms[b][gray[b]].max() <= norms[b][~gray[b]].min()


def test_diversity_of_identical_images_is_minus_one_and_of_orthogonal_styles_zero():
    a = torch.rand(1, 4, 5, 5).expand(3, -1, -1, -1)
    v = fw.Diversity("l")(None, {"l": a})
    assert torch.allclose(v, torch.full((3,), -2 / 3), atol=1e-6)
    b = torch.zeros(2, 2, 3, 3)
    b[0, 0] = 1.0
    b[1, 1] = 1.0  # Gram matrices with disjoint support: cosine 0
    assert torch.allclose(fw.Diversity("l")(None, {"l": b}), torch.zeros(2))


def test_diversity_spreads_a_batch(small):
    m, net = small
    same = fw.maximize(net, fw.Channel("conv2", 3), steps=30, batch=3, seed=1, transforms=None)
    div = fw.maximize(net, fw.Channel("conv2", 3) + 2.0 * fw.Diversity("conv2"), steps=30, batch=3, seed=1,
                      transforms=None)

    def spread(r):
        return torch.pdist(r.images.flatten(1)).mean()

    assert spread(div) > spread(same)


# ------------------------------------------------------------------ the optimization loop
def test_maximize_returns_images_in_range_and_per_step_objective(small):
    m, net = small
    r = fw.maximize(net, fw.Channel("conv2", 5), steps=12, batch=2, size=40, seed=0,
                    regularizers={"l2": 0.01, "alpha": 0.01, "tv": 0.1, "edge": 0.1, "blur": 0.5, "grad_blur": 0.5,
                                  "clip": 0.05}, noise=1e-3, octaves=2)
    assert r.images.shape == (2, 3, 40, 40) and r.images.min() >= 0 and r.images.max() <= 1
    assert r.objective.shape == (12, 2) and r.loss.shape == (12,)
    assert torch.isfinite(r.objective).all() and torch.isfinite(r.loss).all()


def test_seed_makes_runs_repeatable(small):
    m, net = small
    a = fw.maximize(net, fw.Channel("conv2", 1), steps=5, seed=7)
    b = fw.maximize(net, fw.Channel("conv2", 1), steps=5, seed=7)
    assert torch.equal(a.images, b.images)
    assert a.objective[-1, 0] > a.objective[0, 0]


def test_settings_changed_mid_run_apply_without_restart(small):
    m, net = small
    s = Settings(lr=0.05, param="pixel", transforms={}, regularizers={}, preview_every=1)
    seen = []

    def progress(f, partial):
        seen.append(partial["image"])
        if partial["step"] == 6:
            s.set("tv", 5.0)  # as a slider would, from the view
        if partial["step"] == 12:
            s.lr = 1e-7

    r = fw.maximize(net, fw.Channel("conv2", 2), steps=18, seed=0, settings=s, progress=progress)
    gap = r.loss + r.objective.sum(1)  # weighted penalties; zero while no regularizer is on
    assert torch.all(gap[:6] == 0) and torch.all(gap[6:] > 0)
    moved = [(seen[i + 1] - seen[i]).abs().max().item() for i in range(len(seen) - 1)]
    assert min(moved[:11]) > 1e-3 and max(moved[12:]) < 1e-4
    assert r.objective.shape == (18, 1)  # one continuous run


def test_parameterization_switch_mid_run_keeps_the_picture(small):
    m, net = small
    s = Settings(param="fourier", transforms={}, preview_every=1)
    seen = {}

    def progress(f, partial):
        seen[partial["step"]] = partial["image"]
        if partial["step"] == 5:
            s.param = "pixel"

    fw.maximize(net, fw.Channel("conv2", 2), steps=7, seed=0, settings=s, progress=progress)
    # step 6 starts from the step-5 picture re-encoded as pixels: one small Adam step away, not a new image
    assert (seen[6] - seen[5]).abs().max() < 0.1


def test_cancel_raises_and_leaves_the_model_unchanged(small):
    m, net = small
    snap = snapshot(m)
    calls = []

    def progress(f, partial):
        calls.append(f)
        return len(calls) < 3

    for fn in (lambda: fw.maximize(net, fw.Channel("conv2", 0), steps=10, progress=progress),
               lambda: fw.deepdream(net, torch.rand(1, 3, 32, 32), "conv2", octaves=2, steps=5, progress=progress),
               lambda: fw.invert(net, torch.rand(1, 3, 32, 32), "conv1", steps=10, progress=progress),
               lambda: fw.adversarial(net, torch.rand(1, 3, 32, 32), steps=10, progress=progress)):
        calls.clear()
        with pytest.raises(fw.Cancelled):
            fn()
        assert len(calls) == 3
        assert_unchanged(m, snap)
        assert m.training


@pytest.mark.parametrize("call, match", [
    (lambda n: fw.maximize(n, fw.Channel("conv2", 0), steps=0), "steps must be an integer of at least 1"),
    (lambda n: fw.maximize(n, fw.Channel("conv2", 0), regularizers={"tv": -1}), "TV.value must be a number at least 0"),
    (lambda n: fw.maximize(n, fw.Channel("conv2", 0), regularizers={"tvv": 1}), "Did you mean 'tv'"),
    (lambda n: fw.maximize(n, fw.Channel("conv9", 0)), "Unknown layer 'conv9'"),
    (lambda n: fw.maximize(n, fw.Channel("conv2", 0), param="fourrier"), "Did you mean 'fourier'"),
    (lambda n: fw.maximize(n, fw.Channel("conv2", 0), batch=0), "batch must be an integer of at least 1"),
    (lambda n: fw.maximize(n, fw.Channel("conv2", 0), lr=0), "lr must be a number above 0"),
    (lambda n: fw.maximize(n, fw.Channel("conv2", 0), noise=-0.1), "noise .* must be 0 or more"),
    (lambda n: fw.maximize(n, fw.Channel("conv2", 0), size=4), "size must be an integer of at least 8"),
    (lambda n: fw.maximize(n, fw.Channel("conv2", 0), octaves=2, octave_scale=0.5), "octave_scale must be above 1"),
    (lambda n: fw.maximize(n, fw.Channel("conv2", 0), init=torch.rand(3, 3, 32, 32), batch=2), "init image has shape"),
    (lambda n: fw.maximize(n, fw.Channel("conv2", 0), transforms={"scale": 1.5}), "spread below 1"),
    (lambda n: fw.maximize(n, fw.Channel("conv2", 99), steps=1), "out of range: valid values are 0 to 15"),
    (lambda n: fw.deepdream(n, torch.rand(1, 3, 32, 32), "conv7"), "Unknown layer"),
    (lambda n: fw.deepdream(n, torch.rand(1, 3, 32, 32), "conv2", lr=-1), "lr must be more than zero"),
    (lambda n: fw.invert(n, torch.rand(1, 3, 32, 32), "conv2", tv=-1), "tv must be zero or more"),
    (lambda n: fw.invert(n, torch.rand(1, 3, 32, 32) * 3, "conv2"), "expects images in \\[0, 1\\]"),
    (lambda n: fw.invert(n, torch.rand(1, 3, 32, 32), "conv2", transforms={"pad": 2}), "'pad' cannot be used"),
    (lambda n: fw.adversarial(n, torch.rand(1, 3, 32, 32), epsilon=0), "epsilon must be more than zero"),
    (lambda n: fw.adversarial(n, torch.rand(1, 3, 32, 32), norm="l1"), "norm must be 'linf' or 'l2'"),
    (lambda n: fw.adversarial(n, torch.rand(1, 3, 32, 32), target_class=12), "target_class must be between 0 and 9"),
    (lambda n: fw.adversarial(n, torch.rand(1, 3, 32, 32), steps=0), "steps must be an integer of at least 1"),
])
def test_bad_inputs_raise_featwidget_errors_naming_the_fix(small, call, match):
    m, net = small
    snap = snapshot(m)
    with pytest.raises(fw.FeatwidgetError, match=match):
        call(net)
    assert_unchanged(m, snap)


def test_live_knobs_reject_bad_values_at_assignment():
    s = Settings()
    s.set("tv", 0.5)
    with pytest.raises(fw.FeatwidgetError, match="TV.value must be a number at least 0"):
        s.set("tv", -0.5)
    with pytest.raises(fw.FeatwidgetError, match="Jitter.value must be an integer"):
        s.set("jitter", 2.5)
    with pytest.raises(fw.FeatwidgetError, match="Unknown setting 'bluur'. Did you mean 'blur'"):
        s.set("bluur", 1)
    assert s.regularizers["tv"].value == 0.5


# ------------------------------------------------------------------ safety contract on every architecture
@pytest.mark.parametrize("name", list(zoo().keys()))
def test_every_function_keeps_the_safety_contract(model_zoo, name):
    module, size = model_zoo[name]
    snap = snapshot(module)
    net = fw.wrap(module, input_size=size, mean=0.5, std=0.25)
    convs = [l for l in net.layers if len(l.out_shape) == 3]
    mid = convs[len(convs) // 2].name
    x = torch.rand(2, *size)
    r = fw.maximize(net, fw.Channel(mid, 0) - 0.1 * fw.LogProb(1) + fw.Diversity(mid), steps=2, batch=2,
                    regularizers={"tv": 0.1, "blur": 1.0, "clip": 0.1})
    assert r.images.shape == (2, *size)
    assert fw.deepdream(net, x, mid, octaves=2, steps=1).images.shape == x.shape
    assert fw.invert(net, x, mid, steps=2).images.shape == x.shape
    a = fw.adversarial(net, x, steps=2)
    assert a.images.shape == x.shape and (a.delta.abs().max() <= 8 / 255 + 1e-6)
    assert fw.fooling(net, [1, 2], steps=2).images.shape == x.shape
    # a plain module works too (default wrap: mean 0, std 1)
    fw.adversarial(module, x, steps=1, norm="l2", epsilon=0.5)
    assert_unchanged(module, snap)
    assert module.training


def test_the_forward_pass_stops_at_the_objective_layer_with_frozen_parameters(small):
    m, net = small
    fc_calls, frozen = [], []
    h1 = m.fc.register_forward_hook(lambda *a: fc_calls.append(1))
    h2 = m.conv1.register_forward_pre_hook(lambda mod, inp: frozen.append(not mod.weight.requires_grad))
    try:
        fw.maximize(net, fw.Channel("conv2", 1), steps=3)
        assert fc_calls == [] and frozen == [True] * 3  # a conv2 objective never runs the head
        fw.maximize(net, fw.Logit(1), steps=3)
        assert len(fc_calls) == 3
    finally:
        h1.remove()
        h2.remove()
    assert all(p.requires_grad for p in m.parameters())


@pytest.mark.parametrize("param", ["pixel", "fourier"])
def test_init_from_an_image_or_the_mean_colour(small, param):
    m, net = small
    img = torch.rand(3, 32, 32) * 0.8 + 0.1
    r = fw.maximize(net, fw.Channel("conv2", 1), steps=1, lr=1e-6, init=img, param=param, transforms=None)
    assert (r.images[0] - img).abs().max() < 0.03  # the start, up to the small random perturbation
    r = fw.maximize(net, fw.Channel("conv2", 1), steps=1, lr=1e-6, init="mean", batch=2, param=param,
                    transforms=None)
    assert (r.images - 0.5).abs().max() < 0.03  # fw.wrap(mean=0.5): the dataset mean colour
