"""Backward methods: time against the forward+backward floor and against Captum, peak memory of the loops.

Models: the trained demo model ("shapes", 64x64, if its weights are present) and torchvision resnet18 and vgg16
at 224x224 (weights=None: nothing can be fetched here; timings do not depend on the weights). One image, a
fixed class target, CPU, ``FW_BENCH_THREADS`` threads (default 1: the machine is shared by several jobs).

* floor: one forward pass and the gradient w.r.t. the input with plain autograd on the model in eval mode with
  frozen parameters (no featwidget bookkeeping), measured in the same process.
* single-pass methods (gradient, saliency, guided backprop, deconvnet, gradient x input, Grad-CAM, CAM,
  LRP): ours vs the floor (target: within 1.15x) and vs Captum's equivalent where Captum has one
  (Saliency, GuidedBackprop, Deconvolution, InputXGradient, LayerGradCam + interpolate, GuidedGradCam, LRP).
* loops: SmoothGrad (ours, default chunk vs everything in one batch; Captum NoiseTunnel(Saliency) with
  nt_samples_batch_size = 10 and = all) and integrated gradients (ours vs Captum IntegratedGradients with
  internal_batch_size = 10 and = all) at equal sample counts; time to the first streamed SmoothGrad picture.
* peak memory of the loops (resnet18): each variant in a fresh subprocess, peak RSS above the RSS after a warm
  forward+backward.

Timings interleave ours, the floor and Captum in each repeat and report medians; the machine is shared and
noisy, so ratios measured in the same repeat are more trustworthy than absolute seconds.

    python benchmarks/backward.py          # writes benchmarks/results/backward.json
"""
from __future__ import annotations

import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
import warnings

import torch
import torchvision
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import featwidget as fw  # noqa: E402
from featwidget.engine.backward.common import CHUNK_BYTES  # noqa: E402

THREADS = int(os.environ.get("FW_BENCH_THREADS", "1"))
TARGET = 3
SIGMA = 0.15
warnings.simplefilter("ignore")


class Normalized(nn.Module):
    """The user's model behind its input normalization, for Captum (which takes normalized-space models)."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.model = net.module

    def forward(self, x):
        return self.model(self.net.normalize(x))


def build(name):
    torch.manual_seed(0)
    if name == "demo":
        demo = fw.demo.load("shapes")
        return demo.network, demo.images[:1].clone(), "layer3"
    if name == "resnet18":
        m = torchvision.models.resnet18(weights=None)
        layer = "layer4"
    else:
        m = torchvision.models.vgg16(weights=None)
        layer = "features.29"
    net = fw.wrap(m.eval(), preset="imagenet")
    return net, torch.rand(1, 3, 224, 224), layer


def floor_fn(net, x):
    """What a user would write: the model already in eval mode with frozen parameters, one forward pass and
    the gradient w.r.t. the input. Nothing of featwidget's bookkeeping (``preserved``, input checks) is in it,
    so the ratios show that cost too."""
    net.module.eval()
    for p in net.module.parameters():
        p.requires_grad_(False)

    def run():
        xg = x.clone().requires_grad_(True)
        out = net.module(net.normalize(xg))
        return torch.autograd.grad(out[:, TARGET].sum(), xg)[0]
    return run


def timed(fn):
    """Process CPU time: with one torch thread it is the work itself, less sensitive than the wall clock to
    other jobs on a shared machine."""
    t = time.process_time()
    fn()
    return time.process_time() - t


def interleaved(fns: dict, repeats: int) -> dict:
    """Median seconds of each callable; every repeat runs all of them once, in turn."""
    for fn in fns.values():
        fn()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def captum_single(net, x, layer):
    try:
        from captum import attr
        from captum.attr import LayerAttribution
    except ImportError:
        return {}
    cm = Normalized(net).eval()
    for p in cm.parameters():
        p.requires_grad_(False)
    sub = net.submodule(layer)

    def gradcam():
        a = attr.LayerGradCam(cm, sub).attribute(x, target=TARGET, relu_attributions=True)
        return LayerAttribution.interpolate(a, x.shape[2:], "bilinear")

    return {
        "gradient": lambda: attr.Saliency(cm).attribute(x, target=TARGET, abs=False),
        "saliency": lambda: attr.Saliency(cm).attribute(x, target=TARGET, abs=True).amax(1),
        "guided_backprop": lambda: attr.GuidedBackprop(cm).attribute(x, target=TARGET),
        "deconvnet": lambda: attr.Deconvolution(cm).attribute(x, target=TARGET),
        "input_x_gradient": lambda: attr.InputXGradient(cm).attribute(x, target=TARGET),
        "grad_cam": gradcam,
        "guided_grad_cam": lambda: attr.GuidedGradCam(cm, sub).attribute(x, target=TARGET),
        "lrp_epsilon": lambda: attr.LRP(cm).attribute(x, target=TARGET),
    }


def ours_single(net, x, layer):
    return {
        "gradient": lambda: fw.gradient(net, x, TARGET),
        "saliency": lambda: fw.saliency(net, x, TARGET),
        "guided_backprop": lambda: fw.guided_backprop(net, x, TARGET),
        "deconvnet": lambda: fw.deconvnet(net, x, TARGET),
        "input_x_gradient": lambda: fw.input_x_gradient(net, x, TARGET),
        "grad_cam": lambda: fw.grad_cam(net, x, TARGET, layer=layer),
        "guided_grad_cam": lambda: fw.guided_grad_cam(net, x, TARGET, layer=layer),
        "cam": lambda: fw.cam(net, x, TARGET),
        "lrp_epsilon": lambda: fw.lrp(net, x, TARGET, rule="epsilon"),
        "lrp_gamma": lambda: fw.lrp(net, x, TARGET, rule="gamma"),
        "lrp_alpha_beta": lambda: fw.lrp(net, x, TARGET, rule="alpha_beta"),
    }


def single_pass(net, x, layer, repeats):
    floor = floor_fn(net, x)
    ours, peers = ours_single(net, x, layer), captum_single(net, x, layer)
    out = {}
    for name, fn in ours.items():
        fns = {"floor": floor, "ours": fn}
        peer_error = None
        if name in peers:
            try:
                peers[name]()
                fns["captum"] = peers[name]
            except Exception as e:  # e.g. Captum's LRP has no rule for a residual addition
                peer_error = f"{type(e).__name__}: {str(e)[:160]}"
        try:
            t = interleaved(fns, repeats)
        except fw.FeatwidgetError as e:
            out[name] = {"error": str(e)[:200]}
            continue
        row = {"floor_s": t["floor"], "ours_s": t["ours"], "ours_vs_floor": t["ours"] / t["floor"]}
        if "captum" in t:
            row.update(captum_s=t["captum"], captum_vs_floor=t["captum"] / t["floor"],
                       ours_vs_captum=t["ours"] / t["captum"])
        if peer_error:
            row["captum_error"] = peer_error
        out[name] = row
        print(name, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    return out


def loop_fns(net, x, samples):
    spread = float(x.max() - x.min())
    fns = {
        "smoothgrad_ours": lambda: fw.smoothgrad(net, x, TARGET, sigma=SIGMA, samples=samples, seed=0),
        "smoothgrad_ours_one_batch": lambda: fw.smoothgrad(net, x, TARGET, sigma=SIGMA, samples=samples,
                                                           batch_size=samples, seed=0),
        "ig_ours": lambda: fw.integrated_gradients(net, x, TARGET, steps=samples),
        "ig_ours_uniform": lambda: fw.integrated_gradients(net, x, TARGET, steps=samples, adaptive=False),
        "ig_ours_one_batch": lambda: fw.integrated_gradients(net, x, TARGET, steps=samples, batch_size=samples),
    }
    try:
        from captum import attr
    except ImportError:
        return fns
    cm = Normalized(net).eval()
    for p in cm.parameters():
        p.requires_grad_(False)
    for label, bs in (("10", 10), ("all", None)):
        fns[f"smoothgrad_captum_batch_{label}"] = lambda bs=bs: attr.NoiseTunnel(attr.Saliency(cm)).attribute(
            x, nt_type="smoothgrad", nt_samples=samples, stdevs=SIGMA * spread, nt_samples_batch_size=bs,
            target=TARGET, abs=False)
        fns[f"ig_captum_batch_{label}"] = lambda bs=bs: attr.IntegratedGradients(cm).attribute(
            x, baselines=0.0, target=TARGET, n_steps=samples, internal_batch_size=bs)
    return fns


def loops(net, x, samples, repeats):
    fns = loop_fns(net, x, samples)
    fns["floor"] = floor_fn(net, x)
    t = interleaved(fns, repeats)
    out = {"samples": samples, "floor_s": t.pop("floor")}
    for k, v in t.items():
        out[k + "_s"] = v
    for kind in ("smoothgrad", "ig"):
        peers = [v for k, v in t.items() if k.startswith(f"{kind}_captum")]
        if peers:
            out[f"{kind}_ours_vs_best_captum"] = t[f"{kind}_ours"] / min(peers)
    out["ig_completeness_error"] = completeness(net, x, samples)
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}, flush=True)
    return out


def completeness(net, x, steps):
    """|sum of IG attributions - (f(x) - f(0))| / |f(x) - f(0)| at equal steps: what the time buys."""
    with torch.no_grad():
        f = (net(x)[:, TARGET] - net(torch.zeros_like(x))[:, TARGET]).item()
    fns = {"ours": lambda: fw.integrated_gradients(net, x, TARGET, steps=steps),
           "ours_uniform": lambda: fw.integrated_gradients(net, x, TARGET, steps=steps, adaptive=False)}
    try:
        from captum import attr
        cm = Normalized(net).eval()
        fns["captum"] = lambda: attr.IntegratedGradients(cm).attribute(x, baselines=0.0, target=TARGET,
                                                                       n_steps=steps)
    except ImportError:
        pass
    return {k: abs(fn().sum().item() - f) / abs(f) for k, fn in fns.items()}


def first_picture(net, x, repeats):
    """Seconds from the call to the first streamed SmoothGrad picture (the call is cancelled right there)."""
    floor = floor_fn(net, x)

    def first(target):
        def run():
            try:
                fw.smoothgrad(net, x, target, samples=50, progress=lambda f, p: False)
            except fw.Cancelled:
                pass
        return run

    t = interleaved({"floor": floor, "fixed": first(TARGET), "predicted": first(None)}, repeats)
    row = {"floor_s": t["floor"], "first_picture_fixed_target_s": t["fixed"],
           "first_picture_predicted_class_s": t["predicted"],
           "fixed_vs_floor": t["fixed"] / t["floor"], "predicted_vs_floor": t["predicted"] / t["floor"]}
    print(row, flush=True)
    return row


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_child(model, variant, samples):
    """Run in a subprocess: peak RSS (MiB) of one loop variant above the RSS before it (after a warm
    forward+backward), sampled every millisecond by a thread."""
    import threading

    torch.set_num_threads(THREADS)
    net, x, _ = build(model)
    floor_fn(net, x)()
    fn = loop_fns(net, x, samples)[variant]
    base, peak, stop = _rss(), [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    fn()
    stop.set()
    th.join()
    print(json.dumps({"peak_above_floor_mib": (max(peak[0], _rss()) - base) / 2**20}))


def peaks(model, samples):
    out = {}
    for variant in ("smoothgrad_ours", "smoothgrad_ours_one_batch", "smoothgrad_captum_batch_10",
                    "smoothgrad_captum_batch_all", "ig_ours", "ig_ours_uniform", "ig_ours_one_batch",
                    "ig_captum_batch_10", "ig_captum_batch_all"):
        r = subprocess.run([sys.executable, __file__, "--peak", model, variant, str(samples)],
                           capture_output=True, text=True)
        try:
            out[variant] = json.loads(r.stdout.strip().splitlines()[-1])["peak_above_floor_mib"]
        except Exception:
            out[variant] = f"failed: {r.stderr[-300:]}"
        print(variant, out[variant], flush=True)
    return out


def main():
    torch.set_num_threads(THREADS)
    # (model, repeats of single-pass methods, SmoothGrad samples = IG steps, repeats of the loops). A call on
    # the demo model takes 3-5 ms, where 5 repeats moved a ratio by +-0.1 between runs: 100 cost a few seconds.
    # The large models keep few repeats so that the whole run stays within about a quarter of an hour.
    plan = [("demo", 100, 50, 15), ("resnet18", 5, 20, 5), ("vgg16", 5, 10, 1)]
    only = os.environ.get("FW_BENCH_MODELS")
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads={THREADS}, process CPU time, "
                   f"load average at start {os.getloadavg()[0]:.1f}",
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "default_chunk_bytes_of_layer_outputs": CHUNK_BYTES, "target_class": TARGET, "sigma": SIGMA,
        "models": {},
    }
    out = ROOT / "benchmarks" / "results" / "backward.json"
    if only and out.exists():  # a partial re-run (FW_BENCH_MODELS=demo) keeps the other models' rows
        results["models"] = json.loads(out.read_text()).get("models", {})
    try:
        import captum
        results["captum"] = captum.__version__
    except ImportError:
        results["captum"] = None
    for name, rep_single, samples, rep_loop in plan:
        if only and name not in only.split(","):
            continue
        try:
            net, x, layer = build(name)
        except Exception as e:
            results["models"][name] = {"skipped": f"{type(e).__name__}: {e}"}
            continue
        print("==", name, flush=True)
        row = {"input": list(x.shape), "grad_cam_layer": layer}
        row["single_pass"] = single_pass(net, x, layer, rep_single)
        row["first_smoothgrad_picture"] = first_picture(net, x, rep_single)
        row["loops"] = loops(net, x, samples, rep_loop)
        if name == "resnet18":
            row["peak_memory_mib"] = peaks(name, 50)
        results["models"][name] = row
        out.write_text(json.dumps(results, indent=2))
    print("wrote benchmarks/results/backward.json")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peak":
        peak_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
