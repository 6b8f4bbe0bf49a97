import { test } from "node:test";
import assert from "node:assert/strict";
import { footprint, gridLayout } from "../src/lib/draw.js";
import { throttle } from "../src/lib/controls.js";

test("footprint places a map by its receptive field, or stretches it without one", () => {
  // ResNet layer4 on a 64x64 input: 2x2 units, stride 32, unit (0,0) centred on pixel 0.
  assert.deepEqual(footprint(2, 2, 64, 64, { stride: [32, 32], offset: [0, 0] }), [-15.5, -15.5, 64, 64]);
  // stride 1, centred on pixel centres: exactly the image
  assert.deepEqual(footprint(8, 8, 8, 8, { stride: [1, 1], offset: [0, 0] }), [0, 0, 8, 8]);
  // a valid 3x3 conv: unit (0,0) centred on pixel 1, six units cover pixels 0.5 .. 6.5 ... i.e. [1, 7)
  assert.deepEqual(footprint(6, 6, 8, 8, { stride: [1, 1], offset: [1, 1] }), [1, 1, 6, 6]);
  assert.deepEqual(footprint(4, 4, 64, 48, null), [0, 0, 48, 64]);
});

test("grid layout fits every cell and stays within the width", () => {
  for (const [n, h, w] of [[1, 7, 7], [64, 32, 32], [512, 2, 2], [10, 5, 20]]) {
    const L = gridLayout(n, h, w, { width: 520 });
    assert.ok(L.cols * L.rows >= n);
    assert.ok(L.rows * L.cols - n < L.cols, "no empty row");
    assert.ok(L.scale >= 1);
    if (L.scale > 1) assert.ok(L.width <= 520, `${n}x${h}x${w}: ${L.width}`);
  }
});

test("throttle sends the first value at once, at most one per interval, and always the last", (t) => {
  // A manual clock and mocked timers: the assertions must not depend on how busy the machine is.
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let clock = 1000;
  const advance = (ms) => { clock += ms; t.mock.timers.tick(ms); };
  const sent = [];
  const th = throttle((v) => sent.push(v), 40, () => clock);
  for (let i = 0; i < 10; i++) { th.push(i); advance(1); }
  assert.deepEqual(sent, [0]);        // 1..9 arrived within 40 ms of the first send
  advance(30);                        // the timer fires 40 ms after the first send, with the newest value
  assert.deepEqual(sent, [0, 9]);
  advance(100);
  th.push(10);                        // the interval has passed: sent at once
  th.push(11);
  th.push(12);
  th.flush();                         // the drag ended: the last value goes out now
  assert.deepEqual(sent, [0, 9, 10, 12]);
  advance(100);
  assert.deepEqual(sent, [0, 9, 10, 12], "nothing left over after a flush");
});
