// archc train end to end on a tiny Bamba: a run killed mid-way and resumed ends with the same
// weights and moments, bit for bit, as one that never stopped (on the default engine, the kernel
// program's train entry on the wasm backend; the f32 engine's resume too); the engines take the same
// first steps; the loss falls while overfitting a
// short text; the run directory is a checkpoint archc loads, with metrics and a loss curve; bad
// input is refused with a code naming the place, writing nothing.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFile, loadConfig } from '../../compiler/compile.ts';
import { lossGradients, readWeightsF64 } from '../../compiler/grad.ts';
import { openCheckpoint } from '../../runtime/safetensors.ts';
import { ARCHC, BAMBA, ROOT, TINY, runCli, setsFor, writeCheckpoint } from '../helpers/checkpoints.ts';
import { toF32 } from '../../runtime/tensor.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs('archc-train-');
const TOKENIZER = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32');
const SETS = setsFor({ ...TINY, vocab: 264 }).flatMap((s) => ['--set', s]);
const TEXT = 'The quick brown fox jumps over the lazy dog. <|endoftext|>A stitch in time saves nine. <|endoftext|>Pack my box with five dozen liquor jugs.';

const args = (data: string, out: string, ...extra: string[]) =>
  ['train', BAMBA, ...SETS, '--tokenizer', TOKENIZER, '--data', data, '--seq-len', '24', '--batch', '2', '--lr', '1e-2', '--warmup', '2', '-o', out, ...extra];
const bytes = (f: string) => readFileSync(f);

/** Runs the CLI and SIGKILLs it as soon as it has saved a step short of the end; returns that step. */
function killAfterFirstSave(argv: string[], run: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ARCHC, ...argv], { cwd: ROOT, stdio: 'ignore' });
    const poll = setInterval(() => {
      const f = join(run, 'trainer_state.json');
      if (!existsSync(f)) return;
      child.kill('SIGKILL');
      clearInterval(poll);
    }, 2);
    child.on('exit', () => {
      clearInterval(poll);
      try {
        const step = (JSON.parse(readFileSync(join(run, 'trainer_state.json'), 'utf8')) as { step: number }).step;
        resolve(step);
      } catch (e) {
        reject(e);
      }
    });
    setTimeout(() => { child.kill('SIGKILL'); }, 60_000).unref();
  });
}

describe('archc train', () => {
  it('resumes a run killed mid-way to the same weights and moments, bit for bit', async () => {
    const dir = tmp(), data = join(dir, 'd.txt'), straight = join(dir, 'a'), killed = join(dir, 'b');
    writeFileSync(data, TEXT);
    const steps = 40;
    const a = await runCli(args(data, straight, '--steps', String(steps), '--save-every', '2'), 120_000);
    expect(a.code, a.stderr).toBe(0);
    const k = await killAfterFirstSave(args(data, killed, '--steps', String(steps), '--save-every', '2'), killed);
    process.stderr.write(`killed after step ${k} of ${steps}\n`);
    expect(k, 'the kill came after the first save and before the end').toBeGreaterThan(0);
    expect(k).toBeLessThan(steps);
    const b = await runCli(['train', '--resume', killed], 120_000);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(killed, 'trainer_state.json'), 'utf8')).settings.engine).toBe('kernels');
    for (const f of ['model.safetensors', 'optimizer.safetensors', 'trainer_state.json']) expect(bytes(join(killed, f)).equals(bytes(join(straight, f))), f).toBe(true);
    // the metrics agree too, but for the timings
    const strip = (f: string) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => { const { tokens_per_s: _, ...m } = JSON.parse(l); return m; });
    expect(strip(join(killed, 'metrics.jsonl'))).toEqual(strip(join(straight, 'metrics.jsonl')));
  }, 240_000);

  it('overfits a short text: the loss falls over 20 steps; the run loads as a checkpoint with metrics and a loss curve', async () => {
    const dir = tmp(), data = join(dir, 'd.txt'), run = join(dir, 'run');
    writeFileSync(data, TEXT);
    const r = await runCli(args(data, run, '--steps', '20', '--eval', data), 120_000);
    expect(r.code, r.stderr).toBe(0);
    const m = readFileSync(join(run, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number>);
    expect(m.map((x) => x.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    for (const x of m) for (const key of ['tokens', 'loss', 'lr', 'grad_norm', 'tokens_per_s']) expect(Number.isFinite(x[key]), key).toBe(true);
    const mean = (xs: Record<string, number>[]) => xs.reduce((s, x) => s + x.loss!, 0) / xs.length;
    expect(mean(m.slice(-3)), `first ${mean(m.slice(0, 3))}, last ${mean(m.slice(-3))}`).toBeLessThan(0.6 * mean(m.slice(0, 3)));
    const svg = readFileSync(join(run, 'loss.svg'), 'utf8');
    expect(svg.match(/<polyline[^>]*points="([^"]*)"/)![1]!.split(' ')).toHaveLength(20);
    // archc loads the run as a Hugging Face checkpoint: its loss equals the float64 reference's on the saved weights
    const ids = '84,104,101,32,113,117,105,99,107';
    const out = await runCli(['forward', BAMBA, '--weights', run, '--ids', ids, '--loss'], 60_000);
    expect(out.code, out.stderr).toBe(0);
    const g = compileFile(BAMBA, { hfConfigData: loadConfig(join(run, 'config.json')) }).graph;
    const ckpt = openCheckpoint(run);
    const w = readWeightsF64(g, ckpt);
    ckpt.close();
    const tokens = Int32Array.from(ids.split(',').map(Number));
    const labels = Int32Array.from(tokens);
    labels[0] = -100;
    const ref = lossGradients(g, w, { tokens, positions: Int32Array.from(tokens, (_, i) => i), seqs: [{ start: 0, len: tokens.length }], labels }, { grads: false });
    const got = JSON.parse(out.stdout) as { loss: number };
    expect(Math.abs(got.loss - ref.loss) / ref.loss, `${got.loss} vs ${ref.loss}`).toBeLessThan(1e-5);
    const ev = JSON.parse(readFileSync(join(run, 'eval.jsonl'), 'utf8').trim()) as { step: number; eval_loss: number; eval_bits_per_byte: number };
    expect(ev.step).toBe(20);
    expect(ev.eval_loss).toBeLessThan(m[0]!.loss!);
  }, 240_000);

  it('--engine reference, wasm (the f32 engine) and the default kernels (the train entry on the wasm backend) take the same steps (loss and gradient norm within 1e-5)', async () => {
    const dir = tmp(), data = join(dir, 'd.txt');
    writeFileSync(data, TEXT);
    const read = (run: string) => readFileSync(join(run, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number>);
    for (const [run, extra] of [[join(dir, 'w'), ['--engine', 'wasm']], [join(dir, 'r'), ['--engine', 'reference']], [join(dir, 'k'), []]] as const) {
      const r = await runCli(args(data, run, '--steps', '3', '--warmup', '0', ...extra), 120_000);
      expect(r.code, r.stderr).toBe(0);
    }
    const [w, r, k] = [read(join(dir, 'w')), read(join(dir, 'r')), read(join(dir, 'k'))];
    expect(w).toHaveLength(3);
    for (const [what, got] of [['wasm', w], ['kernels', k]] as const) {
      got.forEach((m, i) => {
        expect(Math.abs(m.loss! - r[i]!.loss!) / r[i]!.loss!, `${what} step ${i + 1} loss ${m.loss} vs ${r[i]!.loss}`).toBeLessThan(1e-5);
        expect(Math.abs(m.grad_norm! - r[i]!.grad_norm!) / r[i]!.grad_norm!, `${what} step ${i + 1} |g| ${m.grad_norm} vs ${r[i]!.grad_norm}`).toBeLessThan(1e-5);
      });
    }
    expect(JSON.parse(readFileSync(join(dir, 'r', 'trainer_state.json'), 'utf8')).settings.engine).toBe('reference');
    expect(JSON.parse(readFileSync(join(dir, 'w', 'trainer_state.json'), 'utf8')).settings.engine).toBe('wasm');
    expect(JSON.parse(readFileSync(join(dir, 'k', 'trainer_state.json'), 'utf8')).settings.engine).toBe('kernels');
  }, 240_000);

  it('--engine wasm (the f32 engine): 2 steps resumed to 4 end with the weights and moments of 4 straight, bit for bit', async () => {
    const dir = tmp(), data = join(dir, 'd.txt'), straight = join(dir, 'a'), split = join(dir, 'b');
    writeFileSync(data, TEXT);
    for (const [run, steps] of [[straight, '4'], [split, '2']] as const) {
      const r = await runCli(args(data, run, '--steps', steps, '--engine', 'wasm'), 120_000);
      expect(r.code, r.stderr).toBe(0);
    }
    const b = await runCli(['train', '--resume', split, '--steps', '4'], 120_000);
    expect(b.code, b.stderr).toBe(0);
    for (const f of ['model.safetensors', 'optimizer.safetensors']) expect(bytes(join(split, f)).equals(bytes(join(straight, f))), f).toBe(true);
  }, 240_000);

  it('--hf-config binds a random init\'s params (tiny-bamba-a\'s config: 264 × 256 embeddings, 6 layers)', async () => {
    const dir = tmp(), data = join(dir, 'd.txt'), run = join(dir, 'run');
    writeFileSync(data, TEXT);
    const r = await runCli(['train', BAMBA, '--hf-config', join(TOKENIZER, 'config.json'), '--tokenizer', TOKENIZER, '--data', data, '--seq-len', '24', '--batch', '2', '--steps', '1', '-o', run], 120_000);
    expect(r.code, r.stderr).toBe(0);
    const ckpt = openCheckpoint(run);
    expect(ckpt.tensors.get('model.embed_tokens.weight')!.shape).toEqual([264, 256]);
    expect(ckpt.tensors.has('model.layers.5.self_attn.q_proj.weight')).toBe(true);
    ckpt.close();
  }, 120_000);

  it('fine-tunes from --weights: one step moves each weight from the checkpoint\'s by at most lr (AdamW\'s first step)', async () => {
    const dir = tmp(), data = join(dir, 'd.txt'), ckpt = join(dir, 'ckpt'), run = join(dir, 'run');
    writeFileSync(data, TEXT);
    mkdirSync(ckpt);
    const { tensors } = writeCheckpoint(ckpt, { vocab: 264 }, { seed: 5 });
    const lr = 1e-3, wd = 0.1;
    const r = await runCli(['train', BAMBA, '--weights', ckpt, '--tokenizer', TOKENIZER, '--data', data, '--seq-len', '24', '--batch', '2', '--lr', String(lr), '--weight-decay', String(wd), '--steps', '1', '-o', run], 120_000);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(run, 'config.json'), 'utf8')).toBe(readFileSync(join(ckpt, 'config.json'), 'utf8'));
    const got = openCheckpoint(run);
    let moved = 0, n = 0;
    for (const { name, tensor } of tensors) {
      const w1 = toF32(got.read(name)), w0 = tensor.data as Float32Array;
      const decay = tensor.shape.length >= 2 ? 1 - lr * wd : 1;
      w0.forEach((v, i) => {
        // the first step is lr · g / (|g| + eps) after the decay: at most lr, in f32
        const d = Math.abs(w1[i]! - v * decay);
        expect(d, `${name}[${i}]`).toBeLessThanOrEqual(lr * (1 + 1e-6) + 1e-7 * Math.abs(v));
        if (d > 0.5 * lr) moved++;
        n++;
      });
    }
    got.close();
    expect(moved, 'most weights take a full step of lr').toBeGreaterThan(0.5 * n);
  }, 240_000);

  it('refuses bad flags, data and runs with a code naming the place, writing nothing', async () => {
    const dir = tmp(), data = join(dir, 'd.txt'), bad = join(dir, 'bad.jsonl'), run = join(dir, 'run'), other = join(dir, 'other');
    writeFileSync(data, TEXT);
    writeFileSync(bad, '{"text": "fine"}\n{"body": "no text field"}\n');
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    const rows: [string[], string][] = [
      [['train', BAMBA, ...SETS, '--tokenizer', TOKENIZER, '--steps', '2', '-o', run], 'error AC315: invalid --data: train needs a data file'],
      [args(data, run, '--steps', '0'), 'error AC315: invalid --steps: expected a positive integer, got "0"'],
      [args(data, run, '--steps', '2', '--lr', '-1'), 'error AC315: invalid --lr: expected a positive number, got "-1"'],
      [['train', BAMBA, ...SETS, '--data', data, '--steps', '2', '-o', run], 'error AC315: invalid --tokenizer: a random init needs the tokenizer'],
      [args(bad, run, '--steps', '2'), `error RT600: ${bad}:2: expected an object with a string field "text"`],
      [args(data, dir, '--steps', '2'), `error AC601: output directory ${dir} is not empty and is not an archc checkpoint`],
      [['train', '--resume', other], `error RT601: cannot resume from ${other}: ${join(other, 'trainer_state.json')}`],
      [['train', '--resume', run, '--lr', '1'], 'error AC315: invalid --lr: it cannot be combined with --resume'],
      [args(data, run, '--steps', '2', '--engine', 'gpu'), 'error AC315: invalid --engine: "gpu" is not an engine'],
      [['train', '--resume', run, '--engine', 'reference'], 'error AC315: invalid --engine: it cannot be combined with --resume'],
    ];
    for (const [argv, said] of rows) {
      const r = await runCli(argv, 60_000);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.stderr.startsWith(said), r.stderr).toBe(true);
      expect(r.stderr).not.toContain('    at ');
    }
    expect(readdirSync(dir).sort()).toEqual(['bad.jsonl', 'd.txt', 'notes.txt']);
    // a finished run cannot be resumed to the steps it has
    expect((await runCli(args(data, run, '--steps', '2'), 60_000)).code).toBe(0);
    const r = await runCli(['train', '--resume', run, '--steps', '2'], 60_000);
    expect(r.stderr.startsWith(`error AC315: invalid --steps: the run in ${run} has taken 2 steps already`), r.stderr).toBe(true);
    // nor one saved before rows were shuffled over the whole file (another data order), nor one whose sampler is gone
    const stateFile = join(run, 'trainer_state.json'), saved = readFileSync(stateFile, 'utf8');
    const { loader: _, ...old } = JSON.parse(saved).settings;
    for (const [settings, key] of [[{ ...old, shuffleBuffer: 1024 }, 'loader'], [{ ...JSON.parse(saved).settings, sampler: { epoch: 0 } }, 'sampler']] as const) {
      writeFileSync(stateFile, JSON.stringify({ ...JSON.parse(saved), settings }));
      const o = await runCli(['train', '--resume', run, '--steps', '3'], 60_000);
      expect(o.stderr.startsWith(`error RT601: cannot resume from ${run}: ${stateFile}: ${key === 'loader' ? 'its data order is not rows-1' : 'settings.sampler'}`), o.stderr).toBe(true);
    }
    writeFileSync(stateFile, saved);
    // nor on a data file that changed: its batches could not be replayed
    writeFileSync(data, TEXT + ' more');
    const changed = await runCli(['train', '--resume', run, '--steps', '3'], 60_000);
    expect(changed.code).toBe(1);
    expect(changed.stderr.startsWith(`error RT601: cannot resume from ${run}: its data file ${data} holds ${TEXT.length + 5} bytes, not the ${TEXT.length} it was trained on`), changed.stderr).toBe(true);
  }, 240_000);
});
