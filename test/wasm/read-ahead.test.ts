// The product kernels' loads ahead of the weights switched by the flag in their memory
// (runtime/wasm/layout.ts READ_AHEAD_FLAG), and the backend's choice of it (runtime/wasm/read-ahead.ts).
// Each kernel that reads ahead (the bf16 widening tile at 8 rows, q4's integer-dot GEMV, q4's integer
// GEMM over 8-bit activations) runs on a weight that ends the memory: with the flag set its loads
// ahead go past the end and trap; cleared, the kernel reads nothing past the weight and gives the
// same bits as with the flag set where the weight has room after it.

import { beforeAll, describe, expect, it } from 'vitest';
import { wasmKernels } from '../../codegen/wasm/assemble.ts';
import { WASM_TARGETS } from '../../codegen/wasm/target.ts';
import { READ_AHEAD_FLAG } from '../../runtime/wasm/layout.ts';
import { WasmKernels } from '../../runtime/wasm/kernels.ts';
import { chooseReadAhead } from '../../runtime/wasm/read-ahead.ts';
import { wasmModule } from '../../runtime/wasm/module.ts';
import { prng } from '../runtime/cpu/check.ts';

let fma: WebAssembly.Module;
beforeAll(async () => { fma = await wasmModule(await wasmKernels(WASM_TARGETS[0]!)); });

const PAGES = 4, END = PAGES * 65536, X = 4096, Y = 32768, S = 65536, ROOM = 3 * 65536;
type Product = (x: number, w: number, y: number, T: number, K: number, ldy: number, p0: number, p1: number, s: number) => void;

/** [kernel, rows, K, panels, bytes of the weight]: bf16 [8, 64] (one panel of 64 × 8 × 2 bytes), q4 [32, 64] (four panels of 2 groups of 144 bytes). */
const CASES = [['gemm_bf16', 8, 64, 1, 1024], ['dot_q4', 1, 64, 4, 1152], ['gemm8_q4', 8, 64, 4, 1152]] as const;

describe('the loads ahead of the weights, switched in the memory', () => {
  for (const [name, T, K, panels, bytes] of CASES) {
    it(`${name}: set, they read past a weight ending the memory; cleared, none, and the same bits`, () => {
      const memory = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES, shared: true });
      const ex = new WebAssembly.Instance(fma, { env: { memory } }).exports as Record<string, unknown>;
      const product = ex[name] as Product;
      const u8 = new Uint8Array(memory.buffer), rand = prng(5);
      // x (f32 rows as tiles, or digits / 8-bit tiles: any bytes give some sums) and the weight's bytes,
      // bf16 and f16 scales kept finite (their exponent's top bit clear)
      for (let i = X; i < Y; i++) u8[i] = Math.floor(rand() * 256) & (i % 2 ? 0x3f : 0xff);
      const weight = Uint8Array.from({ length: bytes }, (_, i) => Math.floor(rand() * 256) & (i % 2 ? 0x3f : 0xff));
      const flag = (on: boolean) => { new Int32Array(memory.buffer, READ_AHEAD_FLAG, 1)[0] = on ? 1 : 0; };
      const run = (at: number): Uint32Array => {
        u8.fill(0, Y, S);
        product(X, at, Y, T, K, 8 * panels, 0, panels, S);
        return new Uint32Array(memory.buffer.slice(Y, Y + 4 * T * 8 * panels));
      };
      u8.set(weight, END - bytes);
      u8.set(weight, ROOM);
      flag(true);
      expect(() => run(END - bytes)).toThrow(WebAssembly.RuntimeError);
      const want = run(ROOM);
      expect(want.some((v) => v !== 0)).toBe(true);
      flag(false);
      expect([...run(END - bytes)]).toEqual([...want]);
      expect([...run(ROOM)]).toEqual([...want]);
    });
  }
});

describe('chooseReadAhead', () => {
  /** A clock that makes a pass with the loads ahead take `on` ms and one without `off`, and the
   *  ways of the passes it saw (each pass reads it at its start, then at its end). */
  function clockOf(wk: WasmKernels, on: number, off: number): { clock: () => number; passes: boolean[] } {
    const passes: boolean[] = [];
    let now = 0, started = false;
    const clock = () => {
      if (started) { passes.push(wk.readAhead); now += wk.readAhead ? on : off; }
      started = !started;
      return now;
    };
    return { clock, passes };
  }
  /** `mb` MB of [2048, 1024] bf16 weights of zeros (only their size is timed). */
  const packed = (wk: WasmKernels, mb: number) => Array.from({ length: Math.round(mb * 2 ** 20 / 2 ** 22) }, () => wk.pack({ dtype: 'bf16', shape: [2048, 1024], data: new Uint16Array(2048 * 1024) }));

  it('keeps the faster way, alternating three passes each, and the loads ahead where it is within 3 %', () => {
    const wk = new WasmKernels(fma, 1);
    try {
      const weights = packed(wk, 72);
      for (const [on, off, want] of [[30, 20, false], [20, 30, true], [30, 29.5, true]] as const) {
        const { clock, passes } = clockOf(wk, on, off);
        const choice = chooseReadAhead(wk, weights, undefined, clock);
        expect(passes).toEqual([true, false, true, false, true, false]);
        expect(choice.readAhead, `on ${on} ms, off ${off} ms`).toBe(want);
        expect(wk.readAhead).toBe(want);
        expect(choice.timed).toMatchObject({ on, off });
        expect(new Int32Array(wk.memory.buffer, READ_AHEAD_FLAG, 1)[0]).toBe(want ? 1 : 0);
      }
    } finally {
      wk.close();
    }
  });

  it('times nothing below 64 MB of weights that read ahead, or where the option says', () => {
    const wk = new WasmKernels(fma, 1);
    try {
      wk.readAhead = false;
      const { clock, passes } = clockOf(wk, 30, 20);
      expect(chooseReadAhead(wk, packed(wk, 8), undefined, clock)).toEqual({ readAhead: true });
      expect(passes).toEqual([]);
      expect(chooseReadAhead(wk, [], false)).toEqual({ readAhead: false });
      expect(new Int32Array(wk.memory.buffer, READ_AHEAD_FLAG, 1)[0]).toBe(0);
    } finally {
      wk.close();
    }
  });

  it('a memory added later takes the flag as it stands', () => {
    // memories of 2 MiB: [256, 1024] bf16 weights of 512 KiB fill memory 0, then new ones
    const wk = new WasmKernels(fma, 1, 2 ** 21);
    try {
      wk.readAhead = false;
      for (let i = 0; i < 8; i++) wk.pack({ dtype: 'bf16', shape: [256, 1024], data: new Uint16Array(256 * 1024) });
      const mems = (wk as unknown as { mems: { list: { memory: WebAssembly.Memory }[] } }).mems.list;
      expect(mems.length).toBeGreaterThan(1);
      for (const m of mems) expect(new Int32Array(m.memory.buffer, READ_AHEAD_FLAG, 1)[0]).toBe(0);
    } finally {
      wk.close();
    }
  });
});
