// runtime/wasm/threads.ts in Node: the kernel module rewritten for an unshared memory (only the
// memory import's shared bit changes, and it computes the same products), imports of every kind
// walked, how many threads run for what a thread may do, and workers started and awaited.

import { beforeAll, describe, expect, it } from 'vitest';
import { assemble, wasmKernels } from '../../../codegen/wasm/assemble.ts';
import { startThreads, threadSupport, threadsHere, unsharedModule } from '../../../runtime/wasm/threads.ts';

let bytes: Uint8Array;
beforeAll(async () => { bytes = await wasmKernels(); });

const memory = (shared: boolean) => new WebAssembly.Memory({ initial: 4, maximum: 65536, shared });
const mod = (b: Uint8Array) => new WebAssembly.Module(b as Uint8Array<ArrayBuffer>);

interface Gemm { gemm_f32(x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number): void }

/** y = x·W for T=5 rows, K=7, one panel of 8 columns, in `mem` (x at 0, w at 4096, y at 8192). */
function product(m: WebAssembly.Module, mem: WebAssembly.Memory): Float32Array {
  const ex = new WebAssembly.Instance(m, { env: { memory: mem } }).exports as unknown as Gemm;
  const f = new Float32Array(mem.buffer);
  for (let i = 0; i < 8 * 7; i++) f[i] = Math.sin(i + 1); // x tiles [2][7][4] (rows past 5 unread)
  for (let i = 0; i < 7 * 8; i++) f[1024 + i] = Math.cos(3 * i);
  ex.gemm_f32(0, 4096, 8192, 5, 7, 8, 0, 1);
  return f.slice(2048, 2048 + 5 * 8);
}

describe('unsharedModule', () => {
  it('changes only the memory import\'s shared bit, and the module then takes an unshared memory', () => {
    const out = unsharedModule(bytes);
    const changed = [...out.keys()].filter((i) => out[i] !== bytes[i]);
    expect(changed.length).toBe(1);
    expect(bytes[changed[0]!]! & 2).toBe(2);
    expect(out[changed[0]!]).toBe(bytes[changed[0]!]! & ~2);
    expect(() => new WebAssembly.Instance(mod(bytes), { env: { memory: memory(false) } })).toThrow(WebAssembly.LinkError);
    expect(() => new WebAssembly.Instance(mod(out), { env: { memory: memory(true) } })).toThrow(WebAssembly.LinkError);
    const got = product(mod(out), memory(false)), want = product(mod(bytes), memory(true));
    expect(got.some((v) => v !== 0)).toBe(true);
    expect([...got]).toEqual([...want]);
  });

  it('walks imports of every kind before the memory', async () => {
    const b = await assemble('(module (import "a" "f" (func (param i32))) (import "a" "t" (table 3 10 funcref)) (import "a" "g" (global (mut i32))) (import "env" "memory" (memory 1 300 shared)))');
    const m = mod(unsharedModule(b));
    const imports = { a: { f: () => {}, t: new WebAssembly.Table({ initial: 3, maximum: 10, element: 'anyfunc' }), g: new WebAssembly.Global({ value: 'i32', mutable: true }, 0) } };
    expect(() => new WebAssembly.Instance(m, { ...imports, env: { memory: new WebAssembly.Memory({ initial: 1, maximum: 300 }) } })).not.toThrow();
    expect(() => new WebAssembly.Instance(mod(b), { ...imports, env: { memory: new WebAssembly.Memory({ initial: 1, maximum: 300 }) } })).toThrow(WebAssembly.LinkError);
  });

  it('refuses what is not a module', () => {
    expect(() => unsharedModule(new Uint8Array([1, 2, 3, 4, 1, 0, 0, 0]))).toThrow(/not a WebAssembly module/);
  });
});

describe('threads', () => {
  it('run as asked only where this thread can share memory, wait and start workers', () => {
    const all = { shared: true, canBlock: true, canSpawn: true };
    expect(threadSupport()).toEqual(all); // Node
    expect(threadsHere(3, all)).toBe(3);
    expect(threadsHere(3, { ...all, canBlock: false })).toBe(1); // a browser's main thread
    expect(threadsHere(3, { ...all, shared: false, canBlock: false })).toBe(1); // no cross-origin isolation
    expect(threadsHere(3, { ...all, canSpawn: false })).toBe(1);
  });

  it('start, run their program and report ready before startThreads resolves', async () => {
    const sab = new SharedArrayBuffer(8);
    const main = `({ sab, i }, ready) => { Atomics.store(new Int32Array(sab), i, 40 + i); ready(); }`;
    const t = await startThreads(main, [{ sab, i: 0 }, { sab, i: 1 }]);
    expect(t.count).toBe(2);
    expect([...new Int32Array(sab)]).toEqual([40, 41]);
    t.close();
  });

  it('reject when a thread fails before it is ready', async () => {
    await expect(startThreads(`() => { throw new Error('no module'); }`, [{}])).rejects.toThrow(/no module/);
  });
});
