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
import { type BackwardKernelOf, type Expr, type Kernel, type KernelOf, type View, isView } from '../program.ts';
import { type RowKernels, type Src, Strided, rowKernels, rowKernelsOver } from '../train/f32/rows.ts';
import type { WasmKernels } from './kernels.ts';
import { type Ctx, epilogue } from '../cpu/families.ts';
import { type BackwardTable, CPU_BACKWARD, expertOf, rowsOf } from '../cpu/train.ts';
import { attentionBackward32, attentionForward32 } from '../train/f32/attention.ts';
import { lossF32 } from '../train/f32/engine.ts';
import { type Gemm, wasmGemm } from '../train/f32/gemm.ts';
import { f32 } from '../train/f32/pool.ts';
import { colSums } from '../train/f32/ops.ts';
import { convBackward32 } from '../train/f32/seq.ts';
import { type SsdIn32, ssdBackward32, ssdForward32 } from '../train/f32/ssd.ts';

type F32 = Float32Array;
/** The SSD forward's states entering each chunk, by its operands (ssdKey), until its backward reads them. */
type Kept = Map<string, F32>;
type Impl<F extends BackwardFamily> = (k: BackwardKernelOf<F>, c: Ctx, gm: Gemm, kept: Kept) => void;

/** The SSD's operands x, dt, B, C as places in the arena: the forward's and its backward's are the
 *  same buffers, which the memory plan keeps unchanged until the backward has read them. */
const ssdKey = (k: { inputs: Readonly<Record<string, unknown>> }) =>
  ['x', 'dt', 'B', 'C'].map((n) => { const v = k.inputs[n] as View; return `${v.buf}:${v.col}:${v.width}`; }).join(' ');
type WasmBackwardTable = { readonly [F in BackwardFamily]: Impl<F> };

/** The families whose record here is the CPU's (no wasm kernel for them yet): the rare ones, and
 *  the embedding's scatter-add and rope's inverse rotation, which the f32 engine runs in JS too. */
export const ON_CPU = ['clamp_backward', 'layernorm_backward', 'gelu_backward', 'softmax_backward', 'topk_backward', 'embedding_backward', 'rope_backward'] as const;

const cpu = <F extends BackwardFamily>(f: F): Impl<F> => (k, c) => CPU_BACKWARD[f](k, c);
const ops = (k: Parameters<Ctx['operand']>[0], c: Ctx, names: readonly string[]) => names.map((n) => c.operand(k, n)) as F32[];

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
    put(c, k.outputs.dw!, (into) => gm.dyTx(c.operand(k, 'dy'), rowsOf(k, c, 'x', K), N, c.operand(k, 'x'), K, !!k.attrs.transposed, into));
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
    const r = R.rmsBx(dy, x, null, w, D, D, k.attrs.eps as number);
    c.write(k.outputs.dx!, r.dx);
    c.write(k.outputs.dw!, r.dw);
  },
  rmsnorm_gated_backward(k, c, gm) {
    const R = gm.rows;
    if (!R) return CPU_BACKWARD.rmsnorm_gated_backward(k, c);
    const D = k.sizes.D, gs = D / (k.attrs.groups as number), [x, z, w, dy] = ops(k, c, ['x', 'z', 'w', 'dy']) as [F32, F32, F32, F32];
    // h = x·silu(z) and 1/rms recomputed, then the norm's backward and the gate's
    const r = R.rmsBx(dy, x, z, w, D, gs, k.attrs.eps as number);
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
  ssd_backward(k, c, gm, kept) {
    const { H, P, G, N, chunk } = k.sizes, [x, dt, A, B, C, D, dy] = ops(k, c, ['x', 'dt', 'A', 'B', 'C', 'D', 'dy']) as F32[];
    const s: SsdIn32 = { x: x!, dt: dt!, A: A!, B: B!, C: C!, D: D! }, d = { H, P, G, N }, key = ssdKey(k);
    // the states entering each chunk: kept from this run's forward over the same operands, else
    // recomputed by a chunk-state pass (the arena saves none)
    const entering = kept.get(key) ?? ssdForward32(gm, s, d, chunk, c.seqs, false).entering;
    kept.delete(key);
    const g = ssdBackward32(gm, dy!, s, d, chunk, c.seqs, entering);
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
const ROW_BODIES = new Map<string, (R: RowKernels, ins: Src[], into?: F32) => F32>([
  [exprText({ op: 'add', a: inn('p0'), b: inn('p1') }), (R, [a, b], into) => R.addF(a!, b!, into)],
  [exprText({ op: 'mul', a: inn('p0'), b: inn('p1') }), (R, [a, b], into) => R.mulF(a!, b!, into)],
  [exprText({ op: 'silu', a: inn('p0') }), (R, [x], into) => R.siluF(x!, into)],
  [exprText({ op: 'mul', a: inn('p0'), b: { op: 'mul', a: sig, b: { op: 'add', a: one, b: { op: 'mul', a: inn('p1'), b: { op: 'add', a: one, b: { op: 'neg', a: sig } } } } } }),
    (R, [dy, x], into) => R.siluB(x!, dy!, into)],
]);

/** The operand `name` of an epilogue body `in(name) + x` (the residual add fused into a product), or null. */
function residual(body: Expr): string | null {
  return body.op === 'add' && body.a.op === 'in' && body.b.op === 'x' && !body.b.offset ? body.a.name : null;
}

/** The row kernel of `body` (ROW_BODIES) and its operands' names in order, or null. */
export function rowBody(body: Expr): { names: string[]; run: (R: RowKernels, ins: Src[], into?: F32) => F32 } | null {
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
  put(c, y, (into) => run(R, names.map((n) => src(c, k.inputs[n] as View) ?? c.operand(k, n)), into));
  return true;
}

/** A slice of its buffer's columns where it lies (Ctx.span), else null (`operand` reads it). */
function src(c: Ctx, v: View): Strided | null {
  const s = c.span?.(v);
  return s && (v.col || s.ld !== v.width) ? new Strided(s.data, s.at, s.ld, c.rows(v), v.width) : null;
}

/** The result of `f` into view `v`: computed in the arena where `v` spans its buffer (Ctx.out), else
 *  written. */
function put(c: Ctx, v: View, f: (into?: F32) => F32): void {
  const into = c.out?.(v) ?? undefined, y = f(into);
  if (y !== into) c.write(v, y);
}

/** The wasm backend's table over the Gemm `gm` (the backend's product kernels and the row kernels). */
export function wasmBackward(gm: Gemm, kept: Kept = new Map()): BackwardTable {
  const table = { ...WASM, ...Object.fromEntries(ON_CPU.map((f) => [f, cpu(f)])) } as WasmBackwardTable;
  return Object.fromEntries(Object.entries(table).map(([f, impl]) => [f, (k: BackwardKernelOf<BackwardFamily>, c: Ctx) => (impl as Impl<BackwardFamily>)(k, c, gm, kept)])) as unknown as BackwardTable;
}

/** What the wasm backend runs of the train entry beside its inference families: the backward
 *  table, the products (forward and transposed dX) and the hot elementwise kernels, over one Gemm:
 *  from `open`, every product on the row kernels' memory over threads of their own, as the f32
 *  engine runs them (operands packed in wasm); else the backend's product kernels (packed in JS). */
export class WasmTrain {
  private readonly gm: Gemm;
  readonly table: BackwardTable;
  /** The train entry's forward kernels that ran on the reference families (`runs` declined them):
   *  a family, with its epilogue's stages or an elementwise body (a layer's names without the layer). */
  readonly reference = new Set<string>();
  /** Each SSD forward's entering states until its backward (a later run's forward replaces them
   *  before any backward reads them: the forward kernels come first). */
  private readonly kept: Kept = new Map();

  constructor(kernels: WasmKernels, private readonly rowsOwn: RowKernels | null = rowKernels()) {
    this.gm = wasmGemm(kernels, rowsOwn);
    this.table = wasmBackward(this.gm, this.kept);
  }

  /** The products on the row kernels' memory, split over `kernels.threads` threads of their own
   *  (each panel whole on one thread: the sums do not depend on the count); on the kernels' own
   *  products where those are the memory64 form. */
  static async open(kernels: WasmKernels): Promise<WasmTrain> {
    const { module, shared, memory64 } = kernels.compiled;
    return new WasmTrain(kernels, memory64 ? rowKernels() : shared ? await rowKernelsOver(module, kernels.threads) : rowKernels(module));
  }

  /** The train entry's arena in the row kernels' shared memory (RowKernels.arena: the row kernels and
   *  the products read their operands where they lie and write results in place), or null. */
  arena(floats: number): F32 | null {
    return this.gm.rows?.arena(floats) ?? null;
  }

  /** y = x·W + b, W [K, N] (the dX = dY·W products), on the product kernels over the threads. */
  transposed(x: F32, rows: number, K: number, name: string, w: F32, b: F32 | null): F32 {
    const N = w.length / K;
    if (!Number.isInteger(N) || x.length !== rows * K) throw new RangeError(`linearTransposed: weight ${name} of ${w.length} floats does not match x of ${rows} rows of K=${K}`);
    const y = this.gm.dyW(x, rows, K, w, N, false);
    if (b) for (let r = 0; r < rows; r++) for (let n = 0; n < N; n++) y[r * N + n] += b[n]!;
    return y;
  }

  /** Runs a forward kernel of the train entry on the f32 engine's kernels where they apply; false
   *  where not (the reference family runs it). The train run reads no state slot back, so the conv
   *  and the SSD leave theirs as they are (the inference families write them). */
  runs(k: Kernel, c: Ctx): boolean {
    if (this.run(k, c)) return true;
    this.reference.add(k.family === 'elementwise' ? `elementwise ${exprText(k.body!).replace(/model\.layers\.\d+\./g, '')}` : `${k.family}${k.epilogue?.length ? ` (${k.epilogue.map((e) => e.kind).join(', ')})` : ''}`);
    return false;
  }

  private run(k: Kernel, c: Ctx): boolean {
    const R = this.gm.rows;
    if (!R) return false;
    switch (k.family) {
      case 'elementwise': return rowElementwise(k, c, this.gm);
      case 'copy': return (put(c, k.outputs.y!, (into) => (into ? (into.set(c.operand(k, 'x')), into) : c.operand(k, 'x'))), true);
      case 'matmul': return this.matmul(k, c);
      case 'norm': {
        if (k.attrs.layer || k.sizes.W % k.sizes.D) return false;
        const D = k.sizes.D, gated = !!k.attrs.gated, eps = k.attrs.eps as number;
        put(c, k.outputs.y!, (into) => R.rmsF(c.operand(k, 'x'), gated ? c.operand(k, 'z') : null, c.operand(k, 'w'), D, gated ? D / (k.attrs.groups as number) : D, eps, into).y);
        return true;
      }
      case 'conv': {
        if (k.epilogue?.length) return false;
        const { C, K } = k.sizes, w = c.operand(k, 'w'), wt = new Float32Array(K * C);
        // the taps as rows [K, C] (./seq.ts' layout for the row kernels)
        for (let ch = 0; ch < C; ch++) for (let j = 0; j < K; j++) wt[j * C + ch] = w[ch * K + j]!;
        put(c, k.outputs.y!, (into) => R.convF(c.operand(k, 'x'), wt, k.inputs.b ? c.operand(k, 'b') : null, C, K, c.seqs, into));
        return true;
      }
      case 'ssd': {
        if ((['x', 'dt', 'B', 'C'] as const).some((n) => !isView(k.inputs[n]!) || k.pre?.[n])) return false;
        const { H, P, G, N, chunk } = k.sizes, [x, dt, A, B, C, D] = ops(k, c, ['x', 'dt', 'A', 'B', 'C', 'D']) as F32[];
        const r = ssdForward32(this.gm, { x: x!, dt: dt!, A: A!, B: B!, C: C!, D: D! }, { H, P, G, N }, chunk, c.seqs);
        this.kept.set(ssdKey(k), r.entering);
        c.write(k.outputs.y!, r.y);
        return true;
      }
      default: return false;
    }
  }

  /** A product without a prologue; its epilogue the residual add (x + an operand of its rows) in
   *  one pass, or any other (RoPE) as the reference's stages on its result; false with a prologue. */
  private matmul(k: KernelOf<'matmul'>, c: Ctx): boolean {
    const e = k.epilogue ?? [], xv = k.inputs.x, w = k.inputs.w, K = k.sizes.K, N = k.sizes.N;
    const add = e.length === 1 && e[0]!.kind === 'map' && e[0]!.width === N ? residual(e[0]!.body) : null;
    if (k.prologue?.length || !isView(xv) || !w || !('weight' in w)) return false;
    const other = add ? k.inputs[add] : null, rows = (c.rows(xv) * xv.width) / K;
    if (other && (!isView(other) || other.width !== N || c.rows(other) !== rows)) return false;
    const x = c.operand(k, 'x'), m = c.weight(w.weight), b = k.inputs.b ? c.tensor((k.inputs.b as { weight: string }).weight) : null;
    // the f32 master read as it is stored ([K, N] for a transposed product: dX = dY·W), the result
    // computed in the arena where it can be; else the backend's product
    const product = (into?: F32) => (m.dtype !== 'f32' || m.data.length !== K * N || b ? c.linear(k, x, rows, K, m, b)
      : k.attrs.transposed ? this.gm.dyW(x, rows, K, m.data as F32, N, false, into) : this.gm.xwT(x, rows, K, m.data as F32, N, false, into));
    if (e.length && !add) return (c.write(k.outputs.y!, epilogue(k, c, product(), rows, N)), true);
    put(c, k.outputs.y!, (into) => {
      if (!add) return product(into);
      // the residual add in f32 as the reference rounds it, each element read before its place is
      // written (the operand may be the output's own buffer)
      const y = product(), o = c.operand(k, add), d = into ?? y;
      for (let i = 0; i < y.length; i++) d[i] = y[i]! + o[i]!;
      return d;
    });
    return true;
  }

  /** Ends the row kernels' threads. */
  close(): void {
    this.rowsOwn?.close();
  }
}

/** n floats from the train step's pool (runtime/train/f32/pool.ts; the entry engine runs each step
 *  in one), new ones outside a step: the backend's column copies (CpuBackend.columns). */
export const stepFloats = (n: number): F32 => f32(n, false);

function fail(msg: string): never {
  throw new Error(`archc runtime: ${msg}`);
}
