import { test } from "node:test";
import assert from "node:assert/strict";
import { applySign, minMax, normalize, quantile, rescale, valueRange } from "../src/lib/normalize.js";

const close = (a, b, eps = 1e-6) => assert.ok(Math.abs(a - b) <= eps, `${a} != ${b}`);

test("minmax ignores NaN", () => {
  assert.deepEqual(minMax(new Float32Array([3, NaN, -1, 2])), [-1, 3]);
  assert.deepEqual(valueRange(new Float32Array([3, NaN, -1, 2]), "minmax"), [-1, 3]);
});

test("symmetric range is centred on zero and reaches the largest magnitude", () => {
  assert.deepEqual(valueRange(new Float32Array([-0.5, 2, 1]), "symmetric"), [-2, 2]);
  assert.deepEqual(valueRange(new Float32Array([-4, 1]), "symmetric"), [-4, 4]);
  const { values } = normalize(new Float32Array([-4, 0, 2]), "symmetric");
  assert.deepEqual(Array.from(values), [0, 0.5, 0.75]);
});

test("percentile clip matches numpy.quantile (linear interpolation)", () => {
  const d = Float32Array.from({ length: 101 }, (_, i) => i); // 0..100
  const [lo1, hi1] = valueRange(d, "percentile", 99);
  close(lo1, 1); close(hi1, 99);
  const [lo, hi] = valueRange(d, "percentile", 90);
  close(lo, 10); close(hi, 90);
  // numpy.quantile([0, 1, 2, 3, 4], 0.1) == 0.4 and ([0, 1, 10], 0.75) == 5.5
  close(quantile(Float64Array.from([0, 1, 2, 3, 4]), 0.1), 0.4);
  close(quantile(Float64Array.from([0, 1, 10]), 0.75), 5.5);
  // one huge outlier does not set the scale
  const spiky = Float32Array.from({ length: 1000 }, (_, i) => (i === 500 ? 1e6 : i % 10));
  assert.ok(valueRange(spiky, "percentile", 99)[1] <= 9);
});

test("percentiles of a big map come from a sample and stay close", () => {
  const n = 1_000_000;
  const d = Float32Array.from({ length: n }, (_, i) => i / (n - 1));
  const [lo, hi] = valueRange(d, "percentile", 99);
  close(lo, 0.01, 1e-3);
  close(hi, 0.99, 1e-3);
});

test("constant maps get a usable range: bottom for minmax, middle for symmetric", () => {
  const z = new Float32Array(5);
  assert.deepEqual(Array.from(normalize(z, "minmax").values), [0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(normalize(z, "symmetric").values), [0.5, 0.5, 0.5, 0.5, 0.5]);
  assert.deepEqual(valueRange(Float32Array.of(3, 3), "percentile"), [3, 4]);
});

test("rescale clips to [0, 1] and keeps NaN", () => {
  const out = rescale(new Float32Array([-1, 0, 5, 10, 20, NaN]), 0, 10);
  assert.deepEqual(Array.from(out.slice(0, 5)), [0, 0, 0.5, 1, 1]);
  assert.ok(Number.isNaN(out[5]));
});

test("sign selection keeps the positive part, the negative magnitudes or absolute values", () => {
  const d = new Float32Array([-2, 0, 3]);
  assert.deepEqual(Array.from(applySign(d, "positive")), [0, 0, 3]);
  assert.deepEqual(Array.from(applySign(d, "negative")), [2, 0, 0]);
  assert.deepEqual(Array.from(applySign(d, "absolute")), [2, 0, 3]);
  assert.deepEqual(Array.from(applySign(d, "all")), [-2, 0, 3]);
});

test("an unknown mode is an error", () => {
  assert.throws(() => valueRange(new Float32Array([1]), "zscore"), /unknown normalization/);
});
