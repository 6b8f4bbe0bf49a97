// Drawing on <canvas>: pictures are built at their natural resolution into RGBA buffers, then blown up
// with nearest-neighbour scaling (imageSmoothingEnabled = false) so every unit stays a crisp square.
import { colorizeRange } from "./colormap.js";
import { valueRange } from "./normalize.js";

/** (C, H, W) image with C = 1 or 3 -> RGBA. uint8 data is taken as 0..255, floats as 0..1. */
export function imageRGBA(t) {
  const [c, h, w] = t.shape;
  const n = h * w;
  const out = new Uint8ClampedArray(n * 4);
  const k = t.dtype === "uint8" ? 1 : 255;
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < 3; ch++) out[4 * i + ch] = t.data[(c === 3 ? ch * n : 0) + i] * k;
    out[4 * i + 3] = 255;
  }
  return out;
}

/** A single map -> RGBA through a normalization and a colormap; `range` overrides the map's own range. */
export function mapRGBA(values, { cmap = "viridis", norm = "minmax", percentile = 99, range = null, alpha = 255 } = {}) {
  const [lo, hi] = range || valueRange(values, norm, percentile);
  return colorizeRange(values, lo, hi, cmap, undefined, alpha);
}

function scratch(w, h, rgba) {
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  c.getContext("2d").putImageData(new ImageData(rgba, w, h), 0, 0);
  return c;
}

/** Resize `canvas` to (w*scale, h*scale) and draw RGBA pixels with nearest-neighbour upscaling. */
export function drawRGBA(canvas, rgba, w, h, scale = 1) {
  canvas.width = w * scale;
  canvas.height = h * scale;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(scratch(w, h, rgba), 0, 0, canvas.width, canvas.height);
}

/**
 * Draw a heatmap (RGBA at its own resolution) over what `canvas` already shows, into `rect` = [x, y, w, h]
 * in canvas pixels (the map's footprint on the input), with the given opacity.
 */
export function overlayRGBA(canvas, rgba, w, h, rect, opacity) {
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.save();
  ctx.globalAlpha = opacity;
  ctx.drawImage(scratch(w, h, rgba), rect[0], rect[1], rect[2], rect[3]);
  ctx.restore();
}

/**
 * Where an (h, w) map lies on an (H, W) input: from the receptive field (unit (0,0) centred at `offset`,
 * `stride` input pixels apart; each unit drawn as a stride-sized square) when known, else the map is
 * stretched over the whole input. Returned in input pixels: [x, y, width, height].
 */
export function footprint(h, w, H, W, rf) {
  if (!rf) return [0, 0, W, H];
  const [sy, sx] = rf.stride;
  const [oy, ox] = rf.offset;
  // Pixel k spans [k, k+1] on the canvas, so its centre is k + 0.5.
  return [ox + 0.5 - sx / 2, oy + 0.5 - sy / 2, w * sx, h * sy];
}

/** Grid geometry for n cells of (h, w) units: columns, per-cell scale, gap, and the canvas size. */
export function gridLayout(n, h, w, { width = 520, gap = 2, maxScale = 8 } = {}) {
  const cols = Math.max(1, Math.ceil(Math.sqrt(n * h / w)));
  const rows = Math.ceil(n / cols);
  const scale = Math.max(1, Math.min(maxScale, Math.floor((width - gap * cols) / (cols * w))));
  const cw = w * scale + gap;
  const ch = h * scale + gap;
  return { cols, rows, scale, gap, cw, ch, width: cols * cw - gap, height: rows * ch - gap };
}

/**
 * Draw n cells into `canvas`. `cell(i)` returns the RGBA (h x w) of item i; `order` lists which item goes in
 * each grid position. Returns the layout plus the order, for `gridHit` and `frameItem`.
 */
export function drawGrid(canvas, n, h, w, cell, { order = null, ...geometry } = {}) {
  const L = gridLayout(n, h, w, geometry);
  canvas.width = L.width;
  canvas.height = L.height;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, L.width, L.height);
  const items = order || Array.from({ length: n }, (_, i) => i);
  items.forEach((item, pos) => {
    const [x, y] = cellOrigin(L, pos);
    ctx.drawImage(scratch(w, h, cell(item)), x, y, w * L.scale, h * L.scale);
  });
  return { ...L, h, w, order: items };
}

function cellOrigin(L, pos) {
  return [(pos % L.cols) * L.cw, Math.floor(pos / L.cols) * L.ch];
}

/** Copy a drawn grid (`source`) into `canvas` and frame one item, so a selection change is one blit. */
export function copyWithFrame(canvas, source, layout, item, color = "#ff2d55") {
  canvas.width = source.width;
  canvas.height = source.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(source, 0, 0);
  const pos = layout.order.indexOf(item);
  if (pos < 0) return;
  const [x, y] = cellOrigin(layout, pos);
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.strokeRect(x + 1, y + 1, layout.w * layout.scale - 2, layout.h * layout.scale - 2);
}

/** A detached canvas (for caching drawn pictures). */
export function offscreen() {
  return document.createElement("canvas");
}

/** Item under a click at canvas-CSS coordinates (x, y), or -1. */
export function gridHit(layout, canvas, x, y) {
  const sx = canvas.width / (canvas.clientWidth || canvas.width);
  const sy = canvas.height / (canvas.clientHeight || canvas.height);
  const col = Math.floor((x * sx) / layout.cw);
  const row = Math.floor((y * sy) / layout.ch);
  const pos = row * layout.cols + col;
  if (col < 0 || col >= layout.cols || row < 0 || pos >= layout.order.length) return -1;
  return layout.order[pos];
}

/** Display scale for an input of height h: about `target` CSS pixels, at least 1. */
export function fitScale(h, target = 256) {
  return Math.max(1, Math.round(target / h));
}
