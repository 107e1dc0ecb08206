// The GPU script's preparation and its driver as far as they run without a GPU: prepare writes the
// tiny model's modules, weights, launches and CPU results; the Python driver's dry run reads all of
// it (the tiny model in bf16 and with q4 weights), packs every launch's ArchcArgs and checks its
// packing against runtime/cuda/abi.ts; the driver's timed path runs against the stand-in libcuda
// (nothing computes there, so its checks must fail and its outputs be found not finite); the
// floor counts every product; the 9B fills keep A negative and dt small.
// The recorded launches are the kernel program's, with the arguments the CUDA backend would pack.

import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lowerToProgram } from '../../compiler/lower.ts';
import { fillOf, fillValues, floorOf } from '../../bench/gpu/prepare.ts';
import { ARGS_BYTES } from '../../runtime/cuda/abi.ts';
import { ofFamily } from '../../runtime/program.ts';
import { ROOT, compileTiny } from '../helpers/checkpoints.ts';
import { fakeCuda } from '../helpers/fake-cuda.ts';

const work = mkdtempSync(join(tmpdir(), 'archc-gpu-bench-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const driver = join(ROOT, 'bench', 'gpu', 'driver.py');

describe('bench/gpu', () => {
  it('prepare writes the tiny model; the driver\'s dry run reads it and packs arguments as the ABI does; its timed path runs on the stand-in driver', async () => {
    // (in a child the worker does not wait on: a cold nvcc cache is minutes on a loaded machine; one
    // architecture, whose PTX the stand-in's sm_91 device takes, keeps it to about 80 s on two cores)
    await promisify(execFile)('npx', ['tsx', join(ROOT, 'bench', 'gpu', 'prepare.ts'), '--out', join(work, 'work'), '--tiny-only', '--ptx', '--cuda-arch', 'sm_80', '--cache', join(tmpdir(), 'archc-cuda-test-cache')], { cwd: ROOT, maxBuffer: 1 << 26 });
    const trace = JSON.parse(readFileSync(join(work, 'work', 'trace.json'), 'utf8'));
    const tiny = trace.models[0];
    expect(tiny.name).toBe('tiny');
    for (const m of tiny.modules) expect(existsSync(join(work, 'work', 'tiny', m.file)), m.file).toBe(true);
    // cubins and (--ptx) PTX, written once for both tiny models (one build)
    expect(new Set(tiny.modules.map((m: { kind: string }) => m.kind))).toEqual(new Set(['cubin', 'ptx']));
    expect(trace.models[1].moduleDir).toBe('tiny');
    expect(existsSync(join(work, 'work', 'tiny-q4', 'cuda'))).toBe(false);
    type Launch = { args: string; family: string; kernel: string; id: string; check?: unknown[] };
    const runs = tiny.sessions.flatMap((s: { runs: { launches: Launch[] }[] }) => s.runs);
    const launches: Launch[] = runs.flatMap((r: { launches: Launch[] }) => r.launches);
    expect(new Set(launches.map((l) => l.family))).toEqual(new Set(['embedding', 'matmul', 'conv', 'ssd', 'attention', 'ssd_step', 'attention_decode']));
    // a kernel's results are checked after its last launch (a kernel of phases launches several times)
    for (const r of runs) {
      r.launches.forEach((l: Launch, i: number) => {
        expect(Buffer.from(l.args, 'base64').length).toBe(ARGS_BYTES);
        const last = r.launches[i + 1]?.kernel !== l.kernel;
        expect({ kernel: l.kernel, checked: (l.check?.length ?? 0) > 0 }).toEqual({ kernel: l.kernel, checked: last });
      });
    }
    const out = execFileSync('python3', [driver, '--work', join(work, 'work'), '--dry-run'], { encoding: 'utf8' });
    expect(out).toMatch(/argument packing matches runtime\/cuda\/abi\.ts/);
    expect(out).toMatch(/tiny: 3 runs, \d+ launches packed/);
    // the tiny model again with q4 products and embedding: their q4 sources, codes and scales
    const q4 = trace.models[1];
    expect(q4.name).toBe('tiny-q4');
    expect(q4.weights.filter((w: { dtype: string }) => w.dtype === 'q4').length).toBeGreaterThan(5);
    const q4ids = new Set(q4.sessions.flatMap((s: { runs: { launches: { id: string }[] }[] }) => s.runs.flatMap((r) => r.launches.map((l) => l.id))));
    expect([...q4ids].filter((id) => launches.some((l) => l.id === id)).length).toBeLessThan(q4ids.size);
    expect(out).toMatch(/tiny-q4: 3 runs, \d+ launches packed/);
    // and with its SSM states kept in bf16: its own scan and state passing sources
    const ssm16 = trace.models[2];
    expect(ssm16.name).toBe('tiny-ssm-bf16');
    const ssmIds = (m: typeof tiny, fam: string) => new Set(m.sessions.flatMap((s: { runs: { launches: Launch[] }[] }) => s.runs.flatMap((r) => r.launches.filter((l) => l.family === fam).map((l) => l.id))));
    for (const fam of ['ssd', 'ssd_step']) expect([...ssmIds(ssm16, fam)].some((id) => ssmIds(tiny, fam).has(id))).toBe(false);
    expect(out).toMatch(/tiny-ssm-bf16: 3 runs, \d+ launches packed/);
    // a driver that packed differently would stop: flip one byte of the expected packing
    const copy = (name: string, edit: (t: typeof trace) => object) => {
      execFileSync('cp', ['-r', join(work, 'work'), join(work, name)]);
      writeFileSync(join(work, name, 'trace.json'), JSON.stringify(edit(trace)));
      return join(work, name);
    };
    const broken = copy('broken', (t) => ({ ...t, abiCheck: { ...t.abiCheck, packed: Buffer.from(Buffer.from(t.abiCheck.packed, 'base64').map((b, i) => (i === 8 ? b ^ 1 : b))).toString('base64') } }));
    expect(() => execFileSync('python3', [driver, '--work', broken, '--dry-run'], { stdio: 'pipe' })).toThrow(/packs ArchcArgs differently/);

    // the timed path on the stand-in libcuda (an sm_91 device: the tiny model's PTX, whose text names
    // its functions as the stand-in looks them up): the tiny model's first decode step timed
    const fake = await fakeCuda();
    const timed = copy('timed', (t) => {
      const m = t.models[0];
      const runs = m.sessions[0].runs.map((r: { entry: string }, i: number) => (i === 1 ? { ...r, time: { reps: 2, bytes: 1e6, flops: 1e9 } } : r));
      return { ...t, models: [{ ...m, sessions: [{ ...m.sessions[0], runs }] }] };
    });
    const { FAKE_CUDA_ARGS_BYTES: _, ...env } = process.env;
    const r = spawnSync('python3', [driver, '--work', timed, '--library', fake.lib], { encoding: 'utf8', env: { ...env, FAKE_CUDA_CC: '91' } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/device: Fake GPU \(sm_91\)/);
    // nothing computes on the stand-in: every check fails, the outputs are the NaN the arena was poisoned with
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/logits max error inf of max \|ref\| \(FAIL\)/);
    expect(r.stdout).toMatch(/decode step 1 \(batch 3\): [\d.]+ ms launched kernel by kernel \(median of 2\)/);
    expect(r.stdout).toMatch(/decode step 1 \(batch 3\): [\d.]+ ms as one CUDA graph/);
    expect(r.stdout).toMatch(/logits NOT FINITE/);
    expect(r.stdout).toMatch(/CHECKS FAILED/);
    const results = JSON.parse(readFileSync(join(timed, 'results.json'), 'utf8'));
    const row = results.timings[0];
    const decode = tiny.sessions[0].runs[1];
    expect(row.kernels.reduce((n: number, k: { count: number }) => n + k.count, 0)).toBe(new Set(decode.launches.map((l: { kernel: string }) => l.kernel)).size);
    expect(row.kernels.map((k: { kernel: string }) => k.kernel)).toContain('model.layers.*.mamba:ssd');
    expect(row.finite).toMatchObject({ logits: false });
  }, 900_000);

  it('counts every product in the floor: prefill FLOPs are 2 · tokens · the products\' weights (gate and up both), the tied head at one row a sequence, and causal attention', () => {
    const compiled = compileTiny();
    const program = lowerToProgram(compiled.graph, compiled.bindings);
    const T = 24, S = 1;
    const e = program.entries.prefill;
    const matrices = program.weights.filter((w) => w.shape.length === 2 && !w.name.includes('embed_tokens'));
    expect(matrices.some((w) => w.name.endsWith('up_proj.weight'))).toBe(true);
    const products = matrices.reduce((n, w) => n + w.shape[0]! * w.shape[1]!, 0);
    const embed = program.weights.find((w) => w.name.includes('embed_tokens'))!;
    const attention = e.kernels.filter((k) => k.family === 'attention').reduce((n, k) => {
      const { H, Dh } = ofFamily(k, 'attention').sizes;
      return n + 4 * H * Dh * T * (T + 1) / 2;
    }, 0);
    expect(attention).toBeGreaterThan(0);
    expect(floorOf(program, e, T, S, [0]).flops).toBe(2 * T * products + 2 * S * embed.shape[0]! * embed.shape[1]! + attention);
  });

  it('makes the same weights as the fill kernels, bit for bit (the narrow model\'s CPU reference runs on them)', () => {
    // bench/gpu/fill.cu's fill_value compiled for the host: its integer hash and its two roundings
    const dir = join(work, 'fill');
    execFileSync('mkdir', ['-p', dir]);
    writeFileSync(join(dir, 'cuda_bf16.h'), [
      '#pragma once', '#define __device__', '#define __forceinline__ inline', '#define __global__',
      '#define __fadd_rn(a, b) ((a) + (b))', '#define __fmul_rn(a, b) ((a) * (b))', 'typedef unsigned short __nv_bfloat16;',
      'inline __nv_bfloat16 __float2bfloat16_rn(float) { return 0; }', 'struct D3 { unsigned x, y, z; };', 'static D3 blockIdx, blockDim, threadIdx, gridDim;',
    ].join('\n'));
    writeFileSync(join(dir, 'main.cpp'), `#include <cstdio>
#include <cstring>
#include "${join(ROOT, 'bench', 'gpu', 'fill.cu')}"
int main() {
  const float args[][2] = {{0.f, 0.02f}, {-1.f, 1.f}, {1.f, 0.1f}, {-4.f, 1.f}};
  for (unsigned seed = 1; seed < 40; seed += 13)
    for (auto& a : args)
      for (unsigned i = 0; i < 3000; i += 1) { float v = fill_value(seed, i * 97u, a[0], a[1]); unsigned b; std::memcpy(&b, &v, 4); std::printf("%u\\n", b); }
}
`);
    execFileSync('g++', ['-O2', '-ffp-contract=off', '-I', dir, '-o', join(dir, 'fill'), join(dir, 'main.cpp')]);
    const host = execFileSync(join(dir, 'fill'), { encoding: 'utf8', maxBuffer: 1 << 24 }).trim().split('\n').map(Number);
    const mine: number[] = [];
    for (let seed = 1; seed < 40; seed += 13) {
      for (const [around, scale] of [[0, 0.02], [-1, 1], [1, 0.1], [-4, 1]] as const) {
        // element i · 97 of a buffer
        const all = fillValues(2999 * 97 + 1, seed, around, scale);
        for (let i = 0; i < 3000; i++) mine.push(new Uint32Array(Float32Array.of(all[i * 97]!).buffer)[0]!);
      }
    }
    expect(host.length).toBe(mine.length);
    expect(host.filter((b, i) => b !== mine[i]).length).toBe(0);
    expect(new Set(mine).size).toBeGreaterThan(mine.length / 2);
  });

  it('fills the 9B-shaped model so that its states stay finite: A negative, dt small, norms near 1', () => {
    const compiled = compileTiny({ n_layers: 2, attn_layers: [1] });
    const program = lowerToProgram(compiled.graph, compiled.bindings);
    const range = (name: string, dtype = 'f32') => { const f = fillOf(name, dtype); return [f.around - f.scale / 2, f.around + f.scale / 2]; };
    const a = program.derived.filter((d) => d.from.kind === 'expr' && JSON.stringify(d.from.body).includes('A_log'));
    expect(a.length).toBe(1);
    for (const d of a) expect(range(d.name)[1]).toBeLessThan(0);
    const dt = program.weights.filter((w) => w.name.endsWith('dt_bias'));
    expect(dt.length).toBe(1);
    // softplus(x + dt_bias) with |x| small: below 0.05
    for (const w of dt) expect(Math.log1p(Math.exp(range(w.name)[1]! + 0.5))).toBeLessThan(0.05);
    for (const w of program.weights.filter((x) => /norm/.test(x.name))) expect(range(w.name)).toEqual([0.95, 1.05]);
  });
});
