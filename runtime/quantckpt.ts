// Quantised checkpoints in compressed-tensors' `pack-quantized` layout: for a weight `<m>.weight`
// [N, K], `<m>.weight_packed` int32 [N, K·bits/32] (codes + 2^(bits−1), packed from the low bits up),
// `<m>.weight_scale` f16 [N, K/32] and `<m>.weight_shape` [2] = [N, K]; config.json's
// `quantization_config` says so (quant_method compressed-tensors, format pack-quantized, config
// groups of symmetric int weights in groups of 32). Reading presents each triple as the weight the
// program names, quantised without re-quantising; any other quantization_config is refused (RT172).

import { RuntimeError } from './errors.ts';
import type { TensorSource } from './fetch.ts';
import type { HfConfig } from './hfconfig.ts';
import { type QuantDType, type QuantTensor, QUANT_BITS, QUANT_GROUP, fromPackedInt32, toPackedInt32 } from './quant.ts';
import type { TensorInfo } from './safetensors.ts';
import { type Tensor, f16ToF32, f32ToF16, toF32 } from './tensor.ts';

const SUFFIXES = ['_packed', '_scale', '_shape', '_zero_point'] as const;

/** The bit widths a pack-quantized config allows (checked); null when config.json has no
 *  quantization_config. */
export function packedBits(config: HfConfig, file: string): Set<number> | null {
  const qc = config.quantization_config;
  if (qc === undefined || qc === null) return null;
  const bad = (key: string, value: unknown, why: string): never => {
    throw new RuntimeError('RT172', [file, key, JSON.stringify(value), why], { file, key: `quantization_config${key}` });
  };
  if (typeof qc !== 'object' || Array.isArray(qc)) bad('', qc, 'expected an object');
  const q = qc as Record<string, unknown>;
  if (q.quant_method !== 'compressed-tensors') bad('.quant_method', q.quant_method, 'archc reads compressed-tensors (pack-quantized, symmetric int4/int8, group 32)');
  if (q.format !== 'pack-quantized') bad('.format', q.format, 'archc reads the pack-quantized format');
  const groups = q.config_groups;
  if (typeof groups !== 'object' || groups === null || Array.isArray(groups) || !Object.keys(groups).length) bad('.config_groups', groups, 'expected an object of groups');
  const bits = new Set<number>();
  for (const [g, v] of Object.entries(groups as Record<string, unknown>)) {
    const at = `.config_groups.${g}`;
    const grp = (v ?? {}) as Record<string, unknown>;
    if (grp.input_activations != null) bad(`${at}.input_activations`, grp.input_activations, 'archc reads weight-only quantisation');
    const w = grp.weights as Record<string, unknown> | null | undefined;
    if (typeof w !== 'object' || w === null) bad(`${at}.weights`, w, 'expected the weights\' scheme');
    const want: [string, unknown, string][] = [['type', 'int', 'integer weights'], ['symmetric', true, 'symmetric (no zero point)'], ['strategy', 'group', 'one scale per group'], ['group_size', QUANT_GROUP, `groups of ${QUANT_GROUP}`]];
    for (const [key, value, why] of want) if (w![key] !== value) bad(`${at}.weights.${key}`, w![key], `archc reads ${why}`);
    if (w!.num_bits !== 4 && w!.num_bits !== 8) bad(`${at}.weights.num_bits`, w!.num_bits, 'archc reads 4 or 8 bits');
    bits.add(w!.num_bits as number);
  }
  return bits;
}

/** A checkpoint whose quantised triples read as the weights they stand for. */
export interface PackedSource {
  /** The tensors the program sees: each triple as `<m>.weight` [N, K]. */
  readonly source: TensorSource;
  /** Weight → its format. */
  readonly formats: ReadonlyMap<string, QuantDType>;
  readQuant(name: string): Promise<QuantTensor>;
}

/** Wraps `ckpt` (a pack-quantized checkpoint with bit widths `bits`). */
export async function packedSource(ckpt: TensorSource, bits: ReadonlySet<number>): Promise<PackedSource> {
  const file = ckpt.path;
  const err = (tensor: string, why: string): RuntimeError => new RuntimeError('RT173', [file, tensor, why], { file, tensor });
  const tensors = new Map<string, TensorInfo>();
  const formats = new Map<string, QuantDType>();
  const shapes = new Map<string, [number, number]>();
  for (const [name, info] of ckpt.tensors) {
    if (!SUFFIXES.some((s) => name.endsWith(`.weight${s}`))) tensors.set(name, info);
  }
  for (const [name, info] of ckpt.tensors) {
    if (!name.endsWith('.weight_packed')) continue;
    const base = name.slice(0, -'_packed'.length);
    for (const s of ['_scale', '_shape']) if (!ckpt.tensors.has(base + s)) throw err(base + s, `missing (${name} is there)`);
    const st = await ckpt.read(`${base}_shape`);
    if (st.dtype !== 'i32' || st.shape.length !== 1 || st.data.length !== 2) throw err(`${base}_shape`, `expected 2 integers, found ${st.dtype} [${st.shape}]`);
    const [N, K] = [st.data[0]!, st.data[1]!];
    if (info.fileDtype !== 'I32' || info.shape.length !== 2 || info.shape[0] !== N || K <= 0 || K % QUANT_GROUP) throw err(name, `expected I32 [${N}, K·bits/32] with K = ${K} a multiple of ${QUANT_GROUP}, found ${info.fileDtype} [${info.shape}]`);
    const b = (info.shape[1]! * 32) / K;
    if (!bits.has(b)) throw err(name, `holds ${b}-bit codes; quantization_config names ${[...bits].join(', ')} bits`);
    const sc = ckpt.tensors.get(`${base}_scale`)!;
    if (sc.shape.length !== 2 || sc.shape[0] !== N || sc.shape[1] !== K / QUANT_GROUP) throw err(sc.name, `expected shape [${N}, ${K / QUANT_GROUP}], found [${sc.shape}]`);
    formats.set(base, b === 8 ? 'q8' : 'q4');
    shapes.set(base, [N, K]);
    tensors.set(base, { ...info, name: base, dtype: 'f16', shape: [N, K] });
  }
  const source: TensorSource = {
    path: file,
    tensors,
    read: (name, alloc) => (formats.has(name) ? Promise.reject(err(name, 'is quantised; read it with readQuant')) : ckpt.read(name, alloc)),
    close: () => ckpt.close(),
  };
  const readQuant = async (name: string): Promise<QuantTensor> => {
    const dtype = formats.get(name) ?? (() => { throw err(name, 'is not quantised'); })();
    const shape = shapes.get(name)!;
    const packed = await ckpt.read(`${name}_packed`);
    const scales = f16Scales(await ckpt.read(`${name}_scale`), `${name}_scale`, err);
    const bad = scales.findIndex((h) => (h & 0x7c00) === 0x7c00);
    if (bad >= 0) throw err(`${name}_scale`, `scale ${f16ToF32(scales[bad]!)} at index ${bad} is not finite`);
    if (ckpt.tensors.has(`${name}_zero_point`)) {
      const z = await ckpt.read(`${name}_zero_point`);
      if (Array.prototype.some.call(z.data, (v: number) => v !== 0)) throw err(`${name}_zero_point`, 'has non-zero entries; archc reads symmetric codes only');
    }
    return fromPackedInt32(dtype, shape, packed.data as Int32Array, scales);
  };
  return { source, formats, readQuant };
}

/** Scales as f16 bits: F16 as stored; BF16 or F32 only where every value is an f16 exactly. */
function f16Scales(t: Tensor, name: string, err: (t: string, why: string) => RuntimeError): Uint16Array {
  if (t.dtype === 'f16') return t.data as Uint16Array;
  if (t.dtype === 'i32') throw err(name, 'is an integer tensor, expected f16 scales');
  const f = toF32(t);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) {
    out[i] = f32ToF16(f[i]!);
    if (f16ToF32(out[i]!) !== f[i]) throw err(name, `scale ${f[i]} at index ${i} is not an f16 value`);
  }
  return out;
}

/** The tensors standing for quantised weight `name` (`<m>.weight`). */
export function packedTensors(name: string, q: QuantTensor): { name: string; tensor: Tensor }[] {
  return [
    { name: `${name}_packed`, tensor: { dtype: 'i32', shape: [q.shape[0], (q.shape[1] * QUANT_BITS[q.dtype]) / 32], data: toPackedInt32(q) } },
    { name: `${name}_scale`, tensor: { dtype: 'f16', shape: [q.shape[0], q.shape[1] / QUANT_GROUP], data: q.scales } },
    { name: `${name}_shape`, tensor: { dtype: 'i32', shape: [2], data: Int32Array.from(q.shape) } },
  ];
}

/** config.json's quantization_config for weights quantised as `formats` (module names: the weight
 *  names without `.weight`); `ignore` lists modules of candidate weights kept as stored. */
export function quantizationConfig(formats: ReadonlyMap<string, QuantDType>, ignore: readonly string[]): Record<string, unknown> {
  const module = (n: string) => n.replace(/\.weight$/, '');
  const groups: Record<string, unknown> = {};
  for (const dtype of ['q4', 'q8'] as const) {
    const targets = [...formats].filter(([, d]) => d === dtype).map(([n]) => module(n));
    if (!targets.length) continue;
    groups[`group_${Object.keys(groups).length}`] = {
      targets,
      weights: { num_bits: QUANT_BITS[dtype], type: 'int', symmetric: true, strategy: 'group', group_size: QUANT_GROUP, dynamic: false, actorder: null, observer: 'minmax', observer_kwargs: {} },
      input_activations: null,
      output_activations: null,
    };
  }
  return {
    quant_method: 'compressed-tensors',
    format: 'pack-quantized',
    quantization_status: 'compressed',
    config_groups: groups,
    ignore: ignore.map(module),
    kv_cache_scheme: null,
  };
}
