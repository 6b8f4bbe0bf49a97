// Pieces shared by the input-reconstruction views (FeatureVis, Inversion, Adversarial): a row of images,
// a line chart of a per-step curve, action buttons, top-k probability bars.
import { drawRGBA, fitScale, imageRGBA } from "./draw.js";
import { slice0 } from "./tensor.js";
import { textEl } from "./view.js";

/** (B, C, H, W) image tensor -> the B images side by side on `canvas`, `gap` pixels apart. */
export function drawRow(canvas, images, { gap = 2, target = 160 } = {}) {
  const [b, c, h, w] = images.shape;
  const W = b * w + (b - 1) * gap;
  const rgba = new Uint8ClampedArray(W * h * 4).fill(255);
  for (let i = 0; i < b; i++) {
    const one = imageRGBA({ dtype: images.dtype, shape: [c, h, w], data: slice0(images, i) });
    for (let y = 0; y < h; y++) {
      rgba.set(one.subarray(y * w * 4, (y + 1) * w * 4), (y * W + i * (w + gap)) * 4);
    }
  }
  drawRGBA(canvas, rgba, W, h, fitScale(h, target));
}

/** One (C, H, W) image tensor on `canvas`. */
export function drawImage(canvas, image, target = 192) {
  const [, h, w] = image.shape;
  drawRGBA(canvas, imageRGBA(image), w, h, fitScale(h, target));
}

/** A line chart of `values` (Float32Array) with its first/last value and range written on it. */
export function drawCurve(canvas, values, { width = 260, height = 120, label = "" } = {}) {
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  g.strokeStyle = "#ccc";
  g.strokeRect(0.5, 0.5, width - 1, height - 1);
  const n = values ? values.length : 0;
  if (!n) return;
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (hi === lo) { hi += 1e-6; lo -= 1e-6; }
  const pad = 14;
  const x = (i) => pad + (n === 1 ? 0 : (i / (n - 1)) * (width - 2 * pad));
  const y = (v) => height - pad - ((v - lo) / (hi - lo)) * (height - 2 * pad);
  g.strokeStyle = "#2a7ae2";
  g.lineWidth = 1.5;
  g.beginPath();
  for (let i = 0; i < n; i++) (i ? g.lineTo : g.moveTo).call(g, x(i), y(values[i]));
  g.stroke();
  g.fillStyle = "#555";
  g.font = "10px system-ui, sans-serif";
  g.fillText(`${label} ${fmt(values[n - 1])}  (range ${fmt(lo)} .. ${fmt(hi)})`, 4, 11);
}

export function fmt(v) {
  const a = Math.abs(v);
  return a >= 1000 || (a < 0.001 && v !== 0) ? v.toExponential(2) : v.toPrecision(3);
}

/** A <button> with class fw-button and data-action=<action>; `onClick` runs on click. */
export function button(text, action, onClick) {
  const b = document.createElement("button");
  b.className = "fw-button";
  b.dataset.action = action;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

/** Top-k bars: [{label, prob}] -> a list element (labels through textContent). */
export function probabilityBars(title, list) {
  const box = textEl("div", "fw-topk");
  Object.assign(box.style, { display: "flex", flexDirection: "column", gap: "2px", minWidth: "220px" });
  box.append(textEl("div", "fw-control-name", title));
  for (const p of list || []) {
    const row = textEl("div", "fw-bar-row");
    Object.assign(row.style, { display: "flex", alignItems: "center", gap: "6px" });
    const bar = textEl("div", "fw-bar");
    // styled here, not in the shared stylesheet (owned by the front-end helper)
    Object.assign(bar.style, { height: "8px", background: "#2a7ae2", borderRadius: "2px" });
    bar.style.width = `${Math.max(1, Math.round(120 * p.prob))}px`;
    row.append(textEl("span", "fw-prob", `${(100 * p.prob).toFixed(1)}%`), bar, textEl("span", "fw-label", String(p.label)));
    box.append(row);
  }
  return box;
}
