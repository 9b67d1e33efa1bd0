import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** ONNX element types used here (TensorProto.DataType). */
export const DT = { FLOAT: 1, UINT8: 2, INT32: 6, INT64: 7 } as const;
export type ElemType = (typeof DT)[keyof typeof DT];

/** A dimension: a fixed size, or a name for a dynamic axis. */
export type Dim = number | string;
export type AttrValue = number | readonly number[] | string | { readonly float: number } | { readonly floats: readonly number[] };

/** Opset every stegostream-built graph targets; ORT 1.17+ runs it on every provider. */
export const OPSET = 17;

/**
 * A small builder for ONNX graphs. The project builds its built-in backbone and the segmentation
 * graph in code rather than shipping binary model files, so weights stay reviewable; onnx-proto
 * supplies the protobuf encoding, this file only keeps the bookkeeping (unique names, types).
 */
export class OnnxGraph {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly inits: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private counter = 0;

  constructor(private readonly name: string) {}

  input(name: string, elemType: ElemType, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(name: string, elemType: ElemType, dims: readonly Dim[]): string {
    this.outputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** A float32 constant (initializer). */
  constF(values: Float32Array | readonly number[], dims: readonly number[], name = this.fresh('c')): string {
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    const expected = dims.reduce((a, b) => a * b, 1);
    if (data.length !== expected) throw new Error(`constant ${name}: ${data.length} values for dims [${dims.join(',')}]`);
    this.inits.push({ name, dataType: DT.FLOAT, dims: [...dims], rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    return name;
  }

  /** An int64 constant (shapes, axes). */
  constI64(values: readonly number[], dims: readonly number[] = [values.length], name = this.fresh('i')): string {
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.inits.push({ name, dataType: DT.INT64, dims: [...dims], rawData: new Uint8Array(data.buffer) });
    return name;
  }

  /** Adds a node; returns its output names (fresh ones unless given). */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, outputs: number | readonly string[] = 1): string[] {
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase())) : [...outputs];
    this.nodes.push({
      opType,
      name: this.fresh(`n_${opType}`),
      input: [...inputs],
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** Single-output convenience. */
  op1(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, output?: string): string {
    const [out] = this.op(opType, inputs, attrs, output === undefined ? 1 : [output]);
    return out as string;
  }

  toBytes(metadata: Record<string, string | number>): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'stegostream',
      opsetImport: [{ domain: '', version: OPSET }],
      graph: { name: this.name, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
      metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value: String(value) })),
    });
    return onnx.ModelProto.encode(model).finish();
  }

  private fresh(prefix: string): string {
    this.counter += 1;
    return `${prefix}_${this.counter}`;
  }
}

function valueInfo(name: string, elemType: ElemType, dims: readonly Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  if (isIntList(v)) return { name, type: T.INTS, ints: [...v] };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.FLOATS, floats: [...v.floats] };
}

function isIntList(v: AttrValue): v is readonly number[] {
  return Array.isArray(v);
}
