// Quantised weights on the command line: --quantize / --keep on every command that reads a
// checkpoint, `archc quantize` (a compressed-tensors pack-quantized checkpoint) and `archc eval`
// (cross-entropy over a text in windows, and the KL divergence a quantisation costs).

import { copyFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { RuntimeError } from '../runtime/errors.ts';
import { RUNTIME_LIMITS } from '../runtime/limits.ts';
import { readRegular } from '../runtime/paths.ts';
import type { Model } from '../runtime/model.ts';
import type { QuantizeOption } from '../runtime/quantplan.ts';
import { withCommon } from './common.ts';
import { checkReplaceable, writeDirAtomic } from './fsutil.ts';
import { type LoadFlags, compileFor, loadModel, numberFlag, usage } from './run.ts';
import { BACKEND_NAMES } from '../runtime/targets.ts';
import { loadBar } from './progress.ts';

export interface QuantFlags {
  quantize?: 'q8' | 'q4';
  keep: string[];
  activations?: 'f32' | 'q8';
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** --quantize q8|q4 and --keep NAME=FMT (repeatable). */
export function withQuantize(cmd: Command): Command {
  return cmd
    .addOption(new Option('--quantize <format>', 'quantise the products\' and embeddings\' weights as they load').choices(['q8', 'q4']))
    .option('--keep <tensor=format>', 'with --quantize: one tensor\'s format, q8, q4 or none (repeatable), e.g. --keep lm_head.weight=q8', collect, [])
    .addOption(new Option('--activations <format>', 'how products over q8/q4 weights read their input: f32 (exact, the default) or q8 (rounded to 8 bits per group of 32: integer-dot kernels, faster)').choices(['f32', 'q8']));
}

/** The load option the flags ask for (undefined: none). */
export function quantizeOption(o: QuantFlags): QuantizeOption | undefined {
  const keep = o.keep ?? [];
  if (!o.quantize) {
    if (keep.length) usage('--keep', 'it needs --quantize q8|q4 (it overrides the format of one tensor)');
    return undefined;
  }
  if (!keep.length) return o.quantize;
  const overrides: Record<string, 'q8' | 'q4' | 'none'> = {};
  for (const k of keep) {
    const m = /^(.+)=(q8|q4|none)$/.exec(k);
    if (!m) usage('--keep', `${JSON.stringify(k)}: expected TENSOR=q8, TENSOR=q4 or TENSOR=none`);
    overrides[m[1]!] = m[2] as 'q8' | 'q4' | 'none';
  }
  return { default: o.quantize, overrides };
}

/** One line on stderr: what was quantised, and the candidates kept as stored. */
export function reportQuantization(m: Model): void {
  const q = m.quantization;
  if (!q) return;
  const counts = new Map<string, number>();
  for (const f of q.formats.values()) counts.set(f, (counts.get(f) ?? 0) + 1);
  const parts = [...counts].map(([f, n]) => `${n} ${f}`).join(', ');
  process.stderr.write(`${q.prequantized ? 'quantised checkpoint' : 'quantised on load'}: ${parts} weights${q.activations === 'q8' ? ', 8-bit activations' : ''}`
    + (q.kept.length ? `; kept as stored: ${q.kept.map((k) => `${k.name} (${k.reason})`).join(', ')}` : '') + '\n');
}

const loadOpts = (cmd: Command): Command => cmd
  .requiredOption('--weights <dir>', 'checkpoint directory')
  .option('--allow-extra', 'accept checkpoint tensors the model does not use')
  .option('--no-check-weights', 'load weights holding NaN or infinities');

export function registerQuantCommands(p: Command): void {
  loadOpts(withCommon(p.command('quantize <file>').description('write a quantised checkpoint (compressed-tensors pack-quantized: int32 codes, f16 scales)')))
    .addOption(new Option('--to <format>', 'the format').choices(['q8', 'q4']).makeOptionMandatory())
    .option('--keep <tensor=format>', 'one tensor\'s format, q8, q4 or none (repeatable)', collect, [])
    .requiredOption('-o, --out <dir>', 'the checkpoint directory to write')
    .option('--dequantize', 'write the quantised values (code · scale) as f32 tensors instead: the quantised model\'s numbers for any backend')
    .option('--force', 'replace the output directory even if it holds files archc did not write')
    .action(async (file: string, o: LoadFlags & { to: 'q8' | 'q4'; out: string; force?: boolean; dequantize?: boolean }) => {
      const out = resolve(o.out);
      checkReplaceable(out, 'checkpoint', o.force ?? false);
      const flags = { ...o, quantize: o.to };
      const option = quantizeOption(flags)!;
      const { program } = await compileFor(file, o, o.weights);
      const { writeQuantized } = await import('./quantize.ts');
      const bar = await loadBar('quantising weights');
      let r: Awaited<ReturnType<typeof writeQuantized>>;
      try {
        r = await writeQuantized(program, o.weights, option, { checkWeights: o.checkWeights ?? true, allowExtra: o.allowExtra ?? false, dequantize: o.dequantize ?? false,
          onProgress: (p, tensor) => bar?.update(p, tensor) });
      } finally {
        bar?.stop();
      }
      await writeDirAtomic(out, 'checkpoint', (tmp) => {
        r.write(tmp);
        for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
          if (existsSync(join(o.weights, f))) copyFileSync(join(o.weights, f), join(tmp, f));
        }
      }, { force: o.force ?? false });
      process.stdout.write(`wrote ${o.out}: ${r.summary}\n`);
    });

  withQuantize(loadOpts(withCommon(p.command('eval <file>').description('cross-entropy (bits per token and per byte) over a text in windows; with --quantize, the KL divergence from the unquantised model'))))
    .requiredOption('--text <file>', 'the text (UTF-8)')
    .option('--window <n>', 'tokens per window: <bos> + n − 1 tokens of the text, predicting all n', '512')
    .option('--max-windows <n>', 'evaluate only this many windows, evenly spread over the text')
    .option('--reference <dir>', 'the checkpoint to measure the KL divergence from (default with --quantize: --weights, unquantised)')
    .option('--json', 'print JSON')
    .addOption(new Option('--backend <backend>', 'where to run').choices(BACKEND_NAMES).default('wasm'))
    .option('--cuda-arch <archs>', 'backend cuda: architectures to compile the kernels for', 'sm_80,sm_90')
    .action(async (file: string, o: LoadFlags & { text: string; window: string; maxWindows?: string; reference?: string; json?: boolean }) => {
      const window = numberFlag(o.window, '--window', { int: true, min: 2, what: 'an integer ≥ 2' })!;
      const maxWindows = numberFlag(o.maxWindows, '--max-windows', { int: true, min: 1, what: 'a positive integer' });
      const text = readText(o.text);
      quantizeOption(o); // flags checked before anything loads
      const model = await loadModel(file, o);
      const ref = o.quantize || o.reference ? await loadModel(file, { ...o, weights: o.reference ?? o.weights }, true) : null;
      const { evaluate, formatEval } = await import('./eval.ts');
      const r = await evaluate(model, ref, text, { window, maxWindows, file: o.text });
      const names = { model: o.quantize ? `${o.quantize}${o.activations === 'q8' ? ', 8-bit activations' : ''}` : o.weights, reference: o.reference ?? 'unquantised' };
      process.stdout.write(o.json ? JSON.stringify({ ...r, labels: names }, null, 2) + '\n' : formatEval(r, names));
    });
}

/** eval's --text: a regular file (a FIFO or /dev/zero would block or never end), bytes counted as read. */
function readText(file: string): string {
  const { textBytes } = RUNTIME_LIMITS;
  const r = readRegular(file, textBytes.value);
  if (r.kind === 'ok') return new TextDecoder().decode(r.bytes);
  const why = r.kind === 'missing' ? 'no such file' : r.kind === 'bad' ? r.why : `at least ${r.bytes} bytes, over the limit ${textBytes.name} = ${textBytes.value}`;
  throw new RuntimeError('RT100', [file, why], { file });
}
