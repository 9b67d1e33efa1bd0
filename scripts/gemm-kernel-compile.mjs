/** Compiles src/learning/gemm-kernel.wat with wabt (a dev dependency); used by the build script and the test. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

/** @returns {Promise<Uint8Array>} the module's bytes */
export async function compileGemmKernel() {
  const src = fileURLToPath(new URL('../src/learning/gemm-kernel.wat', import.meta.url));
  const wabt = await wabtInit();
  const mod = wabt.parseWat('gemm-kernel.wat', readFileSync(src, 'utf8'), { simd: true });
  try {
    mod.validate();
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}
