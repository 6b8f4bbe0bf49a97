"""Occlusion speed: Captum's ``Occlusion`` vs ``fw.occlusion`` exact (incremental inference) vs approximate.

Models: torchvision vgg16 and resnet18 at 224x224 (weights=None: no weights can be fetched here; timings do not
depend on the weights, the approximation error does), window (size, stride) = (32, 16), (16, 8), (16, 4), one
image; and the trained demo model at 64x64 on 8 held-out images. CPU, ``FW_BENCH_THREADS`` threads (default 1).

Captum is run with ``perturbations_per_eval`` in (1, 16, 64) and the best is reported. Its cost is one forward
pass per window wherever the window is, so on the 224 models it is timed on a small number of windows (a
larger stride with the same window size) and extrapolated linearly to the full count; on resnet18 (32, 16) a
full run checks the extrapolation. Ours is run in full where that takes a few minutes at most; for vgg16 at
stride 4 it is timed on an evenly spread subset of windows (same plan as the full call) and extrapolated:
setup + windows x time per window. Every extrapolated number says so in the JSON.

The approximation error (approximate vs exact, where both full maps exist) is given as the relative L2 error
of the per-window drops, the Pearson correlation of the pixel maps and the overlap of their top-10 % pixels.
The machine is shared (2 cores, several other jobs running): timings are noisy, ratios more stable than
absolute numbers.

    python benchmarks/occlusion.py            # writes benchmarks/results/occlusion.json
"""
from __future__ import annotations

import json
import os
import pathlib
import platform
import sys
import time

import torch
import torchvision

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import featwidget as fw  # noqa: E402
from featwidget.engine.occlusion import approximate  # noqa: E402
from featwidget.engine.occlusion.evaluate import Occluder  # noqa: E402
from featwidget.engine.occlusion.fill import fill_image  # noqa: E402
from featwidget.engine.occlusion.patches import windows  # noqa: E402

THREADS = int(os.environ.get("FW_BENCH_THREADS", "1"))
CONFIGS = [(32, 16), (16, 8), (16, 4)]
FULL_RUN_LIMIT_S = float(os.environ.get("FW_BENCH_FULL_LIMIT", "400"))  # longer estimated runs are extrapolated
SUBSET = 48


def now():
    """CPU seconds of this process: on a machine shared with other jobs, wall-clock time measures their load
    as much as ours; with a fixed thread count the process's CPU time is the work done (wall time is
    reported beside it for the full runs)."""
    return time.process_time()


def captum_per_window(net, x, target_class, ppe):
    """Seconds per window of Captum's Occlusion at perturbations_per_eval=ppe. Its cost is one forward pass per
    window whatever the window's size and place, so it is timed with windows of size = stride = k, k chosen so
    that the run has at least max(8, ppe) windows (Captum refuses strides larger than the window)."""
    from captum.attr import Occlusion

    h = x.shape[2]
    n_side = max(3, int(-(-max(8, ppe) ** 0.5 // 1)))
    k = h // n_side
    n = ((h - k) // k + 1) ** 2
    occ = Occlusion(net.module)
    with torch.no_grad():
        t = now()
        occ.attribute(net.normalize(x), sliding_window_shapes=(3, k, k), strides=(3, k, k), baselines=0.0,
                      target=target_class, perturbations_per_eval=ppe)
        return (now() - t) / n, n


def captum_full(net, x, target_class, size, stride, ppe):
    from captum.attr import Occlusion

    occ = Occlusion(net.module)
    with torch.no_grad():
        t = now()
        occ.attribute(net.normalize(x), sliding_window_shapes=(3, size, size), strides=(3, stride, stride),
                      baselines=0.0, target=target_class, perturbations_per_eval=ppe)
        return now() - t


def ours_subset(net, x, target, size, stride, mode):
    """(setup seconds, seconds per window, windows the full call evaluates) from an evenly spread subset."""
    b, _, h, w = x.shape
    ys, xs, k, _ = windows(h, w, size, stride)
    wy, wx = ys.repeat_interleave(len(xs)), xs.repeat(len(ys))
    n_all = len(wy)
    with fw.engine.preserved(net.module), torch.no_grad():
        t = now()
        occ = Occluder(net, x, fill_image(x, "gray", k), target, k, wy, wx,
                       tau=approximate.TAU if mode == "approximate" else None)
        setup = now() - t
        ids = torch.linspace(0, n_all - 1, SUBSET).round().long().unique()
        per = max(1, occ.items // b)
        t = now()
        for lo in range(0, len(ids), per):
            occ.drops(ids[lo:lo + per])
        per_window = (now() - t) / len(ids)
    n_eval = n_all if mode == "exact" else approximate.planned(len(ys), len(xs), approximate.REFINE)
    return setup, per_window, n_eval


WALL = {}


def timed(fn):
    t, w = now(), time.perf_counter()
    out = fn()
    WALL["last"] = time.perf_counter() - w
    return out, now() - t


def errors(approx_grid, exact_grid, approx_map, exact_map):
    a, e = approx_map.flatten(1), exact_map.flatten(1)
    k = max(1, a.shape[1] // 10)
    overlap = []
    for i in range(a.shape[0]):
        ta, te = set(a[i].topk(k).indices.tolist()), set(e[i].topk(k).indices.tolist())
        overlap.append(len(ta & te) / k)
    corr = [float(torch.corrcoef(torch.stack([a[i], e[i]]))[0, 1]) for i in range(a.shape[0])]
    return {
        "relative_l2_error_of_window_drops": float((approx_grid - exact_grid).norm() / exact_grid.norm()),
        "pixel_map_pearson_r": sum(corr) / len(corr),
        "top10pct_pixel_overlap": sum(overlap) / len(overlap),
    }


def bench_torchvision(name, x):
    torch.manual_seed(0)
    module = getattr(torchvision.models, name)(weights=None).eval()
    net = fw.wrap(module, preset="imagenet")
    with torch.no_grad():
        t = now()
        logits = net(x)
        forward_s = now() - t
    cls = int(logits.argmax())
    target = fw.Logit(cls)
    result = {"model": name, "input": "1x3x224x224 (a demo shapes image, upsampled)", "weights": None,
              "target": f"logit of the predicted class ({cls})", "one_forward_s": forward_s, "configs": []}
    cap = {}
    for ppe in (1, 16, 64):
        cap[ppe] = captum_per_window(net, x, cls, ppe)
        print(name, "captum ppe", ppe, cap[ppe], flush=True)
    best_ppe = min(cap, key=lambda p: cap[p][0])
    result["captum_seconds_per_window"] = {str(p): {"s": v, "timed_windows": n} for p, (v, n) in cap.items()}
    result["captum_best_perturbations_per_eval"] = best_ppe
    for size, stride in CONFIGS:
        ys, xs, _, _ = windows(224, 224, size, stride)
        n = len(ys) * len(xs)
        row = {"size": size, "stride": stride, "windows": n,
               "captum_s": cap[best_ppe][0] * n, "captum_s_how": f"extrapolated: {cap[best_ppe][1]} windows timed"}
        if name == "resnet18" and (size, stride) == (32, 16):
            row["captum_s_full_run"] = captum_full(net, x, cls, size, stride, best_ppe)
        maps, grids = {}, {}
        for mode in ("exact", "approximate"):
            setup, per_window, n_eval = ours_subset(net, x, target, size, stride, mode)
            estimate = setup + per_window * n_eval
            row[f"{mode}_windows_evaluated"] = n_eval
            if estimate <= FULL_RUN_LIMIT_S:
                g, s = timed(lambda: fw.occlusion_grid(net, x, target, size, stride, mode=mode))
                grids[mode], maps[mode] = g.drop, g.to_map((224, 224))
                row[f"{mode}_s"], row[f"{mode}_s_how"] = s, "full run"
                row[f"{mode}_wall_s"] = WALL["last"]
            else:
                row[f"{mode}_s"] = estimate
                row[f"{mode}_s_how"] = (f"extrapolated: setup {setup:.2f} s + {n_eval} windows x {per_window:.4f} s "
                                        f"(timed on {SUBSET} spread windows)")
            row[f"speedup_{mode}_vs_captum"] = row["captum_s"] / row[f"{mode}_s"]
            print(name, size, stride, mode, row[f"{mode}_s"], row[f"{mode}_s_how"], flush=True)
        if len(grids) == 2:
            row["approximate_error"] = errors(grids["approximate"], grids["exact"], maps["approximate"],
                                              maps["exact"])
        result["configs"].append(row)
    return result


def bench_demo():
    name = "shapes"
    try:
        d = fw.demo.load(name)
    except fw.FeatwidgetError:
        name = "shapes-confounded"
        d = fw.demo.load(name)
    net, x = d.network, d.images[:8]
    with torch.no_grad():
        cls = net(x).argmax(1)
    result = {"model": f"demo {name} (shipped weights)", "input": "8x3x64x64 held-out demo images",
              "target": "probability of the predicted class (the default)", "configs": []}
    for size, stride in [(16, 8), (8, 4), (8, 2)]:
        ys, xs, _, _ = windows(64, 64, size, stride)
        row = {"size": size, "stride": stride, "windows": len(ys) * len(xs)}

        from captum.attr import Occlusion

        def captum(ppe):
            occ = Occlusion(lambda z: torch.softmax(net.module(z), 1))
            with torch.no_grad():
                return occ.attribute(net.normalize(x), sliding_window_shapes=(3, size, size),
                                     strides=(3, stride, stride), baselines=0.0, target=cls,
                                     perturbations_per_eval=ppe)

        times = {ppe: timed(lambda: captum(ppe))[1] for ppe in (1, 16, 64)}
        best = min(times, key=times.get)
        row["captum_s"], row["captum_best_perturbations_per_eval"] = times[best], best
        grids, maps = {}, {}
        for mode in ("exact", "approximate"):
            g, s = timed(lambda: fw.occlusion_grid(net, x, None, size, stride, mode=mode))
            grids[mode], maps[mode] = g.drop, g.to_map((64, 64))
            row[f"{mode}_s"] = s
            row[f"speedup_{mode}_vs_captum"] = row["captum_s"] / s
        row["approximate_error"] = errors(grids["approximate"], grids["exact"], maps["approximate"], maps["exact"])
        print("demo", row, flush=True)
        result["configs"].append(row)
    return result


def main():
    torch.set_num_threads(THREADS)
    d = fw.demo.dataset("shapes", 1, seed=3)
    x = torch.nn.functional.interpolate(d.images, size=(224, 224), mode="bilinear", align_corners=False).clamp(0, 1)
    out = {
        "what": "occlusion: Captum Occlusion vs fw.occlusion exact (incremental) vs approximate",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average at start "
                   f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}, {THREADS} thread(s)",
        "timing": "seconds are CPU time of the benchmark process (time.process_time), robust to other jobs "
                  "on a shared machine; *_wall_s are wall-clock seconds of the same full runs",
        "approximate_settings": {"tau": approximate.TAU, "refine": approximate.REFINE},
        "fill": "gray for ours; Captum baseline 0 in normalized space (= the ImageNet mean colour) -- same cost",
        "targets": {"exact_vs_captum_vgg16_16_8": ">= 3x", "approximate_vs_captum_vgg16_16_8": ">= 10x"},
        "demo": bench_demo(),
        "models": [],
    }
    for name in ("resnet18", "vgg16"):
        out["models"].append(bench_torchvision(name, x))
        write(out)
    vgg = next(m for m in out["models"] if m["model"] == "vgg16")
    row = next(r for r in vgg["configs"] if (r["size"], r["stride"]) == (16, 8))
    out["headline_vgg16_16_8"] = {k: row[k] for k in row if k.startswith(("speedup", "approximate_error"))}
    write(out)
    print(json.dumps(out["headline_vgg16_16_8"], indent=1))


def write(out):
    path = ROOT / "benchmarks" / "results" / "occlusion.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
