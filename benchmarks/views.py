"""How fast do the Activations view's sliders answer, and how many bytes does an update send?

Python side: the time from a trait change (``view.layer = ...`` / ``view.channel = ...``, exactly what a
front-end message does) to the new ``result`` being published by the view's worker, with a warm activation
cache, plus the time to serialize that result the way ipywidgets does (binary buffers + JSON).
Browser side (no DOM in node): the JS work of a redraw -- decode + normalize + colormap -- timed in node for
one map (channel change) and for all maps of the layer (layer change); canvas blits are not included.

Targets (issue 3): channel change < 20 ms, layer change < 50 ms warm, about 4 bytes per heatmap value.

    python benchmarks/views.py            # writes benchmarks/results/views.json
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

import torch
import torchvision
from ipywidgets.widgets.widget import _remove_buffers

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import featwidget as fw  # noqa: E402

THREADS = int(os.environ.get("FW_BENCH_THREADS", "1"))  # a shared 2-core machine: stay modest


def demo_model():
    """The shipped 'shapes' demo; its architecture with random weights if the weights are not built yet."""
    try:
        d = fw.demo.load("shapes")
        return "demo shapes (shipped weights)", d.network, d.images[0]
    except fw.FeatwidgetError as e:
        from featwidget.demo.catalog import SPECS
        from featwidget.demo.datasets import dataset

        spec = SPECS["shapes"]
        net = fw.wrap(spec.build().eval(), input_size=spec.input_size, mean=spec.mean, std=spec.std)
        print(f"note: {e} -- using the shapes architecture with random weights", file=sys.stderr)
        return "demo shapes architecture (random weights: shipped weights missing)", net, dataset("shapes", 1).images[0]


def resnet18():
    torch.manual_seed(0)
    net = fw.wrap(torchvision.models.resnet18(weights=None), preset="imagenet")
    return "torchvision resnet18 @224 (weights=None)", net, torch.rand(3, 224, 224)


def wire_bytes(result: dict) -> tuple[int, int, float]:
    """(binary buffer bytes, JSON bytes, ms to serialize) of a result as ipywidgets sends it."""
    t0 = time.perf_counter()
    state, _, buffers = _remove_buffers({"result": result})
    text = json.dumps(state)
    ms = (time.perf_counter() - t0) * 1e3
    return sum(memoryview(b).nbytes for b in buffers), len(text.encode()), ms


def summary(ms: list[float]) -> dict:
    s = sorted(ms)
    return {"median_ms": round(statistics.median(s), 3), "p90_ms": round(s[int(0.9 * (len(s) - 1))], 3),
            "max_ms": round(s[-1], 3), "n": len(s)}


def bench(label, net, image, rounds=3):
    x = image[None]
    with torch.no_grad():
        net(x)  # warm up the allocator
        t0 = time.perf_counter()
        net(x)
        forward_ms = (time.perf_counter() - t0) * 1e3

    t0 = time.perf_counter()
    v = fw.Activations(net, image).wait(600)
    cold_ms = (time.perf_counter() - t0) * 1e3  # every layer in one pass + top-5: once per image

    layer_ms, serialize_ms, per_value, updates = [], [], [], []
    for _ in range(rounds):
        for name in v.layers:
            t0 = time.perf_counter()
            v.layer = name
            v.wait(60)
            layer_ms.append((time.perf_counter() - t0) * 1e3)
            assert v.status == "idle", v.error
            binary, text, ser = wire_bytes(v.result)
            c, h, w = v.result["maps"]["shape"]
            serialize_ms.append(ser)
            per_value.append((binary + text) / (c * h * w))
            updates.append({"layer": name, "shape": [c, h, w], "binary_bytes": binary, "json_bytes": text})

    channel_ms = []
    seq = v.seq
    c = v.result["maps"]["shape"][0]
    for i in range(200):
        t0 = time.perf_counter()
        v.channel = i % c  # display-only trait: the maps are already in `result`
        channel_ms.append((time.perf_counter() - t0) * 1e3)
    assert v.seq == seq, "a channel change must not start a computation"
    channel_msg = len(json.dumps({"method": "update", "state": {"channel": c - 1}, "buffer_paths": []}).encode())
    biggest = max(updates, key=lambda u: u["binary_bytes"])
    v.close()
    return {
        "model": label,
        "input": list(image.shape),
        "layers": len(v.layers),
        "forward_ms": round(forward_ms, 2),
        "first_request_ms": round(cold_ms, 1),
        "layer_change": {**summary(layer_ms), "serialize": summary(serialize_ms)},
        "channel_change": {**summary(channel_ms), "bytes": channel_msg,
                           "note": "no request: the channel is drawn in the browser from the layer's maps"},
        "bytes_per_map_value": {"min": round(min(per_value), 3), "max": round(max(per_value), 3)},
        "largest_update": biggest,
        "js_redraw": js_redraw(biggest["shape"]),
    }


def js_redraw(shape):
    """Node timing of the browser's per-update work (decode, normalize, colormap) for a layer of ``shape``."""
    c, h, w = shape
    script = f"""
import {{ decode, slice0 }} from './src/lib/tensor.js';
import {{ mapRGBA }} from './src/lib/draw.js';
const [c, h, w] = [{c}, {h}, {w}];
const buf = new ArrayBuffer(4 * c * h * w + 8);
const f = new Float32Array(buf, 8, c * h * w); for (let i = 0; i < f.length; i++) f[i] = Math.sin(i) * 3;
const raw = {{ dtype: 'float32', shape: [c, h, w], data: new DataView(buf, 8, 4 * c * h * w) }};
const time = (fn, n) => {{ fn(); const t = performance.now(); for (let i = 0; i < n; i++) fn(); return (performance.now() - t) / n; }};
const t = decode(raw);
const one = time(() => mapRGBA(slice0(t, 3), {{ cmap: 'viridis', norm: 'minmax' }}), 50);
const onePct = time(() => mapRGBA(slice0(t, 3), {{ cmap: 'viridis', norm: 'percentile' }}), 20);
const all = time(() => {{ const d = decode(raw); for (let i = 0; i < c; i++) mapRGBA(slice0(d, i), {{ cmap: 'viridis' }}); }}, 3);
console.log(JSON.stringify({{ channel_ms: one, channel_percentile_ms: onePct, layer_all_maps_ms: all }}));
"""
    try:
        out = subprocess.run(["node", "--input-type=module", "-e", script], cwd=ROOT / "js", capture_output=True,
                             text=True, timeout=300, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        return {"error": str(e)}
    return {k: round(v, 3) for k, v in json.loads(out).items()} | {"shape": shape}


def main():
    torch.set_num_threads(THREADS)
    results = [bench(*demo_model()), bench(*resnet18(), rounds=1)]
    report = {
        "benchmark": "views: Activations slider latency and bytes per update",
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.1f}",
        "torch": torch.__version__, "torch_threads": THREADS, "device": "cpu",
        "targets": {"channel_change_ms": 20, "layer_change_warm_ms": 50, "bytes_per_heatmap_value": 4},
        "results": results,
    }
    out = ROOT / "benchmarks" / "results" / "views.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    for r in results:
        print(f"{r['model']}: first request {r['first_request_ms']} ms (forward {r['forward_ms']} ms); "
              f"layer change median {r['layer_change']['median_ms']} ms, max {r['layer_change']['max_ms']} ms; "
              f"channel change median {r['channel_change']['median_ms']} ms; "
              f"bytes/value {r['bytes_per_map_value']}; JS redraw {r['js_redraw']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
