import { test } from "node:test";
import assert from "node:assert/strict";
import { decode, decodeTree, halfToFloat, slice0 } from "../src/lib/tensor.js";

const values = [1.5, -2, 3.25, 1e-3, -7e5, 0];

function floatsAt(offset) {
  const buf = new ArrayBuffer(offset + 4 * values.length + 3);
  const dv = new DataView(buf);
  values.forEach((v, i) => dv.setFloat32(offset + 4 * i, v, true));
  return new DataView(buf, offset, 4 * values.length);
}

test("float32 at an aligned offset is viewed in place, not copied", () => {
  for (const offset of [0, 8]) {
    const dv = floatsAt(offset);
    const t = decode({ dtype: "float32", shape: [2, 3], data: dv });
    assert.ok(t.data instanceof Float32Array);
    assert.equal(t.data.buffer, dv.buffer, "same memory");
    assert.equal(t.data.byteOffset, offset);
    assert.deepEqual(Array.from(t.data), values.map(Math.fround));
    assert.deepEqual(t.shape, [2, 3]);
  }
});

test("float32 at an unaligned offset is copied and still correct", () => {
  for (const offset of [1, 2, 3, 5]) {
    const dv = floatsAt(offset);
    const t = decode({ dtype: "float32", shape: [6], data: dv });
    assert.notEqual(t.data.buffer, dv.buffer);
    assert.deepEqual(Array.from(t.data), values.map(Math.fround));
  }
});

test("float16 bit patterns decode exactly", () => {
  const cases = [[0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x0001, 2 ** -24], [0x0400, 2 ** -14],
    [0x3555, 0.333251953125], [0x7c00, Infinity], [0xfc00, -Infinity], [0x0000, 0]];
  for (const [bits, want] of cases) assert.equal(halfToFloat(bits), want, `0x${bits.toString(16)}`);
  assert.ok(Object.is(halfToFloat(0x8000), -0));
  assert.ok(Number.isNaN(halfToFloat(0x7e00)));
});

test("float16 tensors widen to float32 at any offset", () => {
  for (const offset of [0, 1, 3]) {
    const buf = new ArrayBuffer(offset + 6);
    const dv = new DataView(buf);
    [0x3c00, 0xc000, 0x3800].forEach((b, i) => dv.setUint16(offset + 2 * i, b, true));
    const t = decode({ dtype: "float16", shape: [3], data: new DataView(buf, offset, 6) });
    assert.equal(t.dtype, "float32");
    assert.deepEqual(Array.from(t.data), [1, -2, 0.5]);
  }
});

test("uint8 is a view; typed arrays and ArrayBuffers are accepted as data", () => {
  const bytes = new Uint8Array([0, 7, 255, 128]);
  const t = decode({ dtype: "uint8", shape: [1, 2, 2], data: new DataView(bytes.buffer, 0, 4) });
  assert.deepEqual(Array.from(t.data), [0, 7, 255, 128]);
  assert.deepEqual(Array.from(decode({ dtype: "uint8", shape: [4], data: bytes }).data), [0, 7, 255, 128]);
  assert.deepEqual(Array.from(decode({ dtype: "float32", shape: [1], data: new Float32Array([2.5]).buffer }).data), [2.5]);
});

test("a byte count that does not match the shape, or an unknown dtype, is an error", () => {
  assert.throws(() => decode({ dtype: "float32", shape: [3], data: new DataView(new ArrayBuffer(8)) }), /needs 12 bytes/);
  assert.throws(() => decode({ dtype: "int64", shape: [1], data: new DataView(new ArrayBuffer(8)) }), /dtype/);
});

test("decodeTree finds tensors nested in objects and arrays and keeps other values", () => {
  const tree = {
    seq: 3, layer: "conv1", rf: null,
    stats: { mean: { dtype: "float32", shape: [2], data: new DataView(new Float32Array([1, 2]).buffer) } },
    list: [{ dtype: "uint8", shape: [1], data: new DataView(new Uint8Array([9]).buffer) }, "x"],
  };
  const out = decodeTree(tree);
  assert.equal(out.seq, 3);
  assert.equal(out.layer, "conv1");
  assert.equal(out.rf, null);
  assert.deepEqual(Array.from(out.stats.mean.data), [1, 2]);
  assert.deepEqual(Array.from(out.list[0].data), [9]);
  assert.equal(out.list[1], "x");
});

test("slice0 returns the i-th map without copying", () => {
  const t = decode({ dtype: "float32", shape: [3, 2], data: new Float32Array([0, 1, 2, 3, 4, 5]).buffer });
  const s = slice0(t, 1);
  assert.deepEqual(Array.from(s), [2, 3]);
  assert.equal(s.buffer, t.data.buffer);
});
