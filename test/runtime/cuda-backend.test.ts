// The CUDA backend without a GPU: its error paths (no driver library, cuInit failing, no device, a
// module the driver rejects, a package without kernels), and its own code — koffi's bindings, the
// weights streamed to device memory, weight tables, the state pool, launches with the ABI's packed
// arguments — against a stand-in libcuda (test/helpers/fake-cuda/libcuda.c) over host memory; and a
// model loaded with q4 weights: codes and scales on the device, launched from the q4 sources.

import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { lowerToProgram } from '../../compiler/lower.ts';
import { renderProgram } from '../../codegen/cuda/build.ts';
import { runEntry } from '../../runtime/backend.ts';
import { ARGS_INTS_AT, ARGS_VIEW_AT, ARGS_VIEWS, kernelOffsets, kernelWeights, launchesOf, quantDeviceBytes, quantMatrix } from '../../runtime/cuda/abi.ts';
import { CudaBackend, openCudaBackend } from '../../runtime/cuda/backend.ts';
import { openDriver } from '../../runtime/cuda/driver.ts';
import type { CudaKernels, CudaLaunchPlan, CudaManifest } from '../../runtime/cuda/kernels.ts';
import { RuntimeError } from '../../runtime/errors.ts';
import { Model } from '../../runtime/model.ts';
import { type EntryName, type Kernel, withSsmState } from '../../runtime/program.ts';
import { quantize } from '../../runtime/quant.ts';
import { toF32 } from '../../runtime/tensor.ts';
import { compileTiny, makeDir, randomTensors, removeDir, writeCheckpoint } from '../helpers/checkpoints.ts';
import { type FakeCuda, PHASES, fakeCuda, fakeKernels as fakeKernelsOf, moduleFunctions, withPhases } from '../helpers/fake-cuda.ts';

const compiled = compileTiny();
const program = lowerToProgram(compiled.graph, compiled.bindings);
const tensors = randomTensors(compiled, { dtype: 'bf16', seed: 5 });
const rendered = renderProgram(program);
const ids = [...new Set(rendered.map((k) => k.id))].sort();

const fakeKernels = (image?: string): CudaKernels => fakeKernelsOf(rendered, image);

async function rejects(p: Promise<unknown>, code: string, ...texts: RegExp[]): Promise<RuntimeError> {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(e, `expected ${code}`).toBeInstanceOf(RuntimeError);
  expect((e as RuntimeError).code).toBe(code);
  for (const t of texts) expect((e as RuntimeError).message).toMatch(t);
  return e as RuntimeError;
}

describe('the CUDA backend', () => {
  let lib = '';
  let fake: FakeCuda;
  beforeAll(async () => {
    fake = await fakeCuda();
    lib = fake.lib;
  }, 60_000);
  afterEach(() => {
    delete process.env.FAKE_CUDA_INIT;
    delete process.env.FAKE_CUDA_DEVICES;
  });

  it('without a driver library: RT700 naming libcuda and the driver', async () => {
    await rejects(openDriver('/nonexistent/libcuda.so.1'), 'RT700', /libcuda\.so\.1/, /NVIDIA GPU and its driver/);
    // and through Model.load, before any weight is read
    const dir = makeDir();
    try {
      writeCheckpoint(dir);
      await rejects(Model.loadProgram(program, dir, { backend: 'cuda', cuda: { library: '/nonexistent/libcuda.so.1', kernels: fakeKernels() } }), 'RT700', /libcuda/);
    } finally {
      removeDir(dir);
    }
  });

  it('SSM states kept in bf16 load with kernels rendered for them; kernels of the other format are refused (RT705)', async () => {
    const bf16 = withSsmState(program, 'bf16');
    const dir = makeDir();
    try {
      writeCheckpoint(dir, {}, { tensors });
      await rejects(Model.loadProgram(bf16, dir, { backend: 'cuda', cuda: { library: lib, kernels: fakeKernels() } }),
        'RT705', /its kernels keep the SSM states in f32, the program in bf16/);
      const own = renderProgram(bf16);
      await rejects(Model.loadProgram(program, dir, { backend: 'cuda', cuda: { library: lib, kernels: fakeKernelsOf(own, undefined, [0]) } }),
        'RT705', /its kernels keep the SSM states in bf16, the program in f32/);
      const states = bf16.states.flatMap((st, i) => (st.dtype === 'bf16' ? [i] : []));
      expect(states.length).toBeGreaterThan(0);
      const m = await Model.loadProgram(bf16, dir, { backend: 'cuda', cuda: { library: lib, kernels: fakeKernelsOf(own, undefined, states) } });
      m.dispose();
    } finally {
      removeDir(dir);
    }
  });

  it('cuInit failing: RT701 with the CUDA error name', async () => {
    process.env.FAKE_CUDA_INIT = '100';
    await rejects(openCudaBackend(program, { library: lib, kernels: fakeKernels() }), 'RT701', /CUDA_ERROR_NO_DEVICE \(100\)/, /libcuda/);
  });

  it('no device: RT702', async () => {
    process.env.FAKE_CUDA_DEVICES = '0';
    await rejects(openCudaBackend(program, { library: lib, kernels: fakeKernels() }), 'RT702', /reports 0 devices/);
  });

  it('a module the driver rejects: RT703 naming the module, its kernels and the CUDA error', async () => {
    const e = await rejects(openCudaBackend(program, { library: lib, kernels: fakeKernels('FAIL') }), 'RT703', /cuda\/sm_90\/module0\.cubin/, /CUDA_ERROR_INVALID_IMAGE \(200\)/, /Fake GPU \(sm_90\)/);
    expect(e.message).toMatch(/kernels [\w.:+]+, .* and \d+ more\)/);
  });

  it('a missing function: RT703 naming the kernel', async () => {
    const image = moduleFunctions(rendered, ids.slice(1));
    await rejects(openCudaBackend(program, { library: lib, kernels: fakeKernels(image) }), 'RT703', new RegExp(`archc_\\w+_${ids[0]}`), /CUDA_ERROR_NOT_FOUND/);
  });

  it('no module for the device and no NVRTC: RT705 naming the architecture', async () => {
    const k = fakeKernels();
    const other: CudaKernels = { ...k, manifest: { ...k.manifest, archs: ['sm_80'], modules: k.manifest.modules.map((m) => ({ ...m, arch: 'sm_80' })) } };
    const driver = await openDriver(lib);
    expect(() => new CudaBackend(program, { driver, kernels: other })).toThrow(/RT705.*sm_90.*--cuda-arch sm_90/s);
    // PTX of an older architecture is loaded instead
    const ptx: CudaKernels = { ...other, manifest: { ...other.manifest, modules: other.manifest.modules.map((m) => ({ ...m, kind: 'ptx' as const })) } };
    new CudaBackend(program, { driver, kernels: ptx }).dispose();
  });

  it('streams weights to the device, keeps state slots there, and launches every kernel with the ABI\'s arguments', async () => {
    const b = await openCudaBackend(program, { library: lib, kernels: fakeKernels() });
    try {
      expect(b.arch).toBe('sm_90');
      expect(b.deviceName).toBe('Fake GPU');
      for (const w of program.weights) b.uploadWeight(w, tensors.find((t) => t.name === w.name)!.tensor);
      expect(b.complete()).toBe(true);

      // state slots: fresh ones are zero; copy, save and restore move bytes between them
      const pool = b.createStatePool(16);
      const [s0, s1] = [pool.acquire(), pool.acquire()];
      expect(pool.save(s0).every((x) => x === 0)).toBe(true);
      const bytes = Uint8Array.from({ length: pool.slotBytes }, (_, i) => (i * 7) & 255);
      pool.restore(s0, bytes);
      pool.copy(s0, s1);
      expect(pool.save(s1)).toEqual(bytes);

      const before = fake.launches();
      const T = 5;
      const batch = { tokens: Int32Array.from([1, 2, 3, 4, 5]), positions: Int32Array.from([0, 1, 2, 0, 1]), seqs: [{ start: 0, len: 3 }, { start: 3, len: 2 }], slots: [s0, s1], lengths: [0, 0] };
      const entry = program.entries.prefill;
      runEntry(b, program, 'prefill' as EntryName, batch, pool);
      const plan = (k: Kernel) => rendered.find((r) => r.entry === 'prefill' && r.name === k.name && r.format === 'bf16')!.launch;
      const launched = entry.kernels.flatMap((k) => launchesOf(entry, k, plan(k), T, 2).map((l) => ({ k, l })));
      expect(fake.launches() - before).toBe(launched.length);

      // the last launch: its function, grid and packed ArchcArgs as the kernel receives them
      const { k, l } = launched[launched.length - 1]!;
      const name = new Uint8Array(128), dims = new Uint32Array(6), args = new Uint8Array(1024);
      fake.last(name, dims, args);
      const id = rendered.find((r) => r.entry === 'prefill' && r.name === k.name && r.format === 'bf16')!.id;
      expect(new TextDecoder().decode(name.subarray(0, name.indexOf(0)))).toBe(`${l.fn}_${id}`);
      expect([...dims]).toEqual([...l.grid, ...l.block]);
      const dv = new DataView(args.buffer);
      expect([dv.getInt32(ARGS_INTS_AT, true), dv.getInt32(ARGS_INTS_AT + 4, true), dv.getInt32(ARGS_INTS_AT + 8, true)]).toEqual([T, 2, 16]);
      const off = kernelOffsets(program, entry, k, T, 2, 16);
      expect(off.views.map((_, i) => Number(dv.getBigInt64(ARGS_VIEW_AT + 8 * i, true)))).toEqual(off.views);
      expect(off.states.map((_, i) => Number(dv.getBigInt64(ARGS_VIEW_AT + 8 * (ARGS_VIEWS + i), true)))).toEqual(off.states);
      // tokens and slots on the device, through the pointers in the arguments
      const driver = b.driver;
      const read = (ptr: bigint, n: number) => { const out = new Int32Array(n); driver.cuMemcpyDtoH(new Uint8Array(out.buffer), ptr, 4 * n); return [...out]; };
      expect(read(dv.getBigUint64(3 * 8, true), T)).toEqual([1, 2, 3, 4, 5]);
      expect(read(dv.getBigUint64(8 * 8, true), 2)).toEqual([s0, s1]);
      // the kernel's weight table: its first weight, as stored (bf16 for a product's matrix)
      const slots = kernelWeights(k);
      const table = new BigUint64Array(slots.length);
      driver.cuMemcpyDtoH(new Uint8Array(table.buffer), dv.getBigUint64(2 * 8, true), 8 * slots.length);
      const w = slots[0]!;
      const src = tensors.find((t) => t.name === w.name)?.tensor;
      if (src) {
        const n = Math.min(64, src.data.length);
        if (w.dtype === 'bf16') {
          const got = new Uint16Array(n);
          driver.cuMemcpyDtoH(new Uint8Array(got.buffer), table[0]!, 2 * n);
          expect([...got]).toEqual([...(src.data as Uint16Array).subarray(0, n)]);
        } else {
          const got = new Float32Array(n);
          driver.cuMemcpyDtoH(new Uint8Array(got.buffer), table[0]!, 4 * n);
          expect([...got]).toEqual([...toF32(src).subarray(0, n)]);
        }
      }
    } finally {
      b.dispose();
    }
  });

  it('a kernel of phases: each phase\'s function launched in order with its grid and shared bytes; the workspace its plan asks', async () => {
    const ks = fakeKernels().manifest.entries.prefill;
    const last = ks[ks.length - 1]!;
    const phases = PHASES;
    const phased = (plan: Partial<CudaLaunchPlan> = {}) => withPhases(fakeKernels(), 'prefill', plan);
    const b = await openCudaBackend(program, { library: lib, kernels: phased() });
    try {
      for (const w of program.weights) b.uploadWeight(w, tensors.find((t) => t.name === w.name)!.tensor);
      const pool = b.createStatePool(4);
      const slots = [pool.acquire(), pool.acquire()];
      const batch = { tokens: Int32Array.from([1, 2, 3, 4, 5]), positions: Int32Array.from([0, 1, 2, 0, 1]), seqs: [{ start: 0, len: 3 }, { start: 3, len: 2 }], slots, lengths: [0, 0] };
      const entry = program.entries.prefill;
      const before = fake.launches();
      runEntry(b, program, 'prefill' as EntryName, batch, pool);
      const plan = (k: Kernel) => rendered.find((r) => r.entry === 'prefill' && r.name === k.name && r.format === 'bf16')!.launch;
      const single = entry.kernels.slice(0, -1).reduce((n, k) => n + launchesOf(entry, k, plan(k), 5, 2).length, 0);
      expect(fake.launches() - before).toBe(single + 2);
      const name = new Uint8Array(128), dims = new Uint32Array(6), args = new Uint8Array(1024);
      fake.last(name, dims, args);
      expect(new TextDecoder().decode(name.subarray(0, name.indexOf(0)))).toBe(`archc_two_${last.id}`);
      expect([...dims]).toEqual([2, 1, 1, 128, 1, 1]);
      // the workspace pointer, and room for the plan's floats at T = 5, S = 2
      const dv = new DataView(args.buffer);
      expect(dv.getBigUint64(9 * 8, true)).toBe(b.scratch.ptr);
      expect(b.scratch.bytes).toBeGreaterThanOrEqual(4 * (1000 + 7 * 5 + 5 * 2));
    } finally {
      b.dispose();
    }
    // more dynamic shared memory than a block may have: the driver refuses, the error names the kernel
    const big = await openCudaBackend(program, { library: lib, kernels: phased({ phases: [phases[0], { ...phases[1], shared: 300 * 1024 }] }) });
    try {
      for (const w of program.weights) big.uploadWeight(w, tensors.find((t) => t.name === w.name)!.tensor);
      const pool = big.createStatePool(4);
      const batch = { tokens: Int32Array.from([1, 2]), positions: Int32Array.from([0, 1]), seqs: [{ start: 0, len: 2 }], slots: [pool.acquire()], lengths: [0] };
      expect(() => runEntry(big, program, 'prefill' as EntryName, batch, pool)).toThrow(new RegExp(`cuFuncSetAttribute\\(${last.name} archc_two, 307200 bytes`));
    } finally {
      big.dispose();
    }
  });

  it('loads a q4 model: codes and scales on the device, the products launched from their q4 sources', async () => {
    const dir = makeDir();
    try {
      const { tensors: written } = writeCheckpoint(dir);
      const m = await Model.loadProgram(program, dir, { backend: 'cuda', quantize: 'q4', cuda: { library: lib, kernels: fakeKernels() } });
      try {
        expect([...new Set(m.quantization!.formats.values())]).toEqual(['q4']);
        const before = fake.launches();
        const { states } = m.prefill([[1, 2, 3]]);
        m.decode([4], states);
        expect(fake.launches()).toBeGreaterThan(before);
        // the last launch: decode's last product (the head, tied to the embedding) in its q4 GEMV
        const entry = program.entries.decode;
        const index = entry.kernels.length - 1;
        const k = entry.kernels[index]!;
        expect(quantMatrix(k)).not.toBeNull();
        const q4 = rendered.find((r) => r.entry === 'decode' && r.index === index && r.format === 'q4')!;
        const name = new Uint8Array(128), dims = new Uint32Array(6), args = new Uint8Array(1024);
        fake.last(name, dims, args);
        expect(new TextDecoder().decode(name.subarray(0, name.indexOf(0)))).toBe(`archc_gemv_${q4.id}`);
        // its weight table's slot 0: the codes, then the f16 scales, as the host quantised them
        const driver = await openDriver(lib);
        const table = new BigUint64Array(1);
        driver.cuMemcpyDtoH(new Uint8Array(table.buffer), new DataView(args.buffer).getBigUint64(2 * 8, true), 8);
        const w = kernelWeights(k, 'q4')[0]!;
        expect(w.dtype).toBe('q4');
        const q = quantize(written.find((t) => t.name === w.name)!.tensor, 'q4');
        if ('reason' in q) throw new Error(q.reason);
        const want = quantDeviceBytes(q.q);
        const got = new Uint8Array(want.length);
        driver.cuMemcpyDtoH(got, table[0]!, got.length);
        expect(Buffer.compare(got, want)).toBe(0);
      } finally {
        m.dispose();
      }
      // a package without q4 sources refuses a q4 load
      const old = fakeKernels();
      const bare: CudaKernels = { ...old, manifest: { ...old.manifest, entries: Object.fromEntries(Object.entries(old.manifest.entries).map(([e, ks]) => [e, ks.map(({ formats: _, ...mk }) => mk)])) as unknown as CudaManifest['entries'] } };
      await rejects(Model.loadProgram(program, dir, { backend: 'cuda', quantize: 'q4', cuda: { library: lib, kernels: bare } }), 'RT171', /q4/);
    } finally {
      removeDir(dir);
    }
  });

  it('loads a q4 model with 8-bit activations: the products launched from their q4a8 sources; a package without them: RT303', async () => {
    const dir = makeDir();
    try {
      writeCheckpoint(dir);
      const m = await Model.loadProgram(program, dir, { backend: 'cuda', quantize: 'q4', activations: 'q8', cuda: { library: lib, kernels: fakeKernels() } });
      try {
        expect(m.quantization!.activations).toBe('q8');
        const { states } = m.prefill([[1, 2, 3]]);
        m.decode([4], states);
        // the last launch: decode's head in its q4a8 GEMV
        const index = program.entries.decode.kernels.length - 1;
        const a8 = rendered.find((r) => r.entry === 'decode' && r.index === index && r.format === 'q4a8')!;
        const name = new Uint8Array(128), dims = new Uint32Array(6), args = new Uint8Array(1024);
        fake.last(name, dims, args);
        expect(new TextDecoder().decode(name.subarray(0, name.indexOf(0)))).toBe(`archc_gemv_${a8.id}`);
      } finally {
        m.dispose();
      }
      const old = fakeKernels();
      const strip = (f: Record<string, string> | undefined) => (f ? Object.fromEntries(Object.entries(f).filter(([k]) => !k.endsWith('a8'))) : f);
      const bare: CudaKernels = { ...old, manifest: { ...old.manifest, entries: Object.fromEntries(Object.entries(old.manifest.entries).map(([e, ks]) => [e, ks.map((mk) => ({ ...mk, formats: strip(mk.formats) }))])) as unknown as CudaManifest['entries'] } };
      await rejects(Model.loadProgram(program, dir, { backend: 'cuda', quantize: 'q4', activations: 'q8', cuda: { library: lib, kernels: bare } }), 'RT303', /8-bit activations/);
    } finally {
      removeDir(dir);
    }
  });
});
