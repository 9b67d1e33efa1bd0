/**
 * float32 <-> IEEE float16 bits, for models whose input or output is float16 (some fp16 exports
 * keep no float32 ends). Node 20 has no Float16Array, so ONNX Runtime takes the bits as Uint16Array.
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function toFloat16Bits(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i] as number;
    const x = u32[0] as number;
    const sign = (x >>> 16) & 0x8000;
    const exp = ((x >>> 23) & 0xff) - 127 + 15;
    const mant = x & 0x7fffff;
    if (exp >= 31) out[i] = sign | 0x7c00 | (((x >>> 23) & 0xff) === 0xff && mant ? 0x200 : 0);
    else if (exp <= 0) out[i] = exp < -10 ? sign : sign | ((mant | 0x800000) >>> (14 - exp));
    else out[i] = sign | ((exp << 10) + (mant >>> 13) + ((mant >>> 12) & 1)); // round half up; a carry moves into the exponent
  }
  return out;
}

export function fromFloat16Bits(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i] as number;
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    out[i] = exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return out;
}
