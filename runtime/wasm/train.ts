// The wasm backend's implementation of the train entry's own families (runtime/families.ts
// BACKWARD_FAMILIES), one record per family as the CPU's BackwardTable (runtime/cpu/train.ts), over
// the f32 training engine's kernels (runtime/train/f32/): matmul_wgrad and the small products of
// attention and the SSD on the wasm product kernels (a Gemm over the backend's WasmKernels: the large
// ones split by panels over its threads, so the sums do not depend on the thread count), as are the
// experts' backward's products per expert; the norms' and the conv's backwards on the engine's row
// kernels (WebAssembly SIMD); attention and the SSD in the engine's block form; the loss as the
// engine computes it. The families listed in ON_CPU have no wasm kernel yet and run the CPU's
// record (said here, pinned by test/grad/train-entry-wasm.test.ts).
// The train entry's forward kernels are not in the program module (runtime/wasm/plan.ts places the
// inference entries'): its products run on the wasm product kernels, its hot elementwise bodies on
// the row kernels (rowElementwise), the rest of its stages on the reference families.
// runTrain (runtime/cpu/train.ts) runs the train entry on either backend.

import type { BackwardFamily } from '../families.ts';
import { exprText, mapExpr } from '../expr.ts';
import { type BackwardKernelOf, type Expr, type Kernel, type KernelOf, isView } from '../program.ts';
import { type RowKernels, rowKernels } from '../train/f32/rows.ts';
import type { WasmKernels } from './kernels.ts';
import type { Ctx } from '../cpu/families.ts';
import { type BackwardTable, CPU_BACKWARD, expertOf, rowsOf } from '../cpu/train.ts';
import { attentionBackward32, attentionForward32 } from '../train/f32/attention.ts';
import { lossF32 } from '../train/f32/engine.ts';
import { type Gemm, wasmGemm } from '../train/f32/gemm.ts';
import { colSums } from '../train/f32/ops.ts';
import { convBackward32 } from '../train/f32/seq.ts';
import { type SsdIn32, ssdBackward32, ssdForward32 } from '../train/f32/ssd.ts';

type F32 = Float32Array;
type Impl<F extends BackwardFamily> = (k: BackwardKernelOf<F>, c: Ctx, gm: Gemm) => void;
type WasmBackwardTable = { readonly [F in BackwardFamily]: Impl<F> };

/** The families whose record here is the CPU's (no wasm kernel for them yet): the rare ones, and
 *  the embedding's scatter-add and rope's inverse rotation, which the f32 engine runs in JS too. */
export const ON_CPU = ['clamp_backward', 'layernorm_backward', 'gelu_backward', 'softmax_backward', 'topk_backward', 'embedding_backward', 'rope_backward'] as const;

const cpu = <F extends BackwardFamily>(f: F): Impl<F> => (k, c) => CPU_BACKWARD[f](k, c);
const ops = (k: BackwardKernelOf<BackwardFamily>, c: Ctx, names: readonly string[]) => names.map((n) => c.operand(k, n)) as F32[];

const attnDims = (k: BackwardKernelOf<'attention_train' | 'attention_backward'>, c: Ctx) =>
  ({ T: c.T, ...k.sizes, scale: k.attrs.scale as number, window: (k.attrs.window as number | undefined) ?? 0 });

const WASM: Omit<WasmBackwardTable, (typeof ON_CPU)[number]> = {
  causal_lm_loss(k, c) {
    const labels = c.labels ?? fail(`${k.name} needs the batch's labels`);
    const r = lossF32(c.operand(k, 'logits'), c.T, k.sizes.V, labels, true);
    c.write(k.outputs.loss!, Float32Array.of(r.loss, r.tokens));
    c.write(k.outputs.dlogits!, r.dlogits!);
  },
  matmul_wgrad(k, c, gm) {
    const { K, N } = k.sizes;
    c.write(k.outputs.dw!, gm.dyTx(c.operand(k, 'dy'), rowsOf(k, c, 'x', K), N, c.operand(k, 'x'), K, !!k.attrs.transposed));
  },
  reduce_rows(k, c) {
    const x = c.operand(k, 'x'), N = k.sizes.N;
    c.write(k.outputs.y!, colSums(x, x.length / N, N));
  },
  rmsnorm_backward(k, c, gm) {
    const R = gm.rows;
    if (!R) return CPU_BACKWARD.rmsnorm_backward(k, c);
    const D = k.sizes.D, [x, w, dy] = ops(k, c, ['x', 'w', 'dy']) as [F32, F32, F32];
    // 1/rms recomputed from the saved input (the train entry saves none)
    const r = R.rmsB(dy, x, R.rmsF(x, null, w, D, D, k.attrs.eps as number).inv, w, D, D, null);
    c.write(k.outputs.dx!, r.dx);
    c.write(k.outputs.dw!, r.dw);
  },
  rmsnorm_gated_backward(k, c, gm) {
    const R = gm.rows;
    if (!R) return CPU_BACKWARD.rmsnorm_gated_backward(k, c);
    const D = k.sizes.D, gs = D / (k.attrs.groups as number), [x, z, w, dy] = ops(k, c, ['x', 'z', 'w', 'dy']) as [F32, F32, F32, F32];
    // h = x·silu(z) and 1/rms recomputed, then the norm's backward and the gate's
    const f = R.rmsF(x, z, w, D, gs, k.attrs.eps as number);
    const r = R.rmsB(dy, f.h!, f.inv, w, D, gs, { x, z });
    c.write(k.outputs.dx!, r.dx);
    c.write(k.outputs.dz!, r.dz!);
    c.write(k.outputs.dw!, r.dw);
  },
  conv_backward(k, c, gm) {
    const { C, K } = k.sizes, [x, w, dy] = ops(k, c, ['x', 'w', 'dy']) as [F32, F32, F32];
    const r = convBackward32(gm.rows, x, w, dy, C, K, c.seqs);
    c.write(k.outputs.dx!, r.dx);
    c.write(k.outputs.dw!, r.dw);
    c.write(k.outputs.db!, r.db);
  },
  attention_train(k, c, gm) {
    const [q, kk, v] = ops(k, c, ['q', 'k', 'v']) as [F32, F32, F32];
    const r = attentionForward32(gm, q, kk, v, attnDims(k, c), c.seqs);
    c.write(k.outputs.y!, r.y);
    c.write(k.outputs.lse!, r.lse);
  },
  attention_backward(k, c, gm) {
    const [q, kk, v, y, lse, dy] = ops(k, c, ['q', 'k', 'v', 'y', 'lse', 'dy']) as [F32, F32, F32, F32, F32, F32];
    const r = attentionBackward32(gm, dy, q, kk, v, y, lse, attnDims(k, c), c.seqs);
    c.write(k.outputs.dq!, r.dq);
    c.write(k.outputs.dk!, r.dk);
    c.write(k.outputs.dv!, r.dv);
  },
  // per expert, its chosen rows gathered: [a b] = X·W_inᵀ and u = dY·W_out on the product kernels, the
  // SwiGLU's backward per element, then dX = [da db]·W_in, dW_in = [da db]ᵀ·X and dW_out = (g·dY)ᵀ·h
  experts_backward(k, c, gm) {
    const { E, H, I, K } = k.sizes, [x, idx, gates, wIn, wOut, dy] = ops(k, c, ['x', 'idx', 'gates', 'w_in', 'w_out', 'dy']) as F32[];
    const T = x!.length / H, chosen: number[][] = Array.from({ length: E }, () => []);
    for (let q = 0; q < T * K; q++) chosen[expertOf(idx![q]!, E, Math.floor(q / K))]!.push(q);
    const dx = new Float32Array(T * H), dg = new Float32Array(T * K), dwIn = new Float32Array(E * 2 * I * H), dwOut = new Float32Array(E * H * I);
    chosen.forEach((qs, e) => {
      const n = qs.length, xe = new Float32Array(n * H), dye = new Float32Array(n * H), dab = new Float32Array(n * 2 * I), gh = new Float32Array(n * I);
      if (!n) return;
      qs.forEach((q, r) => { const t = Math.floor(q / K); xe.set(x!.subarray(t * H, (t + 1) * H), r * H); dye.set(dy!.subarray(t * H, (t + 1) * H), r * H); });
      const wi = wIn!.subarray(e * 2 * I * H, (e + 1) * 2 * I * H), wo = wOut!.subarray(e * H * I, (e + 1) * H * I);
      const ab = gm.xwT(xe, n, H, wi, 2 * I, false), u = gm.dyW(dye, n, H, wo, I, false);
      qs.forEach((q, r) => {
        const g = gates![q]!;
        let dgq = 0;
        for (let i = 0; i < I; i++) {
          const a = ab[r * 2 * I + i]!, b = ab[r * 2 * I + I + i]!, ui = u[r * I + i]!, sg = 1 / (1 + Math.exp(-a)), h = a * sg * b, dh = g * ui;
          dgq += h * ui;
          gh[r * I + i] = g * h;
          dab[r * 2 * I + i] = dh * b * sg * (1 + a * (1 - sg));
          dab[r * 2 * I + I + i] = dh * a * sg;
        }
        dg[q] = dgq;
      });
      const dxe = gm.dyW(dab, n, 2 * I, wi, H, false);
      qs.forEach((q, r) => { for (let col = 0, o = Math.floor(q / K) * H; col < H; col++) dx[o + col] += dxe[r * H + col]!; });
      dwIn.set(gm.dyTx(dab, n, 2 * I, xe, H, false), e * 2 * I * H);
      dwOut.set(gm.dyTx(dye, n, H, gh, I, false), e * H * I);
    });
    c.write(k.outputs.dx!, dx);
    c.write(k.outputs.dgates!, dg);
    c.write(k.outputs.dw_in!, dwIn);
    c.write(k.outputs.dw_out!, dwOut);
  },
  ssd_backward(k, c, gm) {
    const { H, P, G, N, chunk } = k.sizes, [x, dt, A, B, C, D, dy] = ops(k, c, ['x', 'dt', 'A', 'B', 'C', 'D', 'dy']) as F32[];
    const s: SsdIn32 = { x: x!, dt: dt!, A: A!, B: B!, C: C!, D: D! }, d = { H, P, G, N };
    // the states entering each chunk, recomputed by a chunk-state pass (the train entry saves none)
    const g = ssdBackward32(gm, dy!, s, d, chunk, c.seqs, ssdForward32(gm, s, d, chunk, c.seqs, false).entering);
    c.write(k.outputs.dx!, g.x);
    c.write(k.outputs.ddt!, g.dt);
    c.write(k.outputs.dA!, g.A);
    c.write(k.outputs.dB!, g.B);
    c.write(k.outputs.dC!, g.C);
    c.write(k.outputs.dD!, g.D);
  },
};

const inn = (name: string): Expr => ({ op: 'in', name });
const one: Expr = { op: 'const', value: 1 };
const sig: Expr = { op: 'sigmoid', a: inn('p1') };
/** The train entry's hot elementwise bodies (the cotangent sums, products, SiLU and its derivative
 *  as compiler/vjp.ts writes it), their operands named p0, p1 in order of first appearance, and the
 *  row kernel that computes each (runtime/train/f32/rows.ts). */
const ROW_BODIES = new Map<string, (R: RowKernels, ins: F32[]) => F32>([
  [exprText({ op: 'add', a: inn('p0'), b: inn('p1') }), (R, [a, b]) => R.addF(a!, b!)],
  [exprText({ op: 'mul', a: inn('p0'), b: inn('p1') }), (R, [a, b]) => R.mulF(a!, b!)],
  [exprText({ op: 'silu', a: inn('p0') }), (R, [x]) => R.siluF(x!)],
  [exprText({ op: 'mul', a: inn('p0'), b: { op: 'mul', a: sig, b: { op: 'add', a: one, b: { op: 'mul', a: inn('p1'), b: { op: 'add', a: one, b: { op: 'neg', a: sig } } } } } }),
    (R, [dy, x]) => R.siluB(x!, dy!)],
]);

/** The row kernel of `body` (ROW_BODIES) and its operands' names in order, or null. */
export function rowBody(body: Expr): { names: string[]; run: (R: RowKernels, ins: F32[]) => F32 } | null {
  const names: string[] = [];
  const canon = mapExpr(body, (l) => (l.op === 'in' ? inn(`p${names.includes(l.name) ? names.indexOf(l.name) : names.push(l.name) - 1}`) : l));
  const run = ROW_BODIES.get(exprText(canon));
  return run ? { names, run } : null;
}

/** An elementwise kernel of the train entry on the row kernels where its body is one of ROW_BODIES
 *  over operands of its output's shape (no `pre`); false where not (the reference family runs it). */
export function rowElementwise(k: KernelOf<'elementwise'>, c: Ctx, gm: Gemm): boolean {
  const R = gm.rows, y = k.outputs.y!, body = k.body && rowBody(k.body);
  if (!R || !body) return false;
  const { names, run } = body;
  if (names.some((n) => { const o = k.inputs[n]; return !o || !isView(o) || k.pre?.[n] || o.width !== y.width || c.rows(o) !== c.rows(y); })) return false;
  c.write(y, run(R, names.map((n) => c.operand(k, n))));
  return true;
}

/** The wasm backend's table over the Gemm `gm` (the backend's product kernels and the row kernels). */
export function wasmBackward(gm: Gemm): BackwardTable {
  const table = { ...WASM, ...Object.fromEntries(ON_CPU.map((f) => [f, cpu(f)])) } as WasmBackwardTable;
  return Object.fromEntries(Object.entries(table).map(([f, impl]) => [f, (k: BackwardKernelOf<BackwardFamily>, c: Ctx) => (impl as Impl<BackwardFamily>)(k, c, gm)])) as unknown as BackwardTable;
}

/** What the wasm backend runs of the train entry beside its inference families: the backward
 *  table, the transposed dX products and the hot elementwise kernels, over one Gemm (the backend's
 *  product kernels and threads, the f32 engine's row kernels). */
export class WasmTrain {
  private readonly gm: Gemm;
  readonly table: BackwardTable;

  constructor(kernels: WasmKernels) {
    this.gm = wasmGemm(kernels, rowKernels());
    this.table = wasmBackward(this.gm);
  }

  /** y = x·W + b, W [K, N] (the dX = dY·W products), on the product kernels over the threads. */
  transposed(x: F32, rows: number, K: number, name: string, w: F32, b: F32 | null): F32 {
    const N = w.length / K;
    if (!Number.isInteger(N) || x.length !== rows * K) throw new RangeError(`linearTransposed: weight ${name} of ${w.length} floats does not match x of ${rows} rows of K=${K}`);
    const y = this.gm.dyW(x, rows, K, w, N, false);
    if (b) for (let r = 0; r < rows; r++) for (let n = 0; n < N; n++) y[r * N + n] += b[n]!;
    return y;
  }

  /** Runs an elementwise kernel on the row kernels where rowElementwise can; false where not. */
  rows(k: Kernel, c: Ctx): boolean {
    return k.family === 'elementwise' && rowElementwise(k, c, this.gm);
  }
}

function fail(msg: string): never {
  throw new Error(`archc runtime: ${msg}`);
}
