// fw.Filters: a conv layer's filters as a grid; click one to enlarge it with its value range.
import { COLORMAPS } from "./lib/colormap.js";
import { layerSlider, select, slider, toggle } from "./lib/controls.js";
import { copyWithFrame, drawGrid, drawRGBA, gridHit, imageRGBA, mapRGBA, offscreen } from "./lib/draw.js";
import { NORMALIZATIONS, rescale, valueRange } from "./lib/normalize.js";
import { slice0 } from "./lib/tensor.js";
import { canvas, mountView, textEl } from "./lib/view.js";

const fmt = (v) => (Math.abs(v) >= 100 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(2) : v.toFixed(3));

function build(ctx) {
  const { model, controls, body } = ctx;
  const layer = layerSlider(model, ctx.onSend);
  const mode = select(model, "mode", [["rgb", "RGB (3 input channels)"], ["mean", "mean over inputs"],
    ["channel", "one input channel"]], { label: "show", onSend: ctx.onSend });
  const inChannel = slider(model, "in_channel", { label: "input channel", onSend: ctx.onSend });
  const cmap = select(model, "colormap", COLORMAPS, { label: "colormap" });
  const norm = select(model, "normalization", NORMALIZATIONS, { label: "scale" });
  const perFilter = toggle(model, "per_filter", { label: "scale each filter" });
  const showInChannel = () => { inChannel.element.style.display = model.get("mode") === "channel" ? "" : "none"; };
  model.on("change:mode", showInChannel);
  showInChannel();
  controls.append(layer.element, mode.element, inChannel.element, cmap.element, norm.element, perFilter.element);

  const grid = canvas("fw-grid");
  grid.title = "click a filter to enlarge it";
  const main = canvas("fw-main");
  const side = textEl("div", "fw-side");
  const caption = textEl("div", "fw-range fw-label");
  const note = textEl("div", "fw-note fw-label");
  side.append(main, caption, note);
  body.append(grid, side);
  grid.addEventListener("click", (ev) => {
    if (!ctx.layout) return;
    const item = gridHit(ctx.layout, grid, ev.offsetX, ev.offsetY);
    if (item >= 0) { model.set("selected", item); model.save_changes(); }
  });
  Object.assign(ctx, { grid, main, caption, note, inChannel, cache: { key: null, canvas: offscreen() } });
  ctx.dispose = () => { for (const c of [layer, mode, inChannel, cmap, norm, perFilter]) c.dispose(); model.off("change:mode", showInChannel); };
}

// Each filter as RGBA: RGB patches for 3-channel filters, colormapped maps otherwise.
function filterRGBA(w, o, range, { cmap, norm, percentile }) {
  const [, c, kh, kw] = w.shape;
  const values = slice0(w, o);
  const r = range || valueRange(values, norm, percentile);
  if (c === 3) return imageRGBA({ shape: [3, kh, kw], dtype: "float32", data: rescale(values, r[0], r[1]) });
  return mapRGBA(values, { cmap, range: r });
}

function draw(result, ctx) {
  const { model } = ctx;
  const w = result.weights;
  const [o, , kh, kw] = w.shape;
  const opts = { cmap: model.get("colormap"), norm: model.get("normalization"), percentile: model.get("percentile") };
  const perFilter = model.get("per_filter");
  const layerRange = perFilter ? null : valueRange(w.data, opts.norm, opts.percentile);
  const key = [result.seq, result.layer, result.shown, opts.cmap, opts.norm, opts.percentile, perFilter].join("|");
  if (ctx.cache.key !== key || ctx.cache.result !== result) {
    ctx.layout = drawGrid(ctx.cache.canvas, o, kh, kw, (i) => filterRGBA(w, i, layerRange, opts), { maxScale: 12 });
    Object.assign(ctx.cache, { key, result });
  }
  const sel = Math.min(Math.max(model.get("selected"), 0), o - 1);
  copyWithFrame(ctx.grid, ctx.cache.canvas, ctx.layout, sel);

  const values = slice0(w, sel);
  const [lo, hi] = valueRange(values, "minmax");
  drawRGBA(ctx.main, filterRGBA(w, sel, layerRange, opts), kw, kh, Math.max(1, Math.floor(160 / Math.max(kh, kw))));
  ctx.caption.textContent = `${result.layer} · filter ${sel} of ${o} · ${kh}x${kw} · values ${fmt(lo)} … ${fmt(hi)}` +
    (result.shown === "rgb" ? " (RGB)" : ` (${result.shown})`);
  ctx.note.textContent = result.note || "";
  ctx.inChannel.setMax(result.in_channels - 1);
}

export default {
  render({ model, el }) {
    return mountView(model, el, {
      name: "filters", build, draw,
      redrawOn: ["colormap", "normalization", "percentile", "per_filter", "selected"],
    });
  },
};
