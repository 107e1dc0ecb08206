// `archc quantize`: a checkpoint read tensor by tensor, the products' and embeddings' weights
// quantised (runtime/quantplan.ts chooses them) and written in compressed-tensors' pack-quantized
// layout (runtime/quantckpt.ts) with config.json's quantization_config; the rest as stored.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../runtime/errors.ts';
import { readHfConfig } from '../runtime/hfconfig.ts';
import { checkConfig, checkFinite } from '../runtime/load.ts';
import type { Program } from '../runtime/program.ts';
import { dequantizeRows, quantize, quantTensorBytes } from '../runtime/quant.ts';
import { packedBits, packedTensors, quantizationConfig } from '../runtime/quantckpt.ts';
import { type QuantizeOption, planQuant, quantCandidates } from '../runtime/quantplan.ts';
import { checkShapes } from '../runtime/checkpoint-shapes.ts';
import { type NamedTensor, openCheckpoint, writeSafetensors } from '../runtime/safetensors.ts';
import { DTYPE_BYTES, numel } from '../runtime/tensor.ts';
import type { LoadProgress } from '../runtime/load.ts';

export interface QuantizedCheckpoint {
  /** Writes config.json and model.safetensors into `dir`. */
  write(dir: string): void;
  readonly summary: string;
}

/** `dequantize`: write each quantised weight's values (code · scale) as f32 instead of its codes, a
 *  plain checkpoint holding the quantised model's numbers that every backend runs. */
export async function writeQuantized(program: Program, dir: string, opt: QuantizeOption, o: { checkWeights: boolean; allowExtra: boolean; dequantize: boolean; onProgress?: (p: LoadProgress, tensor: string) => void }): Promise<QuantizedCheckpoint> {
  const configPath = join(dir, 'config.json');
  const config = readHfConfig(configPath);
  if (packedBits(config, configPath)) throw new RuntimeError('RT175', [dir, 'compressed-tensors pack-quantized']);
  // the tensors the checkpoint holds: a weight that reads another's tensor (a tied head) is not written
  const { reads } = checkConfig(program, config, configPath);
  const own = program.weights.filter((w) => !reads.has(w.name));
  const ckpt = openCheckpoint(dir);
  try {
    const problems = checkShapes(ckpt, own.map((w) => ({ name: w.name, shape: w.shape })), { allowExtra: o.allowExtra });
    if (problems.length) throw problems.length === 1 ? problems[0]! : new RuntimeError('RT164', [ckpt.path, problems.length, problems.map((p) => `  ${p.text}`).join('\n')], { file: ckpt.path, problems });
    const plan = planQuant(program, opt, (n) => ckpt.tensors.get(reads.get(n) ?? n)?.shape ?? []);
    const entries: NamedTensor[] = [];
    let before = 0, after = 0;
    const bytesOf = (name: string) => { const t = ckpt.tensors.get(name)!; return t.end - t.begin; };
    const totalBytes = own.reduce((s, w) => s + bytesOf(w.name), 0), t0 = performance.now();
    let bytesRead = 0;
    /** Bytes of the tensors done so far (before the next one, and once at the end). */
    const progress = (tensor: string) => {
      const seconds = (performance.now() - t0) / 1000;
      if (bytesRead) o.onProgress?.({ bytesRead, totalBytes, seconds, bytesPerSecond: bytesRead / seconds }, tensor);
    };
    for (const w of own) {
      progress(w.name);
      bytesRead += bytesOf(w.name);
      const t = ckpt.read(w.name);
      if (o.checkWeights) checkFinite(t, ckpt.tensors.get(w.name)?.file ?? ckpt.path, w.name);
      before += numel(t.shape) * DTYPE_BYTES[t.dtype];
      const f = plan.formats.get(w.name);
      if (!f) {
        entries.push({ name: w.name, tensor: t });
        after += numel(t.shape) * DTYPE_BYTES[t.dtype];
        continue;
      }
      const q = quantize(t, f);
      if ('reason' in q) throw new RuntimeError('RT176', [w.name, f, q.reason], { tensor: w.name });
      if (o.dequantize) {
        entries.push({ name: w.name, tensor: { dtype: 'f32', shape: t.shape, data: dequantizeRows(q.q, 0, q.q.shape[0]) } });
        after += numel(t.shape) * 4;
        continue;
      }
      entries.push(...packedTensors(w.name, q.q));
      after += quantTensorBytes(q.q);
    }
    progress('');
    // compressed-tensors' ignore list: every candidate left as stored (K not a multiple of 32, --keep none)
    const ignore = [...quantCandidates(program).keys()].filter((n) => !plan.formats.has(n) && !reads.has(n));
    // config.json as written, the quantization_config added as its last key (the text is kept:
    // JSON.stringify would turn a config's Infinity into null)
    const text = readFileSync(configPath, 'utf8');
    const close = text.lastIndexOf('}');
    const qc = JSON.stringify(quantizationConfig(plan.formats, ignore), null, 2).replace(/\n/g, '\n  ');
    const out = o.dequantize ? text : `${text.slice(0, close).trimEnd()}${Object.keys(config).length ? ',' : ''}\n  "quantization_config": ${qc}\n}\n`;
    const counts = new Map<string, number>();
    for (const f of plan.formats.values()) counts.set(f, (counts.get(f) ?? 0) + 1);
    const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
    return {
      write: (d) => {
        writeSafetensors(join(d, 'model.safetensors'), entries, { format: 'pt' });
        writeConfig(d, out);
      },
      summary: `${[...counts].map(([f, n]) => `${n} weights ${f}`).join(', ')}${o.dequantize ? ' (written dequantised, f32)' : ''}; weights ${mb(before)} → ${mb(after)}`
        + (plan.kept.length ? `; kept as stored: ${plan.kept.map((k) => `${k.name} (${k.reason})`).join(', ')}` : ''),
    };
  } finally {
    ckpt.close();
  }
}

function writeConfig(d: string, text: string): void {
  writeFileSync(join(d, 'config.json'), text);
}
