// Tensors cross from Python as {dtype, shape, data}; ipywidgets hands `data` over as a DataView into the
// message buffer. We view that memory in place when its offset allows it and copy only when it does not.
const ITEM_SIZE = { float32: 4, float16: 2, uint8: 1 };

export function isTensor(v) {
  return v != null && typeof v === "object" && typeof v.dtype === "string" && Array.isArray(v.shape) &&
    v.data != null && (ArrayBuffer.isView(v.data) || v.data instanceof ArrayBuffer);
}

function asDataView(data) {
  if (data instanceof DataView) return data;
  if (data instanceof ArrayBuffer) return new DataView(data);
  return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

// IEEE 754 binary16 -> number.
export function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function float16ToFloat32(dv) {
  const n = dv.byteLength / 2;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
  return out;
}

/** {dtype, shape, data} -> {dtype, shape, size, data: Float32Array | Uint8Array}; float16 widens to float32. */
export function decode(t) {
  const size = ITEM_SIZE[t.dtype];
  if (size === undefined) throw new Error(`unsupported tensor dtype ${t.dtype}`);
  const dv = asDataView(t.data);
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (dv.byteLength !== count * size) {
    throw new Error(`tensor of shape [${t.shape}] needs ${count * size} bytes, got ${dv.byteLength}`);
  }
  let data;
  if (t.dtype === "uint8") {
    data = new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength);
  } else if (t.dtype === "float16") {
    data = float16ToFloat32(dv);
  } else if (dv.byteOffset % 4 === 0) {
    data = new Float32Array(dv.buffer, dv.byteOffset, count);
  } else {
    // A Float32Array cannot start at an unaligned offset: copy the bytes once.
    data = new Float32Array(dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength));
  }
  return { dtype: t.dtype === "float16" ? "float32" : t.dtype, shape: t.shape.slice(), size: count, data };
}

/** Decode every tensor found anywhere in a nested result (objects and arrays); other values are kept. */
export function decodeTree(v) {
  if (isTensor(v)) return decode(v);
  if (Array.isArray(v)) return v.map(decodeTree);
  if (v != null && typeof v === "object" && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer)) {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = decodeTree(x);
    return out;
  }
  return v;
}

/** The i-th slice along the first axis as a typed-array view (no copy). */
export function slice0(t, i) {
  const inner = t.size / t.shape[0];
  return t.data.subarray(i * inner, (i + 1) * inner);
}
