import onnxProto from 'onnx-proto';

/** Reads `metadata_props` from ONNX model bytes (ONNX Runtime's Node API does not expose them). */
export function readModelMetadata(bytes: Uint8Array): Record<string, string> {
  const model = onnxProto.onnx.ModelProto.decode(bytes);
  const out: Record<string, string> = {};
  for (const p of model.metadataProps ?? []) if (p.key) out[p.key] = p.value ?? '';
  return out;
}
