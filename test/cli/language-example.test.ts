// The first example of docs/LANGUAGE.md ("A small decoder", which ends `return head(...)`), taken
// from the doc's own text, runs through every command a new user tries: check, init-weights,
// forward (logits against the CPU engine in-process), forward --loss and run. Its one returned
// value is its logits whatever it is called; several values without one named logits are AC409.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeNpy } from '../../cli/npy.ts';
import { compileModel } from '../../compiler/pipeline.ts';
import { Model } from '../../runtime/model.ts';
import { ROOT, expectLogitsClose, makeDir, removeDir, runCli } from '../helpers/checkpoints.ts';

/** The first fenced block of docs/LANGUAGE.md, checked to be the small decoder. */
function firstExample(): string {
  const doc = readFileSync(join(ROOT, 'docs', 'LANGUAGE.md'), 'utf8');
  const text = /```[a-z]*\n([\s\S]*?)```/.exec(doc)![1]!;
  expect(text).toMatch(/^# A small decoder/);
  expect(text).toMatch(/return head\(/);
  return text;
}

const IDS = [5, 17, 3, 200, 41, 9];
let dir: string;
let arch: string;
let ckpt: string;

beforeAll(() => {
  dir = makeDir('archc-doc-');
  arch = join(dir, 'tiny.arch');
  ckpt = join(dir, 'ckpt');
  writeFileSync(arch, firstExample());
});
afterAll(() => removeDir(dir));

describe('docs/LANGUAGE.md: the first example', () => {
  it('passes check, init-weights, forward (= the CPU engine), forward --loss and run', async () => {
    const check = await runCli(['check', arch]);
    expect(check.code, check.stderr).toBe(0);
    const init = await runCli(['init-weights', arch, '-o', ckpt, '--dtype', 'f32', '--seed', '4']);
    expect(init.code, init.stderr).toBe(0);

    const out = join(dir, 'logits.npy');
    const fwd = await runCli(['forward', arch, '--weights', ckpt, '--ids', IDS.join(','), '--out', out]);
    expect(fwd.code, fwd.stderr).toBe(0);
    const { data, shape } = decodeNpy(readFileSync(out));
    const { program } = compileModel(arch, { hfConfig: join(ckpt, 'config.json') });
    const vocab = program.outputs.logits!;
    expect(shape).toEqual([IDS.length, vocab]);
    const model = await Model.loadProgram(program, ckpt, { backend: 'cpu' });
    expectLogitsClose(data, model.forward({ ids: IDS }).logits, 1e-5, 'CLI (wasm) vs CPU engine', vocab);

    const loss = await runCli(['forward', arch, '--weights', ckpt, '--ids', IDS.join(','), '--loss']);
    expect(loss.code, loss.stderr).toBe(0);
    expect(JSON.parse(loss.stdout).tokens).toBe(IDS.length - 1);

    const run = await runCli(['run', arch, '--weights', ckpt, '--ids', IDS.join(','), '--max-tokens', '4']);
    expect(run.code, run.stderr).toBe(0);
    const want: number[] = [];
    for await (const t of model.generate(IDS, { maxTokens: 4 })) want.push(t.id);
    expect(run.stdout.trim().split(/\s+/).map(Number)).toEqual(want);
  }, 240_000);

  it('its returned value is the logits output, whatever its expression', () => {
    const { graph, program } = compileModel(arch);
    expect(graph.outputs.map((o) => o.name)).toEqual(['logits']);
    expect(program.outputs).toEqual({ logits: graph.params.vocab });
  });
});
