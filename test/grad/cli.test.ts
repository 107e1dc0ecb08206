// archc forward --loss --grads FILE.safetensors: every weight's gradient under the checkpoint's
// names, equal to the float64 reference (rounded to f32: 1e-6 of each weight's largest entry),
// for packed sequences given with `;` and with --positions; bad flag combinations refused with a
// code naming the flag before anything is written.

import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lossGradients } from '../../compiler/grad.ts';
import { RuntimeError } from '../../runtime/errors.ts';
import { openCheckpoint } from '../../runtime/safetensors.ts';
import { toF32 } from '../../runtime/tensor.ts';
import { BAMBA, runCli, writeCheckpoint } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';
import { relErr } from './helpers.ts';

const tmp = useTmpDirs('archc-grads-');

function maxRel(got: Float32Array, want: Float64Array): number {
  let d = 0, m = 0;
  want.forEach((v, i) => { d = Math.max(d, Math.abs(got[i]! - v)); m = Math.max(m, Math.abs(v)); });
  return m === 0 ? d : d / m;
}

describe('forward --grads', () => {
  const cases = [
    { what: 'sequences split by ;', ids: '5,9,2,7,7,1,3;4,8,8,2;11,3,6,1,2,0', seqs: [[0, 7], [7, 4], [11, 6]], positions: undefined },
    { what: 'sequences from --positions', ids: '5,9,2,7,7,4,8,8,2', seqs: [[0, 5], [5, 4]], positions: '0,1,2,3,4,0,1,2,3' },
  ];
  for (const k of cases) {
    it(`writes every weight's gradient: ${k.what}`, async () => {
      const dir = tmp(), ckpt = join(dir, 'ckpt'), out = join(dir, 'g.safetensors');
      mkdirSync(ckpt);
      const { compiled, tensors } = writeCheckpoint(ckpt, { tie: false }, { seed: 4 });
      const r = await runCli(['forward', BAMBA, '--weights', ckpt, '--ids', k.ids, ...(k.positions ? ['--positions', k.positions] : []), '--loss', '--grads', out, '--backend', 'cpu']);
      expect(r.code, r.stderr).toBe(0);
      const printed = JSON.parse(r.stdout) as { loss: number; tokens: number; grad_norm: number };
      // the reference on the same batch
      const ids = Int32Array.from(k.ids.split(/[;,]/).map(Number));
      const seqs = k.seqs.map(([start, len]) => ({ start: start!, len: len! }));
      const labels = Int32Array.from(ids);
      for (const s of seqs) labels[s.start] = -100;
      const positions = Int32Array.from(seqs.flatMap((s) => Array.from({ length: s.len }, (_, j) => j)));
      const w = new Map(tensors.map((t) => [t.name, Float64Array.from(t.tensor.data as Float32Array)]));
      const ref = lossGradients(compiled.graph, w, { tokens: ids, positions, seqs, labels });
      expect(printed.tokens).toBe(ref.tokens);
      expect(relErr(printed.loss, ref.loss, 1e-12)).toBeLessThan(1e-5);
      const norm = Math.sqrt([...ref.grads!.values()].reduce((n, d) => n + d.reduce((a, v) => a + v * v, 0), 0));
      expect(relErr(printed.grad_norm, norm, 1e-12), `grad_norm ${printed.grad_norm} vs ${norm}`).toBeLessThan(1e-12);
      const g = openCheckpoint(out);
      expect([...g.tensors.keys()].sort()).toEqual(compiled.graph.weights.map((x) => x.name).sort());
      for (const wt of compiled.graph.weights) {
        const t = g.read(wt.name);
        expect(t.dtype).toBe('f32');
        expect(t.shape).toEqual(wt.shape);
        expect(maxRel(toF32(t), ref.grads!.get(wt.name)!), wt.name).toBeLessThan(1e-6);
      }
      g.close();
      expect(readdirSync(dir).sort()).toEqual(['ckpt', 'g.safetensors']);
    }, 120_000);
  }

  for (const [engine, backend] of [['wasm', 'cpu'], ['kernels', 'cpu'], ['kernels', 'wasm']]) it(`--engine ${engine}${engine === 'kernels' ? ` --backend ${backend}` : ''} writes the ${engine === 'wasm' ? 'f32 engine\'s' : `train entry's (on ${backend})`} gradients: each weight within 1e-5 rel L2 of the float64 reference`, async () => {
    const dir = tmp(), ckpt = join(dir, 'ckpt'), out = join(dir, 'g.safetensors');
    mkdirSync(ckpt);
    const { compiled, tensors } = writeCheckpoint(ckpt, { tie: false }, { seed: 4 });
    const r = await runCli(['forward', BAMBA, '--weights', ckpt, '--ids', '5,9,2,7,7,1,3;4,8,8,2', '--loss', '--grads', out, '--engine', engine!, '--backend', backend!]);
    expect(r.code, r.stderr).toBe(0);
    const ids = Int32Array.of(5, 9, 2, 7, 7, 1, 3, 4, 8, 8, 2), seqs = [{ start: 0, len: 7 }, { start: 7, len: 4 }];
    const labels = Int32Array.from(ids);
    labels[0] = labels[7] = -100;
    const w = new Map(tensors.map((t) => [t.name, Float64Array.from(t.tensor.data as Float32Array)]));
    const ref = lossGradients(compiled.graph, w, { tokens: ids, positions: Int32Array.of(0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3), seqs, labels });
    const g = openCheckpoint(out);
    for (const wt of compiled.graph.weights) {
      const got = toF32(g.read(wt.name)), want = ref.grads!.get(wt.name)!;
      let num = 0, den = 0;
      want.forEach((v, i) => { num += (got[i]! - v) ** 2; den += v * v; });
      expect(Math.sqrt(num / Math.max(den, 1e-300)), wt.name).toBeLessThan(1e-5);
    }
    g.close();
  }, 120_000);

  it('refuses --grads without --loss, with --step or --quantize, and into a missing directory, writing nothing', async () => {
    const dir = tmp(), ckpt = join(dir, 'ckpt'), out = join(dir, 'g.safetensors');
    mkdirSync(ckpt);
    writeCheckpoint(ckpt);
    const run = (...extra: string[]) => runCli(['forward', BAMBA, '--weights', ckpt, '--ids', '1,2,3', '--backend', 'cpu', ...extra]);
    const rows: [string[], string][] = [
      [['--grads', out], 'error AC315: invalid --grads: it needs --loss'],
      [['--loss', '--step', '--grads', out], 'error AC315: invalid --grads: it cannot be combined with --step'],
      [['--loss', '--quantize', 'q8', '--grads', out], 'error AC315: invalid --grads: it cannot be combined with --quantize'],
      [['--loss', '--grads', out, '--engine', 'gpu'], 'error AC315: invalid --engine: "gpu" is not an engine'],
      [['--loss', '--grads', out, '--engine', 'kernels', '--backend', 'cuda'], 'error AC315: invalid --backend: the train entry does not run on cuda'],
      [['--loss', '--grads', join(dir, 'no', 'g.safetensors')], `error AC603: cannot write ${join(dir, 'no', 'g.safetensors')}: directory ${join(dir, 'no')} does not exist`],
    ];
    for (const [flags, said] of rows) {
      const r = await run(...flags);
      expect(r.code, flags.join(' ')).toBe(1);
      expect(r.stderr.startsWith(said), r.stderr).toBe(true);
      expect(r.stderr).not.toContain('    at ');
    }
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir)).toEqual(['ckpt']);
  }, 120_000);
});

describe('--grads memory', () => {
  it('the float64 evaluation is sized before anything is read: over the memory at hand it is RT146 naming both figures', async () => {
    const { checkGradientMemory } = await import('../../cli/grads.ts');
    const { gradientBytes } = await import('../../compiler/grad.ts');
    const { compileTiny } = await import('../helpers/checkpoints.ts');
    const g = compileTiny().graph;
    const need = gradientBytes(g, 10);
    // at least the weights and their gradients; more tokens need more
    expect(need).toBeGreaterThan(2 * 8 * g.weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0));
    expect(gradientBytes(g, 20)).toBeGreaterThan(need);
    await expect(checkGradientMemory('ckpt', need, { bytes: need, source: 'a test' })).resolves.toBeUndefined();
    const err = await checkGradientMemory('ckpt', need, { bytes: need - 1, source: 'a test' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe('RT146');
    expect((err as RuntimeError).message).toContain(need.toLocaleString('en-US'));
    expect((err as RuntimeError).message).toContain('fewer tokens');
  });
});
