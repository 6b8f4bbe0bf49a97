// fw.Attribution: a backward method's map over the input image, or every method side by side.
// Maps arrive as signed floats; sign, colormap, normalization, percentile clip and opacity are applied here,
// so changing them needs no Python. Only the knobs of the chosen method are shown.
import { floatSlider, heatmapControls, layerSlider, select, slider, targetSelect, toggle } from "./lib/controls.js";
import { drawGrid, drawRGBA, fitScale, imageRGBA, mapRGBA, overlayRGBA } from "./lib/draw.js";
import { applySign, valueRange } from "./lib/normalize.js";
import { slice0 } from "./lib/tensor.js";
import { canvas, mountView, num, textEl, traitTensor } from "./lib/view.js";

const SMOOTH = ["gradient", "saliency", "input_x_gradient", "deconvnet", "guided"];
// which knobs belong to which method (the rest are hidden)
const KNOBS = {
  smoothgrad: ["sigma", "samples", "smooth_method"],
  integrated_gradients: ["steps", "baseline"],
  grad_cam: ["layer"],
  guided_grad_cam: ["layer"],
  lrp: ["lrp_rule", "epsilon"],
};

function build(ctx) {
  const { model, controls, body } = ctx;
  const onSend = ctx.onSend;
  const c = {
    method: select(model, "method", model.get("methods"), { label: "method", onSend }),
    target: targetSelect(model, onSend),
    compare: toggle(model, "compare", { label: "compare all", onSend }),
    sigma: floatSlider(model, "sigma", { label: "sigma", min: 0, max: 0.5, step: 0.01, onSend }),
    samples: slider(model, "samples", { label: "samples", min: 1, max: 100, onSend }),
    smooth_method: select(model, "smooth_method", SMOOTH, { label: "of", onSend }),
    steps: slider(model, "steps", { label: "steps", min: 1, max: 200, onSend }),
    baseline: select(model, "baseline", ["black", "white", "blur"], { label: "baseline", onSend }),
    layer: layerSlider(model, onSend),
    lrp_rule: select(model, "lrp_rule", ["epsilon", "gamma", "alpha_beta"], { label: "rule", onSend }),
    epsilon: floatSlider(model, "epsilon", { label: "epsilon", min: 0, max: 1, step: 0.01, onSend }),
    ...heatmapControls(model),
    shared_scale: toggle(model, "shared_scale", { label: "shared scale" }),
  };
  for (const control of Object.values(c)) controls.append(control.element);

  const input = canvas("fw-input");
  const main = canvas("fw-main");
  const pictures = textEl("div", "fw-pictures");
  pictures.append(input, main);
  const caption = textEl("div", "fw-stats fw-label");
  const side = textEl("div", "fw-side");
  side.append(pictures, caption);
  const grid = canvas("fw-grid");
  const names = textEl("div", "fw-note fw-label");
  const gridBox = textEl("div", "fw-side");
  gridBox.append(grid, names);
  body.append(side, gridBox);

  function visibility() {
    const compare = model.get("compare");
    const method = model.get("method");
    const shown = new Set(compare ? Object.values(KNOBS).flat() : KNOBS[method] || []);
    for (const k of ["sigma", "samples", "smooth_method", "steps", "baseline", "layer", "lrp_rule", "epsilon"]) {
      c[k].element.style.display = shown.has(k) ? "" : "none";
    }
    c.shared_scale.element.style.display = compare ? "" : "none";
    c.opacity.element.style.display = compare ? "none" : "";
    side.style.display = compare ? "none" : "";
    gridBox.style.display = compare ? "" : "none";
  }
  model.on("change:method", visibility);
  model.on("change:compare", visibility);
  visibility();
  Object.assign(ctx, { input, main, grid, caption, names });
  ctx.dispose = () => {
    for (const control of Object.values(c)) control.dispose();
    model.off("change:method", visibility);
    model.off("change:compare", visibility);
  };
}



/** Range of every map after the sign; a NaN map (a method that refused) is ignored. */
function ranges(maps, opts) {
  return maps.map((m) => (m.every(Number.isNaN) ? [0, 1] : valueRange(m, opts.norm, opts.percentile)));
}

function draw(result, ctx) {
  const { model } = ctx;
  const sign = model.get("sign");
  const opts = { cmap: model.get("colormap"), norm: model.get("normalization"), percentile: model.get("percentile") };
  if (result.map) {
    const [h, w] = result.map.shape;
    const values = applySign(result.map.data, sign);
    const img = traitTensor(ctx, "input_image");
    const k = fitScale(h);
    if (img) {
      const rgba = imageRGBA(img);
      drawRGBA(ctx.input, rgba, w, h, Math.max(1, Math.round(k / 2)));
      drawRGBA(ctx.main, rgba, w, h, k);
      overlayRGBA(ctx.main, mapRGBA(values, opts), w, h, [0, 0, w * k, h * k], model.get("opacity"));
    } else {
      drawRGBA(ctx.main, mapRGBA(values, opts), w, h, k);
    }
    const [lo, hi] = valueRange(values, opts.norm, opts.percentile);
    ctx.caption.textContent = `${result.method}${result.partial ? " (running mean)" : ""} · colour range ${num(lo)} to ${num(hi)}`;
    return;
  }
  const [n, h, w] = result.maps.shape;
  const maps = Array.from({ length: n }, (_, i) => applySign(slice0(result.maps, i), sign));
  let r = ranges(maps, opts);
  if (model.get("shared_scale")) {
    const ok = r.filter((_, i) => !maps[i].every(Number.isNaN));
    const shared = [Math.min(...ok.map((x) => x[0])), Math.max(...ok.map((x) => x[1]))];
    r = r.map(() => shared);
  }
  drawGrid(ctx.grid, n, h, w, (i) => mapRGBA(maps[i], { ...opts, range: r[i] }), { width: 720, maxScale: 3 });
  ctx.names.textContent = result.methods
    .map((m, i) => (result.errors[i] ? `${i + 1}. ${m}: not available (${result.errors[i]})` : `${i + 1}. ${m}`))
    .join("   ");
}

export default {
  render({ model, el }) {
    return mountView(model, el, {
      name: "attribution", build, draw,
      redrawOn: ["sign", "colormap", "normalization", "percentile", "opacity", "shared_scale", "input_image"],
    });
  },
};
