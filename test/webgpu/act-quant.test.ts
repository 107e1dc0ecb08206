// 8-bit activations (LoadOptions.activations 'q8', runtime/act-quant.ts) on WebGPU (SwiftShader):
// the WGSL rounding (codegen/wgsl/quant.ts `act_round`, the function the rendered pass calls) alone
// against `quantizeActivations`, bit for bit (NaN matching any NaN), on the edge groups and random
// rows, out of place and in place; then the products over q8/q4 weights with activations 'q8' (the
// rounding pass, then the unfused matrix-vector or tiled product) against the CPU reference of the
// same mode, both renderings, at 1, 3 and 4 rows (matrix-vector) and 21 (tiled), forward and decode,
// and the head (a gather of each sequence's last row, rounded in place): |gpu − cpu| ≤ 1e-4 ·
// (1 + max|cpu|), on rows with ties and maxima at 127·s, where one value rounded otherwise moves an
// output by about 1e-3 of the scale. Rounding the input changes the products by far more (checked).
// No adapter fails the tests (gpu.ts).

import { beforeAll, describe, expect, it } from 'vitest';
import { ACT_ROUND_FN } from '../../codegen/wgsl/quant.ts';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import type { Attrs } from '../../compiler/ops.ts';
import { CpuBackend } from '../../runtime/cpu/backend.ts';
import type { EntryName } from '../../runtime/program.ts';
import type { QuantDType } from '../../runtime/quant.ts';
import { quantWeightInput } from '../helpers/quant.ts';
import { WebGpuBackend } from '../../runtime/webgpu/backend.ts';
import type { WgslProfile } from '../../runtime/webgpu/shaders.ts';
import { type OpInput, runOp, runOpAsync } from '../helpers/kernels.ts';
import { prng, uniform } from '../runtime/cpu/check.ts';
import { edgeGroups, firstBitDifference, rounded, tieRows } from './act-groups.ts';
import { expectShadersValid, testDevice } from './gpu.ts';

let device: GPUDevice;
beforeAll(async () => { ({ device } = await testDevice()); });

// GPUBufferUsage and GPUMapMode flags as numbers (the globals exist only once a GPU is loaded)
const STORAGE = 0x80, COPY_SRC = 0x04, COPY_DST = 0x08, MAP_READ = 0x01;

/** `act_round` over G groups of `x` on the device, into a second buffer or in place. */
async function roundOnDevice(x: Float32Array, inPlace: boolean): Promise<Float32Array> {
  const G = x.length / 32;
  const code = `@group(0) @binding(0) var<storage, read_write> src: array<f32>;
${inPlace ? '' : '@group(0) @binding(1) var<storage, read_write> dst: array<f32>;'}
fn xin(r: u32, k: u32) -> f32 { return src[r * 32u + k]; }
fn xput(r: u32, k: u32, v: f32) { ${inPlace ? 'src' : 'dst'}[r * 32u + k] = v; }
${ACT_ROUND_FN}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) { if (id.x < ${G}u) { act_round(id.x, 0u); } }`;
  const module = device.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length) throw new Error(`act_round rejected: ${errors.map((m) => `${m.lineNum}: ${m.message}`).join('; ')}\n${code}`);
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bytes = x.byteLength;
  const src = device.createBuffer({ size: bytes, usage: STORAGE | COPY_DST | COPY_SRC });
  const dst = device.createBuffer({ size: bytes, usage: STORAGE | COPY_SRC });
  const staging = device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
  device.queue.writeBuffer(src, 0, new Float32Array(x));
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, ...(inPlace ? [] : [{ binding: 1, resource: { buffer: dst } }])] }));
  pass.dispatchWorkgroups(Math.ceil(G / 64));
  pass.end();
  enc.copyBufferToBuffer(inPlace ? src : dst, 0, staging, 0, bytes);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(MAP_READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  for (const b of [src, dst, staging]) b.destroy();
  return out;
}

describe('the WGSL rounding = quantizeActivations, bit for bit', () => {
  for (const inPlace of [false, true]) {
    it(`edge groups and random rows${inPlace ? ', in place' : ''}`, async () => {
      const groups = edgeGroups(prng(1));
      const rows = tieRows(prng(2), 8, 96);
      const x = new Float32Array(groups.length * 32 + rows.length);
      groups.forEach(([, g], i) => x.set(g, 32 * i));
      x.set(rows, groups.length * 32);
      const got = await roundOnDevice(x, inPlace), want = rounded(x, x.length / 32, 32);
      for (let g = 0; g < x.length / 32; g++) {
        const at = firstBitDifference(got.subarray(32 * g, 32 * g + 32), want.subarray(32 * g, 32 * g + 32));
        const name = g < groups.length ? groups[g]![0] : `random row group ${g - groups.length}`;
        expect(at, `${name}: [${at}] x ${x[32 * g + at]}: got ${got[32 * g + at]}, want ${want[32 * g + at]}`).toBe(-1);
      }
    });
  }
});

interface QCase {
  readonly op: string;
  readonly attrs?: Attrs;
  readonly inputs: (T: number, rand: () => number, f: QuantDType) => OpInput[];
  readonly Ts: readonly number[];
  readonly modes?: readonly EntryName[];
}

const rowsOf = (rand: () => number, T: number, K: number): OpInput => ({ act: tieRows(rand, T, K), shape: ['T', K] });
const CASES: QCase[] = [
  { op: 'linear', attrs: { transposed: false }, inputs: (T, r, f) => [rowsOf(r, T, 64), quantWeightInput(r, 29, 64, f), { weight: { dtype: 'f32', shape: [29], data: uniform(r, 29, -1, 1) } }], Ts: [1, 3, 4, 21], modes: ['forward', 'decode'] },
  { op: 'linear', attrs: { transposed: false }, inputs: (T, r, f) => [rowsOf(r, T, 96), quantWeightInput(r, 7, 96, f)], Ts: [2, 17] },
  { op: 'head', inputs: (T, r, f) => [rowsOf(r, T, 32), quantWeightInput(r, 51, 32, f)], Ts: [1, 6] },
];

/** max |a − b| / (1 + max|b|). */
function relErr(a: Float32Array, b: Float32Array): number {
  let scale = 0, diff = 0;
  b.forEach((v, i) => { scale = Math.max(scale, Math.abs(v)); diff = Math.max(diff, Number.isNaN(a[i]!) ? Infinity : Math.abs(a[i]! - v)); });
  return diff / (1 + scale);
}

describe('WGSL products of q8/q4 weights over 8-bit activations = the CPU reference of the same mode', () => {
  const seen: string[] = [];
  CASES.forEach((c, n) => {
    for (const f of ['q8', 'q4'] as const) {
      it(`${c.op} ${JSON.stringify(c.attrs ?? {})} ${f}`, async () => {
        for (const mode of c.modes ?? ['forward']) {
          for (const T of c.Ts) {
            const inputs = c.inputs(T, prng(8000 + 17 * n + T), f);
            const cpu = runOp(c.op, inputs, c.attrs ?? {}, T, { mode, backend: (p) => { const b = new CpuBackend(p); b.useActivations('q8'); return b; } });
            const f32 = runOp(c.op, inputs, c.attrs ?? {}, T, { mode });
            expect(relErr(f32.outputs[0]!, cpu.outputs[0]!), 'rounding the input moves the product').toBeGreaterThan(1e-3);
            for (const profile of ['gpu', 'cpu'] as WgslProfile[]) {
              let backend: WebGpuBackend | undefined;
              const gpu = await runOpAsync(c.op, inputs, c.attrs ?? {}, T, { mode, backend: (p) => (backend = new WebGpuBackend(p, renderProgram(p), device, 'test', false, { activations: 'q8' }, profile)) });
              const what = `${c.op} ${f} ${profile} ${mode} T=${T}`;
              const k = Object.values(backend!.shaders.profiles[profile]).flatMap((e) => e.kernels).find((x) => x.quant)!;
              expect(backend!.passesOf(k).map((p) => p.name), `${what}: the rounding runs first`).toContain('round');
              if (T === c.Ts[0] && mode === (c.modes ?? ['forward'])[0]) await expectShadersValid(backend!, profile, true);
              const err = relErr(gpu.outputs[0]!, cpu.outputs[0]!);
              seen.push(`${what}: ${err.toExponential(2)}`);
              expect(err, `${what}: max |gpu − cpu| / (1 + max|cpu|)`).toBeLessThanOrEqual(1e-4);
            }
          }
        }
      }, 300_000);
    }
  });
  it('WGSL rendered without the 8-bit activation passes: RT303', () => {
    const p = runOp('linear', CASES[0]!.inputs(1, prng(1), 'q8'), { transposed: false }, 1).program;
    const w = JSON.parse(JSON.stringify(renderProgram(p)), (key, v: unknown) => (key === 'a8' ? undefined : v)) as ReturnType<typeof renderProgram>;
    expect(() => new WebGpuBackend(p, w, device, 'test', false, { activations: 'q8' }, 'cpu')).toThrow(/RT303.*8-bit activations/);
    new WebGpuBackend(p, w, device, 'test', false, {}, 'cpu').dispose();
  });
  it('prints the errors seen', () => { console.log(`max |gpu − cpu| / (1 + max|cpu|):\n  ${seen.join('\n  ')}`); expect(seen.length).toBeGreaterThan(0); });
});
