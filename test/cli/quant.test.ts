// archc quantize / eval and --quantize/--keep, in-process through `main`: eval's figures against the
// runtime's loss and a direct KL over the same windows; a written pack-quantized checkpoint (and
// one written the way other compressed-tensors tools do) loads as the quantise-on-load model, bit
// for bit; the refusals with their codes.

import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { decodeNpy } from '../../cli/npy.ts';
import { readHfConfig } from '../../runtime/hfconfig.ts';
import { causalLmLoss } from '../../runtime/loss.ts';
import { quantize } from '../../runtime/quant.ts';
import { packedTensors } from '../../runtime/quantckpt.ts';
import { type NamedTensor, openCheckpoint, writeSafetensors } from '../../runtime/safetensors.ts';
import { f32ToBf16, f16ToF32 } from '../../runtime/tensor.ts';
import { BAMBA, loadModel, makeDir, randomIds, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';

const TINY_A = resolve(import.meta.dirname, '../../../shared/models/tiny-bamba-a');

let base: string;
let rand: string;
beforeAll(() => {
  base = makeDir('archc-quant-cli-');
  rand = join(base, 'rand');
  mkdirSync(rand);
  writeCheckpoint(rand, {}, { seed: 11 });
});
afterAll(() => removeDir(base));

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const write = { out: process.stdout.write, err: process.stderr.write };
  process.stdout.write = ((s: string) => ((stdout += s), true)) as never;
  process.stderr.write = ((s: string) => ((stderr += s), true)) as never;
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
  }
}

const ids = randomIds(12, 96, 5);

/** config.json as the runtime reads it (archc's random checkpoints write Infinity). */
const parseConfig = (file: string) => readHfConfig(file) as Record<string, any>;

describe('archc eval', () => {
  // 3 windows of 64 bytes, evenly spread over eval-A.txt; the reference: the runtime's loss over
  // <bos> + the window (its T predictions are the window's bytes), and KL summed here in double
  it('bits per token/byte equal the runtime loss; with --quantize, the KL of the two models\' softmaxes', async () => {
    const text = readFileSync(join(TINY_A, 'eval-A.txt'));
    const args = ['eval', BAMBA, '--weights', join(TINY_A, 'f32'), '--text', join(TINY_A, 'eval-A.txt'), '--window', '64', '--max-windows', '3', '--backend', 'cpu', '--json'];
    const r = await cli([...args, '--quantize', 'q4']);
    expect(r.code, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout);
    const total = Math.ceil(text.length / 64);
    expect(got).toMatchObject({ tokens: text.length, bytes: text.length, windows: 3, windowsTotal: total, scoredTokens: 192 });
    const [ref, q] = await Promise.all([loadModel(join(TINY_A, 'f32'), { backend: 'cpu', threads: 1 }), loadModel(join(TINY_A, 'f32'), { backend: 'cpu', threads: 1, quantize: 'q4' })]);
    let refNats = 0, qNats = 0, kl = 0;
    for (let i = 0; i < 3; i++) {
      const w = Math.floor((i * total) / 3);
      const win = [256, ...text.subarray(w * 64, w * 64 + 64)];
      const labels = Int32Array.from(win);
      const a = ref.forward({ ids: win }), b = q.forward({ ids: win });
      refNats += causalLmLoss(a.logits, win.length, 264, labels).loss * 64;
      qNats += causalLmLoss(b.logits, win.length, 264, labels).loss * 64;
      for (let t = 0; t < 64; t++) {
        const lse = (x: Float32Array) => { let m = -Infinity, s = 0; for (let v = 0; v < 264; v++) m = Math.max(m, x[t * 264 + v]!); for (let v = 0; v < 264; v++) s += Math.exp(x[t * 264 + v]! - m); return m + Math.log(s); };
        const la = lse(a.logits), lb = lse(b.logits);
        for (let v = 0; v < 264; v++) {
          const lp = a.logits[t * 264 + v]! - la, lq = b.logits[t * 264 + v]! - lb;
          kl += Math.exp(lp) * (lp - lq);
        }
      }
    }
    const close = (x: number, y: number, what: string) => expect(Math.abs(x - y) / Math.abs(y), `${what}: ${x} vs ${y}`).toBeLessThan(1e-9);
    close(got.reference.bitsPerToken, refNats / 192 / Math.LN2, 'reference bits/token');
    close(got.bitsPerToken, qNats / 192 / Math.LN2, 'q4 bits/token');
    close(got.bitsPerByte, got.bitsPerToken, 'one byte a token');
    close(got.reference.klMean, kl / 192, 'KL');
    expect(got.reference.klMean).toBeGreaterThan(0);
    expect(got.bitsPerToken).not.toBe(got.reference.bitsPerToken);
    // the text form says the same
    const plain = await cli(args.filter((a) => a !== '--json'));
    expect(plain.stdout).toContain(`cross-entropy: ${got.reference.bitsPerByte.toFixed(4)} bits/byte`);
    ref.dispose();
    q.dispose();
  });

  it('refuses a text it cannot read (RT100) and a checkpoint without a tokenizer (RT400)', async () => {
    const r = await cli(['eval', BAMBA, '--weights', rand, '--text', join(base, 'nope.txt'), '--backend', 'cpu']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error RT100: cannot read .*nope\.txt/);
    writeFileSync(join(base, 'some.txt'), 'some text');
    const t = await cli(['eval', BAMBA, '--weights', rand, '--text', join(base, 'some.txt'), '--backend', 'cpu']);
    expect(t.stderr).toMatch(/error RT400: .*tokenizer\.json: eval needs the checkpoint's tokenizer/);
  });
});

describe('archc quantize', () => {
  it('writes a pack-quantized checkpoint that loads as quantise-on-load does, bit for bit (q4 with one merged group at q8)', async () => {
    const out = join(base, 'q4');
    const keep = ['--keep', 'model.layers.1.self_attn.q_proj.weight=q8', '--keep', 'model.layers.0.mamba.out_proj.weight=none'];
    const r = await cli(['quantize', BAMBA, '--weights', rand, '--to', 'q4', ...keep, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote .*q4: \d+ weights q4, 3 weights q8; weights .* MB → .* MB/);
    const cfg = parseConfig(join(out, 'config.json')).quantization_config;
    expect(cfg).toMatchObject({ quant_method: 'compressed-tensors', format: 'pack-quantized', ignore: ['model.layers.0.mamba.out_proj'] });
    expect(Object.values(cfg.config_groups).map((g) => (g as { weights: { num_bits: number } }).weights.num_bits)).toEqual([4, 8]);
    expect((cfg.config_groups.group_1 as { targets: string[] }).targets.sort()).toEqual(['q', 'k', 'v'].map((p) => `model.layers.1.self_attn.${p}_proj`).sort());
    const ck = openCheckpoint(out);
    expect(ck.tensors.get('model.layers.0.mamba.in_proj.weight_packed')).toMatchObject({ fileDtype: 'I32' });
    expect(ck.tensors.get('model.layers.0.mamba.in_proj.weight_scale')).toMatchObject({ fileDtype: 'F16' });
    expect(ck.tensors.has('model.layers.0.mamba.out_proj.weight')).toBe(true);
    expect(ck.tensors.has('model.layers.0.mamba.in_proj.weight')).toBe(false);
    ck.close();
    const pre = await loadModel(out, { backend: 'cpu', threads: 1 });
    const onLoad = await loadModel(rand, { backend: 'cpu', threads: 1, quantize: { default: 'q4', overrides: { 'model.layers.1.self_attn.q_proj.weight': 'q8', 'model.layers.0.mamba.out_proj.weight': 'none' } } });
    expect(pre.quantization!.prequantized).toBe(true);
    expect([...pre.quantization!.formats].sort()).toEqual([...onLoad.quantization!.formats].sort());
    expect(pre.forward({ ids }).logits).toEqual(onLoad.forward({ ids }).logits);
    // the CLI reads it too, and says it is quantised
    const f = await cli(['forward', BAMBA, '--weights', out, '--ids', ids.join(','), '--loss', '--backend', 'cpu']);
    expect(f.code, f.stderr).toBe(0);
    expect(f.stderr).toMatch(/quantised checkpoint: \d+ q4, 3 q8 weights/);
    pre.dispose();
    onLoad.dispose();
  });

  it('--dequantize writes the quantised values as f32: the same logits as the quantised model', async () => {
    const out = join(base, 'deq');
    const r = await cli(['quantize', BAMBA, '--weights', rand, '--to', 'q8', '--dequantize', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/weights q8 \(written dequantised, f32\)/);
    expect(parseConfig(join(out, 'config.json')).quantization_config).toBeUndefined();
    const deq = await loadModel(out, { backend: 'cpu', threads: 1 });
    const q = await loadModel(rand, { backend: 'cpu', threads: 1, quantize: 'q8' });
    expect(deq.quantization).toBeNull();
    expect(deq.forward({ ids }).logits).toEqual(q.forward({ ids }).logits);
    deq.dispose();
    q.dispose();
  });

  it('RT173: a non-finite scale in a quantised checkpoint names the tensor', async () => {
    const dir = join(base, 'infscale');
    cpSync(join(base, 'q4'), dir, { recursive: true });
    const ck = openCheckpoint(join(base, 'q4'));
    const tensors = [...ck.tensors.keys()].map((name) => ({ name, tensor: ck.read(name) }));
    ck.close();
    const s = tensors.find((t) => t.name === 'model.layers.2.feed_forward.down_proj.weight_scale')!;
    (s.tensor.data as Uint16Array)[5] = 0x7c00;
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    const r = await cli(['forward', BAMBA, '--weights', dir, '--ids', '1,2', '--backend', 'cpu']);
    expect(r.stderr).toMatch(/error RT173: .*tensor model\.layers\.2\.feed_forward\.down_proj\.weight_scale: scale Infinity at index 5 is not finite/);
  });

  it('loads a compressed-tensors checkpoint written elsewhere: bf16 scales, class targets, zero points', async () => {
    const dir = join(base, 'foreign');
    mkdirSync(dir);
    const qc = {
      quant_method: 'compressed-tensors', format: 'pack-quantized', ignore: ['lm_head'],
      config_groups: { group_0: { targets: ['Linear'], weights: { num_bits: 4, type: 'int', symmetric: true, strategy: 'group', group_size: 32, dynamic: false }, input_activations: null } },
    };
    const text = readFileSync(join(rand, 'config.json'), 'utf8');
    writeFileSync(join(dir, 'config.json'), `${text.slice(0, text.lastIndexOf('}'))}, "quantization_config": ${JSON.stringify(qc)}}`);
    const ck = openCheckpoint(rand);
    const tensors: NamedTensor[] = [];
    const formats = new Map<string, 'q4'>();
    for (const name of ck.tensors.keys()) {
      const t = ck.read(name);
      if (!/_proj\.weight$/.test(name)) { tensors.push({ name, tensor: t }); continue; }
      const q = quantize(t, 'q4');
      if ('reason' in q) throw new Error(q.reason);
      formats.set(name, 'q4');
      for (const p of packedTensors(name, q.q)) {
        // scales as bf16 where exact (llm-compressor writes the model's dtype); here every f16 scale of
        // these small weights is a bf16 value only if its mantissa fits, so check and keep exact ones
        if (p.name.endsWith('_scale')) {
          const s = p.tensor.data as Uint16Array;
          const bf = Uint16Array.from(s, (h) => f32ToBf16(f16ToF32(h)));
          const exact = Array.from(s).every((h, i) => f16ToF32(h) === new Float32Array(new Uint32Array([bf[i]! << 16]).buffer)[0]);
          tensors.push({ name: p.name, tensor: exact ? { dtype: 'bf16', shape: p.tensor.shape, data: bf } : p.tensor });
        } else tensors.push(p);
      }
      tensors.push({ name: `${name}_zero_point`, tensor: { dtype: 'i32', shape: [t.shape[0]!, t.shape[1]! / 32], data: new Int32Array((t.shape[0]! * t.shape[1]!) / 32) } });
    }
    ck.close();
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    const pre = await loadModel(dir, { backend: 'cpu', threads: 1 });
    const onLoad = await loadModel(rand, { backend: 'cpu', threads: 1, quantize: { default: 'q4', overrides: { 'model.embed_tokens.weight': 'none' } } });
    expect([...pre.quantization!.formats.keys()].sort()).toEqual([...formats.keys()].sort());
    expect(pre.forward({ ids }).logits).toEqual(onLoad.forward({ ids }).logits);
    pre.dispose();
    onLoad.dispose();
  });
});

describe('refusals', () => {
  /** A copy of the q4 checkpoint with one piece of its config.json text replaced. */
  const withConfig = (name: string, from: string, to: string): string => {
    const dir = join(base, name);
    cpSync(join(base, 'q4'), dir, { recursive: true });
    const text = readFileSync(join(dir, 'config.json'), 'utf8');
    expect(text).toContain(from);
    writeFileSync(join(dir, 'config.json'), text.replace(from, to));
    return dir;
  };

  it.each([
    ['gptq', '"quant_method": "compressed-tensors"', '"quant_method": "gptq"', /RT172: .*config\.json: quantization_config\.quant_method = "gptq" is not supported/],
    ['marlin', '"format": "pack-quantized"', '"format": "marlin-24"', /RT172: .*quantization_config\.format = "marlin-24"/],
    ['asym', '"symmetric": true', '"symmetric": false', /RT172: .*quantization_config\.config_groups\.group_0\.weights\.symmetric = false is not supported: archc reads symmetric/],
    ['g128', '"group_size": 32', '"group_size": 128', /RT172: .*group_size = 128/],
  ])('RT172: a quantization_config archc does not read (%s) names the key', async (name, from, to, text) => {
    const r = await cli(['forward', BAMBA, '--weights', withConfig(`bad-${name}`, from, to), '--ids', '1,2', '--backend', 'cpu']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(text);
  });

  it('RT175: --quantize on a quantised checkpoint; the default (wasm) backend reads one', async () => {
    const out = join(base, 'q4');
    const a = await cli(['forward', BAMBA, '--weights', out, '--ids', '1,2', '--backend', 'cpu', '--quantize', 'q8']);
    expect(a.stderr).toMatch(/error RT175: .*q4 holds weights quantised already \(q4, q8\); load it without --quantize/);
    const b = await cli(['forward', BAMBA, '--weights', out, '--ids', '1,2']);
    expect(b.stderr).toMatch(/^quantised checkpoint: \d+ q4, \d+ q8/);
    expect(b.code).toBe(0);
  });

  it('flags: --keep without --quantize, a malformed --keep, an unknown tensor, a bad format', async () => {
    const f = (...a: string[]) => cli(['forward', BAMBA, '--weights', rand, '--ids', '1,2', '--backend', 'cpu', ...a]);
    expect((await f('--keep', 'lm_head.weight=q8')).stderr).toContain('error AC315: invalid --keep: it needs --quantize q8|q4');
    expect((await f('--quantize', 'q4', '--keep', 'lm_head.weight:q8')).stderr).toContain('error AC315: invalid --keep: "lm_head.weight:q8": expected TENSOR=q8, TENSOR=q4 or TENSOR=none');
    expect((await f('--quantize', 'q4', '--keep', 'model.nothing.weight=q8')).stderr).toContain('error RT170: quantize override model.nothing.weight: this model has no weight of that name');
    const bad = await f('--quantize', 'q5');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/argument 'q5' is invalid/);
  });

  it('--activations q8: the logits of the API\'s 8-bit activations; refused without quantised weights (RT303)', async () => {
    const f = (...a: string[]) => cli(['forward', BAMBA, '--weights', rand, '--ids', '1,2,3,4', '--out', join(base, `a8-${a.join('')}.npy`), ...a]);
    const r = await f('--backend', 'cpu', '--quantize', 'q4', '--activations', 'q8');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^quantised on load: \d+ q4 weights, 8-bit activations/);
    const got = decodeNpy(readFileSync(join(base, 'a8---backendcpu--quantizeq4--activationsq8.npy')));
    const [a8, f32] = await Promise.all([loadModel(rand, { backend: 'cpu', threads: 1, quantize: 'q4', activations: 'q8' }), loadModel(rand, { backend: 'cpu', threads: 1, quantize: 'q4' })]);
    const want = a8.forward({ ids: [1, 2, 3, 4] }).logits, exact = f32.forward({ ids: [1, 2, 3, 4] }).logits;
    expect(Array.from(got.data)).toEqual(Array.from(want));
    expect(Array.from(want)).not.toEqual(Array.from(exact));
    a8.dispose();
    f32.dispose();
    const none = await f('--backend', 'cpu', '--activations', 'q8');
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('error RT303: unsupported activations q8 with no quantised weights');
    expect(none.stderr).not.toMatch(/\n\s+at /);
  });

  it('quantize writes nothing over a directory archc did not write (AC601), nor when the checkpoint is bad', async () => {
    const foreign = join(base, 'theirs');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'notes.txt'), 'mine');
    const r = await cli(['quantize', BAMBA, '--weights', rand, '--to', 'q8', '-o', foreign]);
    expect(r.stderr).toContain('error AC601');
    expect(readdirSync(foreign)).toEqual(['notes.txt']);
    const fresh = join(base, 'never');
    const q = await cli(['quantize', BAMBA, '--weights', join(base, 'q4'), '--to', 'q8', '-o', fresh]);
    expect(q.stderr).toMatch(/error RT175/);
    expect(existsSync(fresh)).toBe(false);
  });
});
