// Value ranges for display: the front end decides how numbers map to colours, so these choices never
// need a round trip to Python. All functions skip NaN.
export const NORMALIZATIONS = ["minmax", "symmetric", "percentile"];
const SAMPLE_LIMIT = 1 << 16;

export function minMax(data) {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 0];
}

/** q-quantile (0..1) with linear interpolation, as numpy.quantile's default. */
export function quantile(sorted, q) {
  if (sorted.length === 0) return 0;
  const pos = q * (sorted.length - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  return i + 1 < sorted.length ? sorted[i] + f * (sorted[i + 1] - sorted[i]) : sorted[i];
}

function sortedSample(data) {
  // Big maps: percentiles from an evenly strided sample keep a slider drag interactive.
  const step = Math.max(1, Math.ceil(data.length / SAMPLE_LIMIT));
  const out = [];
  for (let i = 0; i < data.length; i += step) if (!Number.isNaN(data[i])) out.push(data[i]);
  return Float64Array.from(out).sort();
}

/**
 * [lo, hi] for a normalization mode:
 *   "minmax"     the data's minimum and maximum;
 *   "symmetric"  [-m, m] with m the largest absolute value (zero sits in the middle of a diverging map);
 *   "percentile" [q(100 - p), q(p)] percent, so a few extreme values do not wash out the rest.
 * A constant map gets a range that puts it at the bottom (minmax/percentile) or the centre (symmetric).
 */
export function valueRange(data, mode = "minmax", percentile = 99) {
  let lo, hi;
  if (mode === "minmax") {
    [lo, hi] = minMax(data);
  } else if (mode === "symmetric") {
    const [a, b] = minMax(data);
    const m = Math.max(Math.abs(a), Math.abs(b));
    return m > 0 ? [-m, m] : [-1, 1];
  } else if (mode === "percentile") {
    const s = sortedSample(data);
    const p = Math.min(100, Math.max(50, percentile)) / 100;
    lo = quantile(s, 1 - p);
    hi = quantile(s, p);
  } else {
    throw new Error(`unknown normalization ${mode}; known: ${NORMALIZATIONS.join(", ")}`);
  }
  return hi > lo ? [lo, hi] : [lo, lo + 1];
}

/** Map values to [0, 1] through [lo, hi], clipping outside; NaN stays NaN. */
export function rescale(data, lo, hi, out = new Float32Array(data.length)) {
  const inv = 1 / (hi - lo);
  for (let i = 0; i < data.length; i++) {
    const v = (data[i] - lo) * inv;
    out[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  return out;
}

/** Keep the positive part, the negative part (as magnitudes) or the absolute value of signed maps. */
export function applySign(data, sign = "all", out = new Float32Array(data.length)) {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    out[i] = sign === "positive" ? Math.max(v, 0) : sign === "negative" ? Math.max(-v, 0)
      : sign === "absolute" ? Math.abs(v) : v;
  }
  return out;
}

/** valueRange + rescale in one call. */
export function normalize(data, mode = "minmax", percentile = 99) {
  const [lo, hi] = valueRange(data, mode, percentile);
  return { lo, hi, values: rescale(data, lo, hi) };
}
