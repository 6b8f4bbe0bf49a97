// fw.Activations: the input, all channel maps of a layer, one map enlarged over the input, top-5 classes.
// Everything but the layer choice is drawn here from the maps already received: no Python round trip.
import { COLORMAPS } from "./lib/colormap.js";
import { floatSlider, layerSlider, select, slider, toggle } from "./lib/controls.js";
import { copyWithFrame, drawGrid, drawRGBA, fitScale, footprint, gridHit, imageRGBA, mapRGBA, offscreen,
  overlayRGBA } from "./lib/draw.js";
import { NORMALIZATIONS } from "./lib/normalize.js";
import { slice0 } from "./lib/tensor.js";
import { canvas, mountView, num, textEl, traitTensor } from "./lib/view.js";


function build(ctx) {
  const { model, controls, body } = ctx;
  const layer = layerSlider(model, ctx.onSend);
  const channel = slider(model, "channel", { label: "channel", onSend: ctx.onSend });
  const cmap = select(model, "colormap", COLORMAPS, { label: "colormap" });
  const norm = select(model, "normalization", NORMALIZATIONS, { label: "scale" });
  const opacity = floatSlider(model, "opacity", { label: "opacity" });
  const sort = toggle(model, "sort", { label: "sort by mean" });
  controls.append(layer.element, channel.element, cmap.element, norm.element, opacity.element, sort.element);

  const left = textEl("div", "fw-side");
  const input = canvas("fw-input");
  const main = canvas("fw-main");
  const pictures = textEl("div", "fw-pictures");
  pictures.append(input, main);
  const stats = textEl("div", "fw-stats fw-label");
  const note = textEl("div", "fw-note");
  const predTitle = textEl("div", "fw-control-name", "top-5 predictions");
  const preds = textEl("ul", "fw-predictions");
  left.append(pictures, stats, note, predTitle, preds);
  const grid = canvas("fw-grid");
  grid.title = "click a map to enlarge it";
  body.append(left, grid);

  grid.addEventListener("click", (ev) => {
    if (!ctx.layout) return;
    const item = gridHit(ctx.layout, grid, ev.offsetX, ev.offsetY);
    if (item >= 0) { model.set("channel", item); model.save_changes(); }
  });

  // Every channel's numbers on hover; the selected one's are in the stats line.
  grid.addEventListener("mousemove", (ev) => {
    if (!ctx.layout || !ctx.result) return;
    const i = gridHit(ctx.layout, grid, ev.offsetX, ev.offsetY);
    grid.title = i >= 0 ? `channel ${i}: ${channelNumbers(ctx.result.stats, i)}` : "click a map to enlarge it";
  });

  function showPredictions() {
    const list = model.get("predictions") || [];
    preds.replaceChildren(...list.map((p) => {
      const li = document.createElement("li");
      li.append(textEl("span", "fw-prob", `${(100 * p.prob).toFixed(1)}%`), textEl("span", "fw-label", String(p.label)));
      return li;
    }));
    predTitle.style.display = list.length ? "" : "none";
  }
  model.on("change:predictions", showPredictions);
  showPredictions();

  Object.assign(ctx, { input, main, grid, stats, note, channel, cache: { key: null, canvas: offscreen() } });
  ctx.dispose = () => {
    for (const c of [layer, channel, cmap, norm, opacity, sort]) c.dispose();
    model.off("change:predictions", showPredictions);
  };
}

function channelNumbers(stats, i) {
  return `mean ${num(stats.mean.data[i])} · max ${num(stats.max.data[i])} · zeros ${(100 * stats.zeros.data[i]).toFixed(1)}%`;
}


function draw(result, ctx) {
  const { model } = ctx;
  const maps = result.maps;
  const [c, h, w] = maps.shape;
  const opts = { cmap: model.get("colormap"), norm: model.get("normalization"), percentile: model.get("percentile") };
  const sorted = model.get("sort");
  const key = [opts.cmap, opts.norm, opts.percentile, sorted].join("|");
  if (ctx.cache.result !== result || ctx.cache.key !== key) {
    const mean = result.stats.mean.data;
    const order = sorted ? Array.from({ length: c }, (_, i) => i).sort((a, b) => mean[b] - mean[a]) : null;
    ctx.layout = drawGrid(ctx.cache.canvas, c, h, w, (i) => mapRGBA(slice0(maps, i), opts), { order });
    Object.assign(ctx.cache, { result, key });
  }
  const ch = Math.min(Math.max(model.get("channel"), 0), c - 1);
  copyWithFrame(ctx.grid, ctx.cache.canvas, ctx.layout, ch);
  ctx.channel.setMax(c - 1);

  const img = traitTensor(ctx, "input_image");
  const map = slice0(maps, ch);
  if (img) {
    const [, H, W] = img.shape;
    const k = fitScale(H);
    const rgba = imageRGBA(img);
    drawRGBA(ctx.input, rgba, W, H, Math.max(1, Math.round(k / 2)));
    drawRGBA(ctx.main, rgba, W, H, k);
    const rect = footprint(h, w, H, W, result.rf).map((v) => v * k);
    overlayRGBA(ctx.main, mapRGBA(map, opts), w, h, rect, model.get("opacity"));
    ctx.note.textContent = result.rf
      ? `map placed by receptive field: stride ${result.rf.stride[1]} px, unit (0,0) centred at (${result.rf.offset[1]}, ${result.rf.offset[0]})`
      : "map stretched over the image (no receptive-field geometry for this layer)";
  }
  const s = result.stats;
  ctx.stats.textContent = `${result.layer} · channel ${ch} of ${c} (${h}x${w}) · ${channelNumbers(s, ch)}`;
}

export default {
  render({ model, el }) {
    return mountView(model, el, {
      name: "activations", build, draw,
      redrawOn: ["channel", "colormap", "normalization", "percentile", "opacity", "sort", "input_image"],
    });
  },
};
