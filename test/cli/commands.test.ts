// The command line end to end: `check` on a file with two errors, `stats --json` on Bamba-9B,
// and `init-weights` (bf16, sharded) → `forward` (--out, --loss, --step) → `run`, each compared with
// the same computation done in-process. The CLI runs are spawned together in beforeAll.

import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeNpy } from '../../cli/npy.ts';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { Model } from '../../runtime/model.ts';
import { BAMBA, type CliResult, TINY, expectLogitsClose, inParallel, makeDir, programFor, removeDir, runCli, setsFor } from '../helpers/checkpoints.ts';

// Line 7 col 7 and line 8 col 24 are unknown names; the compiler reports both in one run.
const TWO_ERRORS = `import std.{Embedding, RMSNorm}

model Two(tokens: i32[T], positions: i32[T]) {
  param d = 16
  e = Embedding(64, d)
  x = e(tokens)
  y = undefined_block_a(x)
  return n: RMSNorm(d)(missing_value)
}
`;

const NO_STACK = /^\s+at /m;
const IDS = '3,1,4,1,5,9,2;6,5,3,5,8,9,7,9,3,2,3';
const SEQS = IDS.split(';').map((s) => s.split(',').map(Number));

let root: string;
let ckpt: string;
let check: CliResult, stats: CliResult, init: CliResult, fwd: CliResult, step: CliResult, run: CliResult, badIds: CliResult, cpu: CliResult;
let model: Model;

beforeAll(async () => {
  root = makeDir('archc-cli-');
  ckpt = join(root, 'ckpt');
  const arch = join(root, 'two.arch');
  writeFileSync(arch, TWO_ERRORS);
  const sets = setsFor({ ...TINY, mamba_groups: 2, attn_layers: [0, 2] }).flatMap((s) => ['--set', s]);
  const initJob = () => runCli(['init-weights', BAMBA, '-o', ckpt, '--dtype', 'bf16', '--shard-size', '30000', '--seed', '7', ...sets]);
  // init-weights runs alongside check and stats; forward, --step and run need its checkpoint
  [check, stats, init] = await inParallel([() => runCli(['check', arch]), () => runCli(['stats', BAMBA, '--json']), initJob], 3);
  expect(init.stderr).toBe('');
  [fwd, step, run, badIds, cpu] = await inParallel([
    () => runCli(['forward', BAMBA, '--weights', ckpt, '--ids', IDS, '--out', join(root, 'prefill.npy'), '--loss']),
    () => runCli(['forward', BAMBA, '--weights', ckpt, '--ids', IDS, '--out', join(root, 'step.npy'), '--step']),
    () => runCli(['run', BAMBA, '--weights', ckpt, '--ids', SEQS[0]!.join(','), '--max-tokens', '6']),
    () => runCli(['forward', BAMBA, '--weights', ckpt, '--ids', '1,x;2', '--out', join(root, 'bad.npy')]),
    () => runCli(['forward', BAMBA, '--weights', ckpt, '--ids', IDS, '--out', join(root, 'cpu.npy'), '--step', '--backend', 'cpu']),
  ], 3);
  // the CLI runs on its default backend, wasm, with the program's own module: the in-process model too
  const program = programFor(ckpt);
  model = await Model.loadProgram(program, ckpt, { backend: 'wasm', wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program) });
}, 180_000);
afterAll(() => removeDir(root));

describe('archc check', () => {
  it('a file with two errors: exit 1, both diagnostics with file:line:col and a code frame, no stack trace', () => {
    expect(check.code).toBe(1);
    expect(check.stdout).toBe('');
    const err = check.stderr;
    expect(err).toMatch(/two\.arch:7:7: error AC200: unknown name undefined_block_a/);
    expect(err).toMatch(/two\.arch:8:24: error AC200: unknown name missing_value/);
    // code frames: the offending line marked with '>' and a caret run under the name
    expect(err).toContain('> 7 |   y = undefined_block_a(x)');
    expect(err).toContain(`    |       ${'^'.repeat('undefined_block_a'.length)}`);
    expect(err).toContain('> 8 |   return n: RMSNorm(d)(missing_value)');
    expect(err).toContain(`    |                        ${'^'.repeat('missing_value'.length)}`);
    expect(err).toMatch(/\n2 errors\n$/);
    expect(err).not.toMatch(NO_STACK);
  });
});

describe('archc stats', () => {
  it('--json parses and counts Bamba-9B at 9,254,898,816 parameters', () => {
    expect(stats.code, stats.stderr).toBe(0);
    const s = JSON.parse(stats.stdout) as { model: string; parameters: { total: number } };
    expect(s.model).toBe('Bamba');
    expect(s.parameters.total).toBe(9254898816);
  });
});

describe('archc init-weights → forward → run', () => {
  it('init-weights --dtype bf16 --shard-size writes shards, an index and a bf16 config.json', () => {
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/^wrote .*: \d+ tensors, [\d,]+ parameters\n$/);
    const files = readdirSync(ckpt);
    expect(files).toContain('model.safetensors.index.json');
    expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(2);
    expect(files.some((f) => f.includes('.tmp'))).toBe(false);
    const cfg = JSON.parse(readFileSync(join(ckpt, 'config.json'), 'utf8').replace(/\bInfinity\b/g, '1e999'));
    expect(cfg).toMatchObject({ torch_dtype: 'bfloat16', mamba_n_groups: 2, attn_layer_indices: [0, 2], hidden_size: 32, vocab_size: 96 });
    expect(model.program.weights.length).toBeGreaterThan(0);
  });

  it('forward --out writes the packed logits the in-process Model gives', () => {
    expect(fwd.code, fwd.stderr).toBe(0);
    const { data, shape } = decodeNpy(readFileSync(join(root, 'prefill.npy')));
    const T = SEQS.flat().length;
    expect(shape).toEqual([T, 96]);
    const ref = model.forward({ ids: SEQS.flat(), cuSeqlens: [0, SEQS[0]!.length, T] }).logits;
    expectLogitsClose(data, ref, 1e-6, 'CLI logits vs in-process', 96);
  });

  it('forward --step --backend cpu (the reference engine) gives the logits of the default wasm backend (to f32 rounding)', () => {
    expect(cpu.code, cpu.stderr).toBe(0);
    const { data } = decodeNpy(readFileSync(join(root, 'cpu.npy')));
    const T = SEQS.flat().length;
    const ref = model.forward({ ids: SEQS.flat(), cuSeqlens: [0, SEQS[0]!.length, T] }).logits;
    expectLogitsClose(data, ref, 1e-5, 'CLI cpu logits vs in-process wasm', 96);
  });

  it('forward --loss prints the loss of the packed batch (labels = ids, -100 at each sequence start)', () => {
    const line = JSON.parse(fwd.stdout.trim().split('\n').at(-1)!) as { loss: number; tokens: number };
    const ids = SEQS.flat();
    const labels = [...SEQS[0]!, -100, ...SEQS[1]!.slice(1)];
    const want = model.forward({ ids, cuSeqlens: [0, SEQS[0]!.length, ids.length], labels }).loss!;
    // the rows the mean is over: each label after the first that is not -100
    expect(line.tokens).toBe(labels.slice(1).filter((l) => l !== -100).length);
    expect(Math.abs(line.loss - want)).toBeLessThanOrEqual(1e-9 * want);
  });

  it('forward --step (one token at a time through decode) = forward (prefill)', () => {
    expect(step.code, step.stderr).toBe(0);
    const a = decodeNpy(readFileSync(join(root, 'step.npy')));
    const b = decodeNpy(readFileSync(join(root, 'prefill.npy')));
    expect(a.shape).toEqual(b.shape);
    expectLogitsClose(a.data, b.data, 1e-5, '--step vs prefill', 96);
  });

  it('run --ids prints the greedy continuation that Model.generate gives', async () => {
    expect(run.code, run.stderr).toBe(0);
    const want: number[] = [];
    for await (const t of model.generate(SEQS[0]!, { maxTokens: 6 })) want.push(t.id);
    expect(run.stdout.trim().split(/\s+/).map(Number)).toEqual(want);
    expect(run.stderr).toMatch(/6 tokens; first after [\d.]+ s \(prefill\)/);
  });
});

describe('command-line values', () => {
  it('a malformed --ids is a diagnostic naming the flag: exit 1, no stack trace, no output file', () => {
    expect(badIds.code).toBe(1);
    expect(badIds.stderr).toContain('error AC315: invalid --ids: "1,x;2"');
    expect(badIds.stderr).toContain('hint: --ids takes integers separated by commas');
    expect(badIds.stderr).not.toMatch(/^\s+at /m);
    expect(existsSync(join(root, 'bad.npy'))).toBe(false);
  });
});
