// One built package loads a tied and an untied checkpoint: `tie_word_embeddings` in the checkpoint's
// config.json decides at load whether the head reads the embedding or `lm_head.weight` (absent: the
// .arch default, tied). The package is built by `archc build` with the .arch defaults (tied; the
// TINY package test/package/types.test.ts checks too, test/helpers/package-cache.ts); each
// checkpoint's logits are compared with the CPU engine running a program compiled for that layout
// alone (`--set tie=...` pinned, as before load-time choices).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hfConfigText } from '../../compiler/init.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import { type LoadOptions, Model } from '../../runtime/model.ts';
import { writeSafetensors } from '../../runtime/safetensors.ts';
import { type WrittenCheckpoint, TINY, expectLogitsClose, makeDir, maxAbsDiff, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { tinyPackage } from '../helpers/package-cache.ts';

interface PackageModel { readonly program: { readonly params: Readonly<Record<string, unknown>> }; forward(input: { ids: readonly number[]; cuSeqlens?: readonly number[] }): { logits: Float32Array } }
type Package = { Model: { load(dir: string, opts?: LoadOptions): Promise<PackageModel> } };

const IDS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];
const CU = [0, 5, IDS.length];

let work: string;
let pkg: Package;
let tied: WrittenCheckpoint, untied: WrittenCheckpoint;

beforeAll(async () => {
  work = makeDir('archc-tie-');
  // the .arch default: tie = true
  const out = await tinyPackage(join(work, 'pkg'));
  pkg = await import(pathToFileURL(join(out, 'dist', 'index.js')).href) as Package;
  const dir = (name: string) => {
    mkdirSync(join(work, name));
    return join(work, name);
  };
  tied = writeCheckpoint(dir('tied'), { tie: true }, { seed: 3 });
  untied = writeCheckpoint(dir('untied'), { tie: false }, { seed: 3 });
}, 1_000_000);
afterAll(() => removeDir(work));

/** The CPU engine on a program compiled for the checkpoint's layout alone. */
async function reference(ckpt: WrittenCheckpoint): Promise<Float32Array> {
  const c = ckpt.compiled;
  const m = await Model.loadProgram(lowerToProgram(c.graph, c.bindings), ckpt.dir, { backend: 'cpu' });
  return m.forward({ ids: IDS, cuSeqlens: CU }).logits;
}

describe('one package, tied or untied head', () => {
  it('the pinned references differ: the untied head reads its own lm_head.weight', async () => {
    expect(untied.tensors.map((t) => t.name)).toContain('lm_head.weight');
    expect(tied.tensors.map((t) => t.name)).not.toContain('lm_head.weight');
    expect(maxAbsDiff(await reference(tied), await reference(untied))).toBeGreaterThan(1e-2);
  });

  it.each(['tied', 'untied'] as const)('loads the %s checkpoint; logits match its CPU reference (cpu 1e-6, wasm 1e-5)', async (which) => {
    const ckpt = which === 'tied' ? tied : untied;
    const ref = await reference(ckpt);
    const cpu = await pkg.Model.load(ckpt.dir, { backend: 'cpu' });
    expectLogitsClose(cpu.forward({ ids: IDS, cuSeqlens: CU }).logits, ref, 1e-6, `package cpu, ${which}`, TINY.vocab as number);
    // the loaded model says which layout its checkpoint chose
    expect(cpu.program.params.tie).toBe(which === 'tied');
    const wasm = await pkg.Model.load(ckpt.dir, { threads: 2 });
    expectLogitsClose(wasm.forward({ ids: IDS, cuSeqlens: CU }).logits, ref, 1e-5, `package wasm, ${which}`, TINY.vocab as number);
  });

  it('without tie_word_embeddings in config.json the .arch default (tied) holds: an lm_head.weight is then an unexpected tensor', async () => {
    const drop = (cfg: Record<string, unknown>) => { delete cfg.tie_word_embeddings; };
    const t = join(work, 'tied-nokey');
    const u = join(work, 'untied-nokey');
    for (const [d, src] of [[t, tied], [u, untied]] as const) {
      mkdirSync(d);
      writeFileSync(join(d, 'config.json'), hfConfigText(src.compiled, 'f32', drop));
      writeSafetensors(join(d, 'model.safetensors'), src.tensors);
    }
    const m = await pkg.Model.load(t, { backend: 'cpu' });
    expectLogitsClose(m.forward({ ids: IDS, cuSeqlens: CU }).logits, await reference(tied), 1e-6, 'package cpu, tied, no key', TINY.vocab as number);
    await expect(pkg.Model.load(u, { backend: 'cpu' })).rejects.toMatchObject({ code: 'RT163' });
  });

  it('a value the choice does not take is RT210, naming the key', async () => {
    const d = join(work, 'bad-value');
    mkdirSync(d);
    writeFileSync(join(d, 'config.json'), hfConfigText(tied.compiled, 'f32', (cfg) => { cfg.tie_word_embeddings = 'yes'; }));
    writeSafetensors(join(d, 'model.safetensors'), tied.tensors);
    const e = await pkg.Model.load(d, { backend: 'cpu' }).then(() => undefined, (x: unknown) => x as { code: string; message: string });
    expect(e?.code).toBe('RT210');
    expect(e?.message).toContain('tie_word_embeddings = "yes", but this program takes true or false for tie');
  });
});
