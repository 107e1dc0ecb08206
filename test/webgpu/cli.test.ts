// `archc run|forward --backend webgpu` from the CLI (a child process on SwiftShader): the same greedy
// tokens and logits within 1e-4 · (1 + max|logit|) of the CPU backend's; with `--ssm-state bf16`,
// decode logits within 2e-3 · (1 + max|logit|) of the CPU's with the same flag, and not those of f32
// states.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodeNpy } from '../../cli/npy.ts';
import { expectLogitsClose, makeDir, removeDir, runCli, writeCheckpoint } from '../helpers/checkpoints.ts';
import { useSwiftShader } from './gpu.ts';

let dir: string;
beforeAll(() => {
  useSwiftShader(); // the child inherits the environment
  dir = makeDir();
  writeCheckpoint(dir, {}, { dtype: 'bf16', seed: 4 });
});
afterAll(() => { if (dir) removeDir(dir); });

const npy = (file: string): Float32Array => decodeNpy(readFileSync(file)).data;

it('run and forward --backend webgpu agree with the CPU', async () => {
  const args = ['models/bamba.arch', '--weights', dir];
  const [cpu, gpu] = [await runCli(['run', ...args, '--ids', '5,6,7', '--max-tokens', '5']), await runCli(['run', ...args, '--ids', '5,6,7', '--max-tokens', '5', '--backend', 'webgpu'], 120_000)];
  expect(gpu.code, gpu.stderr).toBe(0);
  expect(gpu.stdout.trim()).toBe(cpu.stdout.trim());
  expect(cpu.stdout.trim().split(' ').length).toBe(5);
  const c = await runCli(['forward', ...args, '--ids', '1,2,3;4,5', '--out', join(dir, 'c.npy')]);
  const g = await runCli(['forward', ...args, '--ids', '1,2,3;4,5', '--out', join(dir, 'g.npy'), '--backend', 'webgpu'], 120_000);
  expect(c.code, c.stderr).toBe(0);
  expect(g.code, g.stderr).toBe(0);
  expectLogitsClose(npy(join(dir, 'g.npy')), npy(join(dir, 'c.npy')), 1e-4, 'forward logits', 96);
}, 240_000);

it('--ssm-state bf16 through the CLI: the WebGPU decode equals the CPU\'s within 2e-3 · (1 + max|logit|), and differs from f32 states', async () => {
  const args = ['models/bamba.arch', '--weights', dir, '--ids', '9,8,7,6,5,4,3,2', '--step'];
  const out = (n: string) => ['--out', join(dir, `${n}.npy`)];
  const runs = [await runCli(['forward', ...args, ...out('c16'), '--backend', 'cpu', '--ssm-state', 'bf16']),
    await runCli(['forward', ...args, ...out('g16'), '--backend', 'webgpu', '--ssm-state', 'bf16'], 120_000),
    await runCli(['forward', ...args, ...out('c32'), '--backend', 'cpu'])];
  for (const r of runs) expect(r.code, r.stderr).toBe(0);
  const [c16, g16, c32] = ['c16', 'g16', 'c32'].map((n) => npy(join(dir, `${n}.npy`)));
  expectLogitsClose(g16!, c16!, 2e-3, 'decode logits, bf16 states', 96);
  // the flag took effect: eight tokens through bf16 states are not those through f32 states
  expect(Math.max(...c16!.map((v, i) => Math.abs(v - c32![i]!)))).toBeGreaterThan(0);
}, 240_000);
