// The WGSL products with q8/q4 weights against the CPU backend reading the same codes (the oracle:
// runtime/quant.ts), through the kernel harness: outputs poisoned with NaN first; odd N, K a few
// groups of 32, with and without a bias, at 1, 3 and 5 rows (matrix-vector) and 21 (tiled), in
// forward and decode mode, and the head (a gather of each sequence's last row, then the product);
// both renderings (`gpu` and `cpu`), each weight whole and, up to 6 rows, split over bindings (a
// maxBindingBytes of 1024, so codes and scales straddle parts). Tolerance as kernels.test.ts:
// |gpu − cpu| ≤ 2e-4 · (1 + |cpu|) (the values are exact; only the sums' order differs).

import { beforeAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import type { Attrs } from '../../compiler/ops.ts';
import type { EntryName } from '../../runtime/program.ts';
import { type QuantDType, dequantizeRows } from '../../runtime/quant.ts';
import { quantWeightInput } from '../helpers/quant.ts';
import { WebGpuBackend } from '../../runtime/webgpu/backend.ts';
import type { WgslProfile } from '../../runtime/webgpu/shaders.ts';
import { type OpInput, runOp, runOpAsync } from '../helpers/kernels.ts';
import { expectClose, prng, uniform } from '../runtime/cpu/check.ts';
import { act } from './cases.ts';
import { expectShadersValid, testDevice } from './gpu.ts';

const TOL = { atol: 2e-4, rtol: 2e-4 };
const PROFILES: readonly WgslProfile[] = ['gpu', 'cpu'];
const FORMATS: readonly QuantDType[] = ['q8', 'q4'];

let device: GPUDevice;
beforeAll(async () => { ({ device } = await testDevice()); });

interface QCase {
  readonly op: string;
  readonly attrs?: Attrs;
  readonly inputs: (T: number, rand: () => number, f: QuantDType) => OpInput[];
  readonly Ts: readonly number[];
  readonly modes?: readonly EntryName[];
}

const CASES: QCase[] = [
  { op: 'linear', attrs: { transposed: false }, inputs: (T, r, f) => [act(r, T, [64]), quantWeightInput(r, 29, 64, f), { weight: { dtype: 'f32', shape: [29], data: uniform(r, 29, -1, 1) } }], Ts: [1, 3, 5, 21], modes: ['forward', 'decode'] },
  { op: 'linear', attrs: { transposed: false }, inputs: (T, r, f) => [act(r, T, [96]), quantWeightInput(r, 7, 96, f)], Ts: [2, 17] },
  { op: 'head', inputs: (T, r, f) => [act(r, T, [32]), quantWeightInput(r, 51, 32, f)], Ts: [1, 6] },
];

describe('WGSL products of q8/q4 weights = the CPU backend', () => {
  CASES.forEach((c, n) => {
    for (const f of FORMATS) {
      it(`${c.op} ${JSON.stringify(c.attrs ?? {})} ${f}`, async () => {
        for (const mode of c.modes ?? ['forward']) {
          for (const T of c.Ts) {
            const inputs = c.inputs(T, prng(7000 + 17 * n + T), f);
            const cpu = runOp(c.op, inputs, c.attrs ?? {}, T, { mode });
            // the reference read the codes: its result differs from the float weight's
            const plain = runOp(c.op, inputs.map((i) => (i && 'weight' in i ? { weight: i.weight } : i)), c.attrs ?? {}, T, { mode });
            expect(Math.max(...cpu.outputs[0]!.map((v, i) => Math.abs(v - plain.outputs[0]![i]!))), 'the codes change the product').toBeGreaterThan(1e-3);
            for (const profile of PROFILES) {
              // split: the plan cuts each weight by its float size's rows, so the codes and scales
              // (a quarter to an eighth of it) fill the first parts and straddle one boundary at least
              for (const maxBindingBytes of T <= 6 ? [undefined, 1024] : [undefined]) {
                let backend: WebGpuBackend | undefined;
                const opts = maxBindingBytes ? { maxBindingBytes, maxBatchTokens: T, stateSlots: 1 } : {};
                const gpu = await runOpAsync(c.op, inputs, c.attrs ?? {}, T, { mode, backend: (p) => (backend = new WebGpuBackend(p, renderProgram(p), device, 'test', false, opts, profile)) });
                const what = `${c.op} ${f} ${profile} ${mode} T=${T}${maxBindingBytes ? ' split' : ''}`;
                expect(backend!.formats.get('w1'), `${what}: the weight went up as codes`).toBe(f);
                if (maxBindingBytes) expect(backend!.plan.buffers.get('w:w1')!.parts, `${what}: the weight is split`).toBeGreaterThan(1);
                if (T === c.Ts[0] && mode === (c.modes ?? ['forward'])[0]) await expectShadersValid(backend!, profile);
                gpu.outputs.forEach((y, i) => expectClose(y, cpu.outputs[i]!, TOL, `${what} output ${i}`));
              }
            }
          }
        }
      });
    }
  });

  it('the CPU oracle reads the codes as runtime/quant.ts defines them', () => {
    // (guards the harness: the reference product is the dequantised weight's)
    const r = prng(9);
    const inputs = [act(r, 3, [64]), quantWeightInput(r, 5, 64, 'q4')];
    const q = (inputs[1] as { upload: Parameters<typeof dequantizeRows>[0] }).upload;
    const w = dequantizeRows(q, 0, 5);
    const x = (inputs[0] as { act: Float32Array }).act;
    const want = new Float32Array(15);
    for (let t = 0; t < 3; t++) for (let o = 0; o < 5; o++) { let s = 0; for (let k = 0; k < 64; k++) s += x[t * 64 + k]! * w[o * 64 + k]!; want[t * 5 + o] = s; }
    expectClose(runOp('linear', inputs, { transposed: false }, 3).outputs[0]!, want, { atol: 1e-5, rtol: 1e-5 }, 'cpu q4 linear');
  });
});
