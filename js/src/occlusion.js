// fw.Occlusion: the drop of the target when a patch covers each pixel, over the input image.
// The map arrives as floats; sign, colormap, normalization and opacity are applied here (no Python).
// A coarse map (stride doubled) arrives first as a partial result, then the full one. Hovering the map
// shows, on the side canvas, the image occluded by the window nearest to the pointer and the target's value
// with that window occluded -- all from the result (grid, window positions, fill image), no round trip.
import { floatSlider, heatmapControls, select, slider, targetSelect } from "./lib/controls.js";
import { drawRGBA, fitScale, imageRGBA, mapRGBA, overlayRGBA } from "./lib/draw.js";
import { applySign, valueRange } from "./lib/normalize.js";
import { canvas, mountView, num, textEl, traitTensor } from "./lib/view.js";

/** Index of the window whose centre is nearest to pixel (y, x) along one axis. */
export function nearestWindow(starts, size, p) {
  let best = 0;
  for (let i = 1; i < starts.length; i++) {
    if (Math.abs(starts[i] + size / 2 - p) < Math.abs(starts[best] + size / 2 - p)) best = i;
  }
  return best;
}

/** RGBA of the input with the window [y, y+size) x [x, x+size) replaced by the fill image. */
export function occludedRGBA(image, fill, y, x, size) {
  const [, h, w] = image.shape;
  const out = imageRGBA(image);
  const f = imageRGBA(fill);
  for (let r = y; r < Math.min(h, y + size); r++) {
    for (let c = x; c < Math.min(w, x + size); c++) {
      const i = 4 * (r * w + c);
      out[i] = f[i]; out[i + 1] = f[i + 1]; out[i + 2] = f[i + 2];
    }
  }
  return out;
}

function build(ctx) {
  const { model, controls, body } = ctx;
  const onSend = ctx.onSend;
  const c = {
    size: slider(model, "size", { label: "patch size", min: 2, max: () => model.get("max_size"), onSend,
      listen: ["max_size"], describe: (v) => `${v} px` }),
    stride: slider(model, "stride", { label: "stride", min: 1, max: () => model.get("size"), onSend,
      listen: ["size"], describe: (v) => `${Math.min(v, model.get("size"))} px` }),
    fill: select(model, "fill", model.get("fills"), { label: "fill", onSend }),
    mode: select(model, "mode", ["exact", "approximate"], { label: "mode", onSend }),
    target: targetSelect(model, onSend),
    ...heatmapControls(model),
  };
  for (const control of Object.values(c)) controls.append(control.element);
  const main = canvas("fw-main");
  const occluded = canvas("fw-occluded");
  const pictures = textEl("div", "fw-pictures");
  pictures.append(main, occluded);
  const caption = textEl("div", "fw-stats fw-label");
  const hover = textEl("div", "fw-note fw-label fw-hover");
  const side = textEl("div", "fw-side");
  side.append(pictures, caption, hover);
  body.append(side);
  main.addEventListener("mousemove", (e) => showWindow(ctx, e));
  Object.assign(ctx, { main, occluded, caption, hover });
  ctx.dispose = () => { for (const control of Object.values(c)) control.dispose(); };
}


function showWindow(ctx, e) {
  const r = ctx.result;
  const img = traitTensor(ctx, "input_image");
  if (!r || !r.grid || !r.fill_image || !img) return;
  const rect = ctx.main.getBoundingClientRect();
  const [, h, w] = img.shape;
  const py = ((e.clientY - rect.top) / rect.height) * h;
  const px = ((e.clientX - rect.left) / rect.width) * w;
  const i = nearestWindow(r.ys, r.size, py);
  const j = nearestWindow(r.xs, r.size, px);
  const drop = r.grid.data[i * r.xs.length + j];
  const k = Math.max(1, Math.round(fitScale(h) / 2));
  drawRGBA(ctx.occluded, occludedRGBA(img, r.fill_image, r.ys[i], r.xs[j], r.size), w, h, k);
  ctx.hover.textContent = `patch at (${r.ys[i]}, ${r.xs[j]}): ${r.target} = ${num(r.value - drop)} ` +
    `(unoccluded ${num(r.value)}, drop ${num(drop)})`;
  ctx.root.dataset.hover = `${i},${j}`;
}

function draw(result, ctx) {
  const { model } = ctx;
  const opts = { cmap: model.get("colormap"), norm: model.get("normalization"), percentile: model.get("percentile") };
  const [h, w] = result.map.shape;
  const values = applySign(result.map.data, model.get("sign"));
  const img = traitTensor(ctx, "input_image");
  const k = fitScale(h);
  if (img) drawRGBA(ctx.main, imageRGBA(img), w, h, k);
  else drawRGBA(ctx.main, mapRGBA(values, opts), w, h, k);
  if (img) overlayRGBA(ctx.main, mapRGBA(values, opts), w, h, [0, 0, w * k, h * k], model.get("opacity"));
  if (img && ctx.occluded.width === 0) drawRGBA(ctx.occluded, imageRGBA(img), w, h, Math.max(1, Math.round(k / 2)));
  const [lo, hi] = valueRange(values, opts.norm, opts.percentile);
  ctx.root.dataset.coarse = result.coarse ? "1" : "0";
  ctx.caption.textContent = `drop of ${result.target}, patch ${result.size} px, stride ${result.stride} px` +
    `${result.coarse ? " (coarse, refining...)" : ""} · colour range ${num(lo)} to ${num(hi)}`;
}

export default {
  render({ model, el }) {
    return mountView(model, el, {
      name: "occlusion", build, draw,
      redrawOn: ["sign", "colormap", "normalization", "percentile", "opacity", "input_image"],
    });
  },
};
