// The chunked SSD in five phases (codegen/cuda/templates/ssd.cu.hbs) and ssd_step at Bamba-9B's SSD
// sizes, without a GPU: Bamba-9B's own ssd and ssd_step sources compile for sm_80 and sm_90 with no
// spills, the three products of the chunked SSD as tf32 tensor-core mma in the PTX; and in the
// emulator, at 9B's head dim 64, d_state 128, chunk 256, one group (4 heads), a packed batch of 230 +
// 40 + 300 rows (sequence boundaries inside 256-row spans; the last, two chunks, continuing a saved
// state) equals the CPU reference: outputs and final states within 2e-3 of 1 + their largest value
// (tf32 operands: 10-bit mantissas; the rest f32). Also 6 heads in 2 groups, sizes no tile
// divides (P 48, N 40, chunk 40), and ssd_step at 9B's sizes (f32 throughout: 1e-5).

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePtxas } from '../../codegen/cuda/build.ts';
import { renderKernel } from '../../codegen/cuda/render.ts';
import { compileFile } from '../../compiler/compile.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import type { StatePool } from '../../runtime/backend.ts';
import { createRng } from '../../runtime/rng.ts';
import { fromF32, roundBf16, widenBf16 } from '../../runtime/tensor.ts';
import { BAMBA, expectLogitsClose } from '../helpers/checkpoints.ts';
import { buildEmulator, EmuCudaBackend, programSources } from '../helpers/cuda-emu.ts';
import { type OpBatch, type OpInput, runOp } from '../helpers/kernels.ts';

const run = promisify(execFile);

describe('CUDA chunked SSD at Bamba-9B sizes', () => {
  it('compiles for sm_80 and sm_90 without spills, its products tf32 mma', async () => {
    const nine = lowerToProgram(compileFile(BAMBA, {}).graph, []);
    const dir = mkdtempSync(join(tmpdir(), 'archc-ssd-'));
    const kernels = (['prefill', 'decode'] as const).map((e) => ({ e, k: nine.entries[e].kernels.find((k) => k.family === (e === 'prefill' ? 'ssd' : 'ssd_step'))! }));
    expect(kernels[0]!.k.sizes).toEqual({ H: 128, P: 64, G: 1, N: 128, chunk: 256 });
    const jobs = kernels.flatMap(({ e, k }) => ['sm_80', 'sm_90'].map((arch) => ({ family: k.family, arch, source: renderKernel(nine, nine.entries[e], k).source })));
    const results = [];
    for (let i = 0; i < jobs.length; i += 2) {
      results.push(...await Promise.all(jobs.slice(i, i + 2).map(async ({ family, arch, source }) => {
        const base = join(dir, `${family}.${arch}`);
        writeFileSync(`${base}.cu`, source);
        const r = await run('nvcc', ['-cubin', `-arch=${arch}`, '-Xptxas', '-v', '-keep', '-keep-dir', dir, '-o', `${base}.cubin`, `${base}.cu`], { maxBuffer: 1 << 24 });
        return { family, arch, usage: parsePtxas(r.stderr), ptx: readFileSync(`${base}.ptx`, 'utf8') };
      })));
    }
    for (const { family, arch, usage, ptx } of results) {
      const fns = Object.keys(usage).sort();
      expect(fns, `${family} ${arch}`).toEqual(family === 'ssd' ? ['archc_ssd_cb', 'archc_ssd_cumsum', 'archc_ssd_pass', 'archc_ssd_scan', 'archc_ssd_states'] : ['archc_main']);
      for (const f of fns) expect({ family, arch, f, spills: usage[f]!.spillStores + usage[f]!.spillLoads }).toEqual({ family, arch, f, spills: 0 });
      if (family === 'ssd') {
        for (const f of ['archc_ssd_cb', 'archc_ssd_states', 'archc_ssd_scan']) {
          const at = ptx.indexOf(`.entry ${f}`);
          const body = ptx.slice(at, ptx.indexOf('.entry', at + 1) >>> 0);
          expect(body, `${f} ${arch}`).toMatch(/wmma\.mma\.sync\.aligned\.\w+\.\w+\.m16n16k8\.f32\.tf32\.tf32\.f32/);
        }
      }
      console.log(`${family} ${arch}: ${fns.map((f) => `${f} ${usage[f]!.registers} registers`).join(', ')}`);
    }
  }, 600_000);

  it('refuses a chunk whose phases need more shared memory than a block may have', () => {
    const T = 2;
    const ins: OpInput[] = [
      { act: new Float32Array(T * 2 * 4), shape: ['T', 2, 4] }, { act: new Float32Array(T * 2), shape: ['T', 2] }, { weight: fromF32(new Float32Array(2), [2], 'f32') },
      { act: new Float32Array(T * 4), shape: ['T', 1, 4] }, { act: new Float32Array(T * 4), shape: ['T', 1, 4] }, { weight: fromF32(new Float32Array(2), [2], 'f32') },
    ];
    const render = (chunk: number) => {
      const { program } = runOp('ssd', ins, { chunk }, T);
      const k = program.entries.forward.kernels.find((x) => x.family === 'ssd')!;
      return () => renderKernel(program, program.entries.forward, k);
    };
    expect(render(1024)).not.toThrow();
    expect(render(2048)).toThrow(/phase ssd_cumsum needs \d+ bytes of shared memory \(chunk 2048\)/);
  });

  const rng = createRng(31);
  const uniform = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next());
  /** The op's inputs over T rows: x, dt in (0.002, 0.1) (softplus'ed, as the op receives it), A with
   *  a slow head (-0.02: the state carries across chunks) and fast ones, B, C, D. */
  function inputs(T: number, H: number, P: number, G: number, N: number): OpInput[] {
    const A = Float32Array.from({ length: H }, (_, h) => (h === 0 ? -0.02 : -0.5 - 7 * rng.next()));
    const weight = (v: Float32Array): OpInput => ({ weight: fromF32(v, [v.length], 'f32') });
    return [
      { act: uniform(T * H * P, -1, 1), shape: ['T', H, P] }, { act: uniform(T * H, 0.002, 0.1), shape: ['T', H] }, weight(A),
      { act: uniform(T * G * N, -1, 1), shape: ['T', G, N] }, { act: uniform(T * G * N, -1, 1), shape: ['T', G, N] }, weight(uniform(H, 0.5, 1.5)),
    ];
  }
  const slotState = (pool: StatePool, slot: number) => new Float32Array(pool.save(slot).slice().buffer);
  /** expectLogitsClose's max |got − ref| (within rtol · (1 + max |ref|)), over 1 + max |ref|. */
  const relative = (got: Float32Array, ref: Float32Array, rtol: number, what: string) => expectLogitsClose(got, ref, rtol, what) / (1 + ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0));

  const CASES = [
    { what: '9B sizes (H 4, P 64, G 1, N 128, chunk 256)', H: 4, P: 64, G: 1, N: 128, chunk: 256, seqs: [230, 40, 300] },
    { what: 'no tile divides (H 6, P 48, G 2, N 40, chunk 40)', H: 6, P: 48, G: 2, N: 40, chunk: 40, seqs: [95, 1, 41] },
  ].map((c) => {
    const T = c.seqs.reduce((a, b) => a + b, 0);
    // the last sequence continues a saved state (100 tokens before)
    const saved = uniform(c.H * c.P * c.N, -1, 1);
    const batch: OpBatch = { seqs: c.seqs, before: c.seqs.map((_, i) => (i === c.seqs.length - 1 ? 100 : 0)), state: (bytes, i) => { expect(bytes).toBe(saved.byteLength); return new Uint8Array(i === c.seqs.length - 1 ? saved.buffer.slice(0) : new ArrayBuffer(bytes)); } };
    return { ...c, T, batch, ins: inputs(T, c.H, c.P, c.G, c.N) };
  });
  const STEP = { H: 4, P: 64, G: 1, N: 128, T: 3 };
  const stepIns = inputs(STEP.T, STEP.H, STEP.P, STEP.G, STEP.N);
  const stepSaved = Array.from({ length: STEP.T }, () => uniform(STEP.H * STEP.P * STEP.N, -1, 1));
  const stepState = (bytes: number, i: number) => { expect(bytes).toBe(stepSaved[i]!.byteLength); return new Uint8Array(stepSaved[i]!.buffer.slice(0)); };

  // SSM states kept in bf16 (runtime/program.ts withSsmState): the same saved states, rounded
  const bf16Bytes = (f32: Float32Array) => {
    const out = new Uint16Array(f32.length);
    roundBf16(new Uint32Array(f32.buffer), out);
    return new Uint8Array(out.buffer);
  };
  const B16 = CASES[1]!;
  const b16Batch: OpBatch = { ...B16.batch, stateDtype: 'bf16', state: (bytes, i) => (i === B16.seqs.length - 1 ? bf16Bytes(new Float32Array(B16.batch.state!(2 * bytes, i).buffer)) : new Uint8Array(bytes)) };
  const b16Step = { mode: 'decode' as const, stateDtype: 'bf16' as const, state: (bytes: number, i: number) => bf16Bytes(new Float32Array(stepState(2 * bytes, i).buffer)) };
  const widen = (b: Uint8Array) => {
    const out = new Float32Array(b.byteLength / 2);
    widenBf16(new Uint16Array(b.buffer, b.byteOffset, out.length), new Uint32Array(out.buffer));
    return out;
  };

  let bin = '';
  beforeAll(async () => {
    const sources = new Map<string, string>();
    for (const c of CASES) for (const [id, s] of programSources(runOp('ssd', c.ins, { chunk: c.chunk }, c.T, c.batch).program)) sources.set(id, s);
    for (const [id, s] of programSources(runOp('ssd', stepIns, {}, STEP.T, { mode: 'decode' }).program)) sources.set(id, s);
    for (const [id, s] of programSources(runOp('ssd', B16.ins, { chunk: B16.chunk }, B16.T, b16Batch).program)) sources.set(id, s);
    for (const [id, s] of programSources(runOp('ssd', stepIns, {}, STEP.T, b16Step).program)) sources.set(id, s);
    bin = await buildEmulator(sources);
  }, 600_000);

  it('packed sequences across chunks, one continuing a saved state, equal the CPU reference within 2e-3 (tf32 products)', () => {
    for (const c of CASES) {
      const ref = runOp('ssd', c.ins, { chunk: c.chunk }, c.T, c.batch);
      const got = runOp('ssd', c.ins, { chunk: c.chunk }, c.T, { ...c.batch, backend: (p) => new EmuCudaBackend(p, bin) });
      const y = relative(got.outputs[0]!, ref.outputs[0]!, 2e-3, `${c.what}: y`);
      const states = c.seqs.map((_, i) => relative(slotState(got.pool, got.slots[i]!), slotState(ref.pool, ref.slots[i]!), 2e-3, `${c.what}: final state of sequence ${i}`));
      console.log(`ssd ${c.what}: max |error| / (1 + max |ref|): y ${y.toExponential(2)}, final states ${states.map((e) => e.toExponential(2)).join(', ')}`);
    }
  });

  it('ssd_step at 9B sizes equals the CPU reference within 1e-5 (f32)', () => {
    const opts = { mode: 'decode' as const, state: stepState };
    const ref = runOp('ssd', stepIns, {}, STEP.T, opts);
    const got = runOp('ssd', stepIns, {}, STEP.T, { ...opts, backend: (p) => new EmuCudaBackend(p, bin) });
    const y = relative(got.outputs[0]!, ref.outputs[0]!, 1e-5, 'ssd_step y');
    const st = got.slots.map((s, i) => relative(slotState(got.pool, s), slotState(ref.pool, ref.slots[i]!), 1e-5, `ssd_step state ${i}`));
    console.log(`ssd_step 9B sizes: max |error| / (1 + max |ref|): y ${y.toExponential(2)}, states ${st.map((e) => e.toExponential(2)).join(', ')}`);
  });

  it('with SSM states kept in bf16: ssd_step\'s y within 1e-5 and its states within a bf16 ulp (95 % equal); the chunked SSD within 2e-3, its states 6e-3', () => {
    const ref = runOp('ssd', stepIns, {}, STEP.T, b16Step);
    const got = runOp('ssd', stepIns, {}, STEP.T, { ...b16Step, backend: (p) => new EmuCudaBackend(p, bin) });
    relative(got.outputs[0]!, ref.outputs[0]!, 1e-5, 'bf16 ssd_step y');
    let n = 0, same = 0;
    got.slots.forEach((slot, i) => {
      const a = new Uint16Array(got.pool.save(slot).slice().buffer), b = new Uint16Array(ref.pool.save(ref.slots[i]!).slice().buffer);
      expect(a.length).toBe(STEP.H * STEP.P * STEP.N);
      for (let j = 0; j < a.length; j++, n++) {
        if (a[j] === b[j]) same++;
        else expect((a[j]! ^ b[j]!) < 0x8000 && Math.abs(a[j]! - b[j]!) === 1, `bf16 ssd_step state ${i} value ${j}: ${a[j]!.toString(16)} against ${b[j]!.toString(16)}`).toBe(true);
      }
    });
    expect(same / n).toBeGreaterThanOrEqual(0.95);
    const cref = runOp('ssd', B16.ins, { chunk: B16.chunk }, B16.T, b16Batch);
    const cgot = runOp('ssd', B16.ins, { chunk: B16.chunk }, B16.T, { ...b16Batch, backend: (p) => new EmuCudaBackend(p, bin) });
    relative(cgot.outputs[0]!, cref.outputs[0]!, 2e-3, 'bf16 chunked y');
    B16.seqs.forEach((_, i) => relative(widen(cgot.pool.save(cgot.slots[i]!)), widen(cref.pool.save(cref.slots[i]!)), 6e-3, `bf16 chunked: final state of sequence ${i}`));
    console.log(`bf16 states: ssd_step ${(100 * same / n).toFixed(2)} % of state values equal to the reference's`);
  });
});
