import { test } from "node:test";
import assert from "node:assert/strict";
import { COLORMAPS, colorAt, colorize, colorizeRange, lut } from "../src/lib/colormap.js";
import { rescale } from "../src/lib/normalize.js";

// Reference values: matplotlib's colormaps at 0, 0.5 and 1 (its 256-entry tables, entries 0, 128, 255).
const REFERENCE = {
  viridis: [[68, 1, 84], [33, 145, 140], [253, 231, 37]],
  magma: [[0, 0, 4], [183, 55, 121], [252, 253, 191]],
  inferno: [[0, 0, 4], [188, 55, 84], [252, 255, 164]],
  gray: [[0, 0, 0], [128, 128, 128], [255, 255, 255]],
  diverging: [[5, 48, 97], [255, 255, 255], [103, 0, 31]],
};

test("every required colormap exists", () => {
  for (const name of ["gray", "viridis", "magma", "inferno", "diverging"]) assert.ok(COLORMAPS.includes(name), name);
});

test("endpoints and midpoints match the reference colours", () => {
  for (const [name, [lo, mid, hi]] of Object.entries(REFERENCE)) {
    assert.deepEqual(colorAt(name, 0), lo, `${name}(0)`);
    assert.deepEqual(colorAt(name, 0.5), mid, `${name}(0.5)`);
    assert.deepEqual(colorAt(name, 1), hi, `${name}(1)`);
  }
});

test("interpolation is linear between control points", () => {
  assert.deepEqual(colorAt("gray", 0.25), [64, 64, 64]); // 63.75 rounds up
  // viridis control points 0 -> #440154 and 1/9 -> #482878; halfway is their mean.
  assert.deepEqual(colorAt("viridis", 1 / 18), [70, 21, 102]);
  assert.deepEqual(colorAt("viridis", 1 / 9), [0x48, 0x28, 0x78]);
});

test("values outside [0, 1] are clipped", () => {
  for (const name of COLORMAPS) {
    assert.deepEqual(colorAt(name, -3), colorAt(name, 0));
    assert.deepEqual(colorAt(name, 7), colorAt(name, 1));
  }
});

test("sequential maps get lighter from 0 to 1; the diverging map is blue below and red above the middle", () => {
  const luma = ([r, g, b]) => 0.2126 * r + 0.7152 * g + 0.0722 * b;
  for (const name of ["gray", "viridis", "magma", "inferno"]) {
    for (let i = 1; i <= 20; i++) assert.ok(luma(colorAt(name, i / 20)) > luma(colorAt(name, (i - 1) / 20)), `${name} at ${i / 20}`);
  }
  const [r1, , b1] = colorAt("diverging", 0.2);
  const [r2, , b2] = colorAt("diverging", 0.8);
  assert.ok(b1 > r1 && r2 > b2);
});

test("lookup table and colorize agree with colorAt; NaN is transparent", () => {
  const table = lut("magma");
  assert.deepEqual(Array.from(table.slice(256 * 3)), colorAt("magma", 1));
  assert.deepEqual(Array.from(table.slice(64 * 3, 65 * 3)), colorAt("magma", 0.25));
  const out = colorize(new Float32Array([0, 1, NaN, 0.5]), "viridis", undefined, 200);
  assert.deepEqual(Array.from(out.slice(0, 4)), [68, 1, 84, 200]);
  assert.deepEqual(Array.from(out.slice(4, 8)), [253, 231, 37, 200]);
  assert.equal(out[11], 0);
  assert.deepEqual(Array.from(out.slice(12, 15)), [33, 145, 140]);
  // zero of a symmetric map is exactly white on the diverging map
  assert.deepEqual(Array.from(colorize(new Float32Array([0.5]), "diverging").slice(0, 3)), [255, 255, 255]);
});

test("an unknown colormap name is an error naming the known ones", () => {
  assert.throws(() => colorAt("jet", 0.5), /known: .*viridis/);
});

test("colorizeRange equals colorize after rescaling", () => {
  const values = Float32Array.from({ length: 2001 }, (_, i) => (i - 1000) / 137);
  values[7] = NaN;
  for (const name of COLORMAPS) {
    assert.deepEqual(colorizeRange(values, -3, 5.5, name), colorize(rescale(values, -3, 5.5), name));
  }
});
