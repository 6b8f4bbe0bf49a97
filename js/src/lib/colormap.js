// Colormaps from compact control points (shared with Python's to_png through one JSON file),
// interpolated linearly in RGB, and cached as 256-entry lookup tables for drawing.
import TABLE from "../../../featwidget/widgets/colormaps.json" with { type: "json" };

export const COLORMAPS = Object.keys(TABLE).filter((k) => !k.startsWith("_"));

function parseHex(h) {
  return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
}

const POINTS = Object.fromEntries(COLORMAPS.map((k) => [k, TABLE[k].map(([p, h]) => [p, parseHex(h)])]));

function points(name) {
  const p = POINTS[name];
  if (!p) throw new Error(`unknown colormap ${name}; known: ${COLORMAPS.join(", ")}`);
  return p;
}

/** Colour of t in [0, 1] (clipped) as [r, g, b] integers 0..255. */
export function colorAt(name, t) {
  const p = points(name);
  const x = Number.isNaN(t) ? 0 : Math.min(1, Math.max(0, t));
  let i = 1;
  while (i < p.length - 1 && p[i][0] < x) i++;
  const [x0, c0] = p[i - 1];
  const [x1, c1] = p[i];
  const f = x1 > x0 ? (x - x0) / (x1 - x0) : 0;
  return [0, 1, 2].map((k) => Math.round(c0[k] + f * (c1[k] - c0[k])));
}

const LUTS = new Map();

// 257 entries, so that 0.5 (zero of a symmetric map) hits an entry exactly: white on the diverging map.
export const LUT_STEPS = 256;

/** (LUT_STEPS + 1) x RGB lookup table; entry i is the colour at i / LUT_STEPS. */
export function lut(name) {
  let table = LUTS.get(name);
  if (!table) {
    table = new Uint8ClampedArray((LUT_STEPS + 1) * 3);
    for (let i = 0; i <= LUT_STEPS; i++) table.set(colorAt(name, i / LUT_STEPS), 3 * i);
    LUTS.set(name, table);
  }
  return table;
}

/**
 * Colour normalized values (0..1) into an RGBA buffer. `out` has 4 bytes per value; alpha is constant.
 * NaN values become fully transparent so that missing data never looks like a real low value.
 */
export function colorize(values, name, out = new Uint8ClampedArray(values.length * 4), alpha = 255) {
  const table = lut(name);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isNaN(v)) { out[4 * i + 3] = 0; continue; }
    const j = 3 * Math.round(Math.min(1, Math.max(0, v)) * LUT_STEPS);
    out[4 * i] = table[j];
    out[4 * i + 1] = table[j + 1];
    out[4 * i + 2] = table[j + 2];
    out[4 * i + 3] = alpha;
  }
  return out;
}

const PACKED = new Map();

// The table as one 32-bit RGBA word per entry (little-endian byte order, as every browser runs), so that
// colouring a pixel is a single store.
function packed(name, alpha) {
  const key = `${name}|${alpha}`;
  let words = PACKED.get(key);
  if (!words) {
    const table = lut(name);
    words = new Uint32Array(LUT_STEPS + 1);
    for (let i = 0; i <= LUT_STEPS; i++) {
      words[i] = (table[3 * i] | (table[3 * i + 1] << 8) | (table[3 * i + 2] << 16) | (alpha << 24)) >>> 0;
    }
    PACKED.set(key, words);
  }
  return words;
}

/** colorize((values - lo) / (hi - lo)) in one pass, without an intermediate array (a layer has ~1e6 values). */
export function colorizeRange(values, lo, hi, name, out = new Uint8ClampedArray(values.length * 4), alpha = 255) {
  const words = packed(name, alpha);
  const px = new Uint32Array(out.buffer, out.byteOffset, values.length);
  const k = LUT_STEPS / (hi - lo);
  for (let i = 0; i < values.length; i++) {
    const t = (values[i] - lo) * k;
    // NaN fails both comparisons and lands in the transparent branch
    px[i] = t >= 0 ? (t < LUT_STEPS ? words[(t + 0.5) | 0] : words[LUT_STEPS]) : t < 0 ? words[0] : 0;
  }
  return out;
}
