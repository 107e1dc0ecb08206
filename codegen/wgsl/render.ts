// Renders a kernel program's kernels to WGSL: for each kernel the passes that make it, from the
// templates of templates.ts, specialised to the kernel's sizes, views, fused stages and `pre`
// expressions, once per profile: for GPUs with the workgroup sizes and tiles that `WGSL_TARGET`
// schedules (schedule.ts), for CPU adapters with those of `WGSL_CPU_TARGET` (reduce = invocation: each
// invocation owns whole outputs, so products, norms and epilogues have no barrier).
//
// Memory as the shaders see it: binding `arena` is the entry's activation arena (f32; a T-row buffer
// at offset·T floats, an S-row one at arena.T·T + offset·S); `ints` holds T, S, the slot capacity and
// size, each state's offset in a slot and where the rotary table starts, then tokens, positions, the
// sequence of each row, sequence records, SSD chunk records and the rotary table (cos/sin of each
// token's angles, made on the host: shaders take no sin/cos); `state` is the state pool (slot after
// slot); weights are one binding each, bf16 and f16 kept two per u32 and widened as read. A fused
// kernel runs as a few passes: a prologue (gather, norm) into scratch0, the product into scratch1
// when an epilogue follows, and the epilogue stages from there into the output view.

import { type Entry, type EntryName, type Epilogue, type Kernel, type Program, bf16States, ofFamily } from '../../runtime/program.ts';
import { type KernelShaders, type Pass, type RunCount, type WgslEntry, type WgslProfile, type WgslProgram } from '../../runtime/webgpu/shaders.ts';
import { rotaryTables } from '../../runtime/webgpu/rotary.ts';
import type { DType } from '../../runtime/tensor.ts';
import { QUANT_DTYPES, type QuantDType } from '../../runtime/quant.ts';
import { quantWeights, roundHelpers } from './quant.ts';
import { WGSL_CPU_TARGET, WGSL_TARGET, type WgslTarget, wgslSchedule } from './schedule.ts';
import { Shader, TEMPLATES, lit } from './shader.ts';
import { type Ctx, bf16State, count, elements, fail, flat, flatOut, pass, rowsOf, shader, stage, view, weightName } from './passes.ts';
import { ROUTE_PASSES } from './route.ts';
import { renderOptimizer } from './optim.ts';
import { renderTrain } from './train.ts';
import { windowedAttention } from './window.ts';

/** The target record each profile renders with. */
const TARGETS: Readonly<Record<WgslProfile, WgslTarget>> = { gpu: WGSL_TARGET, cpu: WGSL_CPU_TARGET };

// ---- the families --------------------------------------------------------------------------

function embedding(c: Ctx): Pass[] {
  const { k } = c;
  const ids = k.inputs.ids!;
  if (!('input' in ids)) fail(`${k.name} looks up rows by a computed value; only token ids and positions can index`);
  const y = k.outputs.y!, D = (k.sizes as { D: number }).D, rows = rowsOf(c.entry, y), epi = !!k.epilogue?.length;
  // with an epilogue (a position embedding added, a scale) the rows go through scratch1 and the epilogue pass
  const s = shader(c), w = s.weight(weightName(k, 'w')), v = `${w}(${ids.input === 'tokens' ? 'token' : 'position'}(r) * ${D}u + j)`;
  const body = epi ? `${s.store(s.scratch(1), `r * ${D}u + j`, v)};` : `${s.output(y)}(r, j, ${v});`;
  const lookup = pass('lookup', s, s.render('ELEMENTS', 'lookup', c.header, { wg: c.wg, rows: rows.wgsl, width: D, body }), count(rows.rows, D, c.wg), 1,
    epi ? { scratch: { scratch1: count(rows.rows, D, 1) } } : {});
  return epi ? [lookup, epiloguePass(c, { ...rows, times: 1 }, D)] : [lookup];
}

function elementwise(c: Ctx): Pass[] {
  const { k } = c;
  const y = k.outputs.y!;
  return [elements(c, 'map', rowsOf(c.entry, y), y.width, (s) => {
    const put = s.output(y);
    return `${put}(r, j, ${s.expr(k.body!, () => fail(`${k.name}: an elementwise body reads x`), 'r', 'j')});`;
  })];
}

function copy(c: Ctx): Pass[] {
  const y = c.k.outputs.y!;
  return [elements(c, 'copy', rowsOf(c.entry, y), y.width, (s) => `${s.output(y)}(r, j, ${s.operand('x')}(r, j));`)];
}

function gatherLast(c: Ctx): Pass[] {
  const y = c.k.outputs.y!;
  return [elements(c, 'gather', { wgsl: 'nS()', rows: 'S' }, y.width, (s) => `${s.output(y)}(r, j, ${s.operand('x')}(seqStart(r) + seqLen(r) - 1u, j));`)];
}

function rope(c: Ctx): Pass[] {
  const { k } = c;
  const { H, Dh, R } = k.sizes as { H: number; Dh: number; R: number };
  const y = k.outputs.y!;
  return [elements(c, 'rotate', { wgsl: 'nT()', rows: 'T' }, H * Dh, (s) => {
    const x = flat(s, 'x', view(k, 'x'), H * Dh);
    stage(s, c, { kind: 'rope', col: 0, heads: H, headDim: Dh, rotaryDim: R, theta: k.attrs.theta as number }, 'rotate', x);
    return `${flatOut(s, y, H * Dh)('r', 'j', 'rotate(r, j)')};`;
  })];
}

function norm(c: Ctx): Pass[] {
  const { k } = c;
  const { W, D } = k.sizes as { W: number; D: number };
  const s = shader(c);
  const xv = view(k, 'x');
  const rows = rowsOf(c.entry, xv);
  const x = flat(s, 'x', xv, D);
  const put = flatOut(s, k.outputs.y!, D);
  const w = s.weight(weightName(k, 'w'));
  s.raw('nw', `fn nw(i: u32) -> f32 { return ${w}(i); }`);
  s.raw('put', `fn put(r: u32, i: u32, v: f32) { ${put('r', 'i', 'v')}; }`);
  const eps = lit(k.attrs.eps as number);
  const groups = (k.attrs.groups as number | undefined) ?? 1;
  const own = c.sched.reduce === 'invocation';
  let code: { head: string; body: string };
  if (k.attrs.layer) {
    s.raw('h', `fn h(r: u32, i: u32) -> f32 { return ${x('r', 'i')}; }`);
    const b = k.inputs.b ? `${s.operand('b')}(0u, i)` : '0.0';
    s.raw('nb', `fn nb(i: u32) -> f32 { return ${b}; }`);
    code = s.render(own ? 'LAYER_ROW_OWN' : 'LAYER_ROWS', 'layernorm', c.header, { wg: c.wg, rows: `${rows.wgsl} * ${W / D}u`, width: D, eps });
  } else {
    const z = k.attrs.gated ? flat(s, 'z', view(k, 'z'), D) : null;
    s.raw('h', `fn h(r: u32, i: u32) -> f32 { return ${z ? `${x('r', 'i')} * silu(${z('r', 'i')})` : x('r', 'i')}; }`);
    code = s.render(own ? 'RMS_ROW_OWN' : 'RMS_ROWS', 'rmsnorm', c.header, { wg: c.wg, rows: `${rows.wgsl} * ${W / D}u`, source: 'r', groups, part: D / groups, eps });
  }
  return [pass('norm', s, code, count(rows.rows, W / D, own ? c.wg : 1))];
}

/** Rows of a matrix product: its input rows times (row width / K), or one per sequence after a
 *  gather. */
function productRows(c: Ctx): { wgsl: string; rows: RunCount['rows']; times: number } {
  const { k } = c;
  if (k.prologue?.some((p) => p.kind === 'gather_last')) return { wgsl: 'nS()', rows: 'S', times: 1 };
  const xv = view(k, 'x');
  const r = rowsOf(c.entry, xv);
  const times = xv.width / ofFamily(k, 'matmul').sizes.K;
  return { wgsl: times === 1 ? r.wgsl : `${r.wgsl} * ${times}u`, rows: r.rows, times };
}

function matmul(c: Ctx): Pass[] {
  const { k } = c;
  const { K, N } = k.sizes as { K: number; N: number };
  const sched = c.sched;
  const rows = productRows(c);
  const passes: Pass[] = [];
  const prologue = k.prologue ?? [];
  const gather = prologue.some((p) => p.kind === 'gather_last');
  const norms = prologue.filter((p) => p.kind !== 'gather_last');
  if (norms.length > 1 || (gather && prologue[0]!.kind !== 'gather_last')) fail(`${k.name}: prologue ${prologue.map((p) => p.kind).join(', ')} is not one of gather, norm, gather then norm`);
  const scratchRows = { scratch0: count(rows.rows, rows.times * K, 1) };
  // 1. prologue: the rows the product reads, into scratch0 [rows, K]
  if (prologue.length) {
    const s = shader(c);
    const xv = view(k, 'x');
    const x = flat(s, 'x', xv, K);
    const z = k.inputs.z ? flat(s, 'z', view(k, 'z'), K) : null;
    s.raw('put', `fn put(r: u32, i: u32, v: f32) { ${s.store(s.scratch(0), `r * ${K}u + i`, 'v')}; }`);
    const source = gather ? 'seqStart(r) + seqLen(r) - 1u' : 'r';
    const n = norms[0];
    let code: { head: string; body: string };
    if (!n) {
      code = s.render('ELEMENTS', 'gather', c.header, { wg: c.wg, rows: rows.wgsl, width: K, body: `put(r, j, ${x(source, 'j')});` });
      passes.push(pass('gather', s, code, count(rows.rows, K * rows.times, c.wg), 1, { scratch: scratchRows }));
    } else {
      const groups = n.kind === 'rmsnorm_gated' ? n.groups : 1;
      s.raw('h', `fn h(r: u32, i: u32) -> f32 { return ${n.kind === 'rmsnorm_gated' ? `${x('r', 'i')} * silu(${z!('r', 'i')})` : x('r', 'i')}; }`);
      s.raw('nw', `fn nw(i: u32) -> f32 { return ${s.weight(n.weight)}(i); }`);
      const own = sched.reduce === 'invocation';
      code = s.render(own ? 'RMS_ROW_OWN' : 'RMS_ROWS', n.kind, c.header, { wg: c.wg, rows: rows.wgsl, source, groups, part: K / groups, eps: lit(n.eps) });
      passes.push(pass(n.kind, s, code, count(rows.rows, rows.times, own ? c.wg : 1), 1, { scratch: scratchRows }));
    }
  }
  // 1b. 8-bit activations: the rows rounded per group of 32 into scratch0 (in place after a prologue)
  if (c.a8) {
    const s = shader(c);
    const body = roundHelpers(s, prologue.length ? null : flat(s, 'x', view(k, 'x'), K), K);
    passes.push(pass('round', s, s.render('ELEMENTS', 'round', c.header, { wg: c.wg, rows: rows.wgsl, width: K / 32, body }), count(rows.rows, (K / 32) * rows.times, c.wg), 1, { scratch: scratchRows }));
  }
  const staged = prologue.length > 0 || !!c.a8;
  // 2. the product, into the output or (before an epilogue) scratch1 [rows, N]
  const epi = k.epilogue ?? [];
  const product = (variant: 'MATMUL_TILED' | 'MATMUL_GEMV'): Pass => {
    const s = shader(c);
    // (8-bit activations: a bias bound first, before the weight; the quad reader is wquad, apart from any w<binding>)
    if (c.a8 && k.inputs.b) s.weight(weightName(k, 'b'));
    const xin = staged ? (r: string, i: string) => s.load(s.scratch(0), `${r} * ${K}u + ${i}`) : flat(s, 'x', view(k, 'x'), K);
    const w = s.weight(weightName(k, 'w'));
    s.raw('xin', `fn xin(r: u32, k: u32) -> f32 { return ${xin('r', 'k')}; }`);
    s.raw('wt', `fn wt(n: u32, k: u32) -> f32 { return ${w}(${k.attrs.transposed ? `k * ${N}u + n` : `n * ${K}u + k`}); }`);
    s.raw('bias', `fn bias(n: u32) -> f32 { return ${k.inputs.b ? `${s.weight(weightName(k, 'b'))}(n)` : '0.0'}; }`);
    if (epi.length) {
      s.raw('put', `fn put(r: u32, n: u32, v: f32) { ${s.store(s.scratch(1), `r * ${N}u + n`, 'v')}; }`);
    } else {
      const put = flatOut(s, k.outputs.y!, N);
      s.raw('put', `fn put(r: u32, n: u32, v: f32) { ${put('r', 'n', 'v')}; }`);
    }
    const tile = sched.tile!, lanes = sched.gemv_lanes!, columns = sched.gemv_columns!;
    const scratch = { ...(staged ? scratchRows : {}), ...(epi.length ? { scratch1: count(rows.rows, rows.times * N, 1) } : {}) };
    if (sched.reduce === 'invocation') {
      // each invocation owns 4 x 4 outputs (tiled) or 4 columns of a row (matrix-vector), as vec4s
      if (tile !== 4 || columns !== 4 || lanes !== 1) fail(`${k.name}: a per-invocation product owns 4 x 4 outputs or 4 columns on 1 lane, not tile ${tile}, ${columns} columns on ${lanes}`);
      // wquad(n, k): weights k..k+3 of column n (k a multiple of 4), as two packed pairs where a
      // row-major matrix's rows start at even elements
      // row-major matrix's rows start at even elements; q8/q4 codes (K a multiple of 32) as one
      // word of four codes and one scale
      const quad = s.quantised(weightName(k, 'w')) ? s.weightQuad(weightName(k, 'w')) : '';
      const wp = !quad && !k.attrs.transposed && K % 2 === 0 ? s.weightPair(weightName(k, 'w')) : '';
      const w4 = `fn wquad(n: u32, k: u32) -> vec4<f32> { return ${quad ? `${quad}(n * ${K}u + k)` : wp ? `vec4<f32>(${wp}(n * ${K}u + k), ${wp}(n * ${K}u + k + 2u))` : 'vec4<f32>(wt(n, k), wt(n, k + 1u), wt(n, k + 2u), wt(n, k + 3u))'}; }`;
      if (variant === 'MATMUL_TILED') {
        const code = s.render('MATMUL_TILED_OWN', 'tiled product', c.header, { wg: c.wg, rows: rows.wgsl, rowsPerGroup: 4 * c.wg, colTiles: Math.ceil(N / 4), K, K4: K - (K % 4), N, w4 });
        return pass('tiled product', s, code, count(rows.rows, rows.times, 4 * c.wg), Math.ceil(N / 4), { rowsAbove: sched.gemv_rows!, scratch });
      }
      const colBlocks = Math.ceil(N / 4);
      const code = s.render('MATMUL_GEMV_OWN', 'matrix-vector product', c.header, { wg: c.wg, rows: rows.wgsl, colBlocks, K, K4: K - (K % 4), N, w4 });
      return pass('matrix-vector product', s, code, count(rows.rows, rows.times * colBlocks, c.wg), 1, { rowsAtMost: sched.gemv_rows!, rows: count(rows.rows, rows.times, 1), scratch });
    }
    if (variant === 'MATMUL_TILED') {
      const code = s.render(variant, 'tiled product', c.header, { rows: rows.wgsl, tile, colTiles: Math.ceil(N / tile), K, N });
      return pass('tiled product', s, code, count(rows.rows, rows.times, tile), Math.ceil(N / tile), { rowsAbove: sched.gemv_rows!, scratch });
    }
    const code = s.render(variant, 'matrix-vector product', c.header, { rows: rows.wgsl, lanes, columns, colBlocks: Math.ceil(N / columns), K, N });
    return pass('matrix-vector product', s, code, count(rows.rows, rows.times, 1), Math.ceil(N / columns), { rowsAtMost: sched.gemv_rows!, scratch });
  };
  const fused = c.a8 ? null : fusedGemv(c, rows);
  if (!fused) {
    passes.push(product('MATMUL_GEMV'), product('MATMUL_TILED'));
    if (epi.length) passes.push(epiloguePass(c, rows, N));
    return passes;
  }
  // the matrix-vector path is one pass; the prologue and epilogue passes serve the tiled one alone
  const tiledOnly = (p: Pass): Pass => ({ ...p, rowsAbove: sched.gemv_rows!, rows: count(rows.rows, rows.times, 1) });
  return [...passes.map(tiledOnly), ...fused, product('MATMUL_TILED'), ...(epi.length ? [tiledOnly(epiloguePass(c, rows, N))] : [])];
}

/** At most this many product columns feed one output column of a fused matrix-vector pass. */
const MAX_FUSED_COLUMNS = 4;

/**
 * The matrix-vector product with its prologue and epilogue in one pass, or null where a stage is
 * not row-local enough: the norm reads the whole row (each workgroup reduces it again), and each
 * output column must be a function of a few product columns of the same row (maps read x at fixed
 * offsets, a rotary stage reads the pair's other column, a one-token conv its own channel and the
 * sequence's window, so it may only come last: each output column is computed once).
 */
function fusedGemv(c: Ctx, rows: { wgsl: string; rows: RunCount['rows']; times: number }): Pass[] | null {
  const { k } = c;
  const { K, N } = k.sizes as { K: number; N: number };
  const sched = c.sched;
  const prologue = k.prologue ?? [];
  const epi = k.epilogue ?? [];
  if (!prologue.length && !epi.length) return null;
  if (epi.some((st, i) => st.kind === 'conv_step' && i !== epi.length - 1)) return null;
  const s = shader(c);
  // need(i)(j, m): the m-th column of stage i-1 that stage i reads for its column j
  const fan: number[] = [];
  s.raw('s0', 'fn s0(r: u32, j: u32) -> f32 { return pval(j); }');
  const needs: string[] = ['fn need0(j: u32, m: u32) -> u32 { return j; }'];
  let width = N;
  epi.forEach((st: Epilogue, idx) => {
    const i = idx + 1;
    const { reads: cols } = stage(s, c, st, `s${i}`, (r, j) => `s${i - 1}(${r}, ${j})`);
    if (st.kind === 'map') width = st.width;
    fan.push(cols.length);
    const f = cols.length;
    const choose = cols.reduceRight((acc, col, t) => (t === f - 1 ? col : `select(${acc}, ${col}, m % ${f}u == ${t}u)`), '');
    needs.push(`fn need${i}(j: u32, m: u32) -> u32 { return need${i - 1}(${f === 1 ? cols[0] : choose}, m / ${f}u); }`);
  });
  const M = fan.reduce((a, b) => a * b, 1);
  const normGroups = prologue.find((p) => p.kind !== 'gather_last');
  const G = normGroups?.kind === 'rmsnorm_gated' ? normGroups.groups : 1;
  if (M > MAX_FUSED_COLUMNS || (M + 1) * G > 2 * MAX_FUSED_COLUMNS) return null;
  const last = epi.length;
  s.raw('need', [...needs, `fn need(j: u32, m: u32) -> u32 { return need${last}(j, m); }`].join('\n'));
  const put = flatOut(s, k.outputs.y!, width);
  // the rows the product reads: the norm of x (gathered at each sequence's last row, or not)
  const gather = prologue.some((p) => p.kind === 'gather_last');
  const n = prologue.find((p) => p.kind !== 'gather_last');
  const x = flat(s, 'x', view(k, 'x'), K);
  let groups = 1;
  if (n) {
    groups = n.kind === 'rmsnorm_gated' ? n.groups : 1;
    const z = n.kind === 'rmsnorm_gated' ? flat(s, 'z', view(k, 'z'), K) : null;
    s.raw('h', `fn h(r: u32, i: u32) -> f32 { return ${z ? `${x('r', 'i')} * silu(${z('r', 'i')})` : x('r', 'i')}; }`);
    s.raw('nw', `fn nw(i: u32) -> f32 { return ${s.weight(n.weight)}(i); }`);
  } else {
    s.raw('xin', `fn xin(r: u32, k: u32) -> f32 { return ${x('r', 'k')}; }`);
  }
  const w = s.weight(weightName(k, 'w'));
  s.raw('wt', `fn wt(n: u32, k: u32) -> f32 { return ${w}(${k.attrs.transposed ? `k * ${N}u + n` : `n * ${K}u + k`}); }`);
  s.raw('bias', `fn bias(n: u32) -> f32 { return ${k.inputs.b ? `${s.weight(weightName(k, 'b'))}(n)` : '0.0'}; }`);
  const sourceOf = (r: string) => (gather ? `seqStart(${r}) + seqLen(${r}) - 1u` : r);
  const source = sourceOf('r');
  if (sched.reduce === 'invocation') {
    // each invocation owns `cols` output columns o, each needing M product columns m, of R rows q:
    // scalars a{q}_{o}_{m} unrolled here, so one read of a weight serves every row of the batch and
    // one read of a row's k-th value every column. Two passes: one row (R = 1, gemv_columns_one
    // columns), and up to gemv_rows rows in one invocation (gemv_columns columns; rows past the
    // batch read its last row and are not stored).
    // reads at k..k+3 as one vec4 where each norm group's length allows; weights of a row-major
    // matrix with even K as two packed pairs (k and the row's start are then even)
    const vec = (K / groups) % 4 === 0;
    const paired = vec && !k.attrs.transposed && K % 2 === 0;
    // q8/q4 codes: four at a time from one word (k and the row's start are multiples of 4)
    const quad = paired && s.quantised(weightName(k, 'w')) ? s.weightQuad(weightName(k, 'w')) : '';
    const wp = paired && !quad ? s.weightPair(weightName(k, 'w')) : '';
    const vec4 = (read: (k: string) => string) => (vec ? `vec4<f32>(${[0, 1, 2, 3].map((d) => read(d ? `k + ${d}u` : 'k')).join(', ')})` : read('k'));
    const fields = (R: number, cols: number) => {
      const colBlocks = Math.ceil(width / cols);
      const pairs = Array.from({ length: cols }, (_, o) => Array.from({ length: M }, (_, m) => [o, m] as const)).flat();
      const weights = (o: number, m: number) => (quad ? `${quad}(c${o}_${m} * ${K}u + k)` : paired ? `vec4<f32>(${wp}(c${o}_${m} * ${K}u + k), ${wp}(c${o}_${m} * ${K}u + k + 2u))` : vec4((kk) => `wt(c${o}_${m}, ${kk})`));
      const qs = Array.from({ length: R }, (_, q) => q);
      const lines = (f: (q: number) => string[], indent: string) => qs.flatMap(f).map((l) => indent + l).join('\n');
      const finish = qs.map((q) => [
        `  if (rb + ${q}u < ${rows.wgsl}) {`,
        `    let r = r${q};`,
        ...Array.from({ length: cols }, (_, o) => [
          ...Array.from({ length: M }, (_, m) => `    pc[${m}] = need(n${o}, ${m}u);\n    pv[${m}] = select(v${q}_${o}_${m} + bias(c${o}_${m}), 0.0, pc[${m}] >= ${N}u);`),
          `    if (nb + ${o}u < ${width}u) { ${put('r', `n${o}`, `s${last}(r, n${o})`)}; }`,
        ]).flat(),
        '  }',
      ].join('\n')).join('\n');
      return {
        wg: c.wg, M, cols, colBlocks, R, rows: rows.wgsl, norm: !!n, groups, part: K / groups, eps: n ? lit(n.eps) : '0.0', step: vec ? 4 : 1,
        columns: [
          ...qs.map((q) => `  let r${q} = min(rb + ${q}u, ${rows.wgsl} - 1u);\n  let src${q} = ${sourceOf(`r${q}`)};`),
          ...Array.from({ length: cols }, (_, o) => `  let n${o} = min(nb + ${o}u, ${width - 1}u);`),
          ...pairs.map(([o, m]) => `  let c${o}_${m} = min(need(n${o}, ${m}u), ${N - 1}u);`),
          lines((q) => pairs.map(([o, m]) => `var v${q}_${o}_${m} = 0.0;`), '  '),
        ].join('\n'),
        zero: lines((q) => [`var ss${q} = 0.0;`, ...pairs.map(([o, m]) => `var a${q}_${o}_${m} = 0.0;`)], '    '),
        load: [
          ...pairs.map(([o, m]) => `      let w${o}_${m} = ${weights(o, m)};`),
          lines((q) => (n
            ? [`let hv${q} = ${vec4((kk) => `h(src${q}, ${kk})`)};`, `ss${q} += dot(hv${q}, hv${q});`, `let xv${q} = nwv * hv${q};`]
            : [`let xv${q} = ${vec4((kk) => `xin(src${q}, ${kk})`)};`]), '      '),
        ].join('\n'),
        nwv: vec && n ? `vec4<f32>(${s.weightPair(n.weight)}(k), ${s.weightPair(n.weight)}(k + 2u))` : vec4((kk) => `nw(${kk})`),
        accumulate: lines((q) => pairs.map(([o, m]) => `a${q}_${o}_${m} += ${vec ? `dot(xv${q}, w${o}_${m})` : `xv${q} * w${o}_${m}`};`), '      '),
        gather: lines((q) => [`let inv${q} = ${n ? `inverseSqrt(ss${q} / ${K / groups}.0 + ${lit(n.eps)})` : '1.0'};`, ...pairs.map(([o, m]) => `v${q}_${o}_${m} += a${q}_${o}_${m} * inv${q};`)], '    '),
        finish,
      };
    };
    const one = fields(1, sched.gemv_columns_one ?? sched.gemv_columns!), batch = fields(sched.gemv_rows!, sched.gemv_columns!);
    const product = count(rows.rows, rows.times, 1);
    const groupsOf = (f: { colBlocks: number }) => count(rows.rows, rows.times * f.colBlocks, c.wg);
    return [
      pass('fused matrix-vector product', s, s.render('MATMUL_GEMV_FUSED_OWN', 'fused matrix-vector product', c.header, one), groupsOf(one), 1, { rowsAtMost: 1, rows: product }),
      pass('fused matrix-vector product', s, s.render('MATMUL_GEMV_FUSED_OWN', 'fused matrix-vector product', c.header, batch), groupsOf(batch), 1, { rowsAbove: 1, rowsAtMost: sched.gemv_rows!, rows: product }),
    ];
  }
  const lanes = sched.gemv_lanes!, columns = sched.gemv_columns!;
  const code = s.render('MATMUL_GEMV_FUSED', 'fused matrix-vector product', c.header, {
    M, slots: n ? (M + 1) * groups : M, lanes, columns, colBlocks: Math.ceil(width / columns), rows: rows.wgsl, K, N, W: width,
    norm: !!n, groups, part: K / groups, eps: n ? lit(n.eps) : '0.0', source, store: put('r', 'n', `s${last}(r, n)`),
  });
  return [pass('fused matrix-vector product', s, code, count(rows.rows, rows.times, 1), Math.ceil(width / columns), { rowsAtMost: sched.gemv_rows!, rows: count(rows.rows, rows.times, 1) })];
}

/** The epilogue stages over result rows [rows, width] in scratch1: each stage's row goes from one
 *  scratch buffer to the other (scratch1, scratch2, scratch1, …), the last stage's into the output
 *  view; a stage runs once per column (a conv_step moves its window on). */
function epiloguePass(c: Ctx, rows: { wgsl: string; rows: RunCount['rows']; times: number }, width: number): Pass {
  const { k } = c;
  const s = shader(c);
  const y = k.outputs.y!;
  const stages = k.epilogue ?? [];
  let cur = { buf: s.scratch(1), width };
  let maxWidth = width;
  const blocks: string[] = [];
  // a workgroup shares each row (stages apart by barriers), or one invocation owns it (a CPU adapter)
  const own = c.sched.reduce === 'invocation';
  const loop = own ? { lane: '0u', step: 1, barrier: '' } : { lane: 'li', step: c.wg, barrier: 'storageBarrier();' };
  stages.forEach((st: Epilogue, i) => {
    const src = cur;
    stage(s, c, st, `s${i + 1}`, (r, j) => s.load(src.buf, `${r} * ${src.width}u + ${j}`));
    const out = st.kind === 'map' ? st.width : src.width;
    const value = `s${i + 1}(r, j)`;
    let store: string;
    if (i === stages.length - 1) {
      store = flatOut(s, y, out)('r', 'j', value);
    } else {
      cur = { buf: s.scratch(src.buf === 'scratch1' ? 2 : 1), width: out };
      store = s.store(cur.buf, `r * ${out}u + j`, value);
    }
    maxWidth = Math.max(maxWidth, out);
    blocks.push(TEMPLATES.STAGE({ ...loop, width: out, store }));
  });
  const code = s.render(own ? 'EPILOGUE_OWN' : 'EPILOGUE', 'epilogue', c.header, { wg: c.wg, rows: rows.wgsl, stages: blocks.join('\n') });
  return pass('epilogue', s, code, count(rows.rows, rows.times, own ? c.wg : 1), 1, {
    scratch: { scratch1: count(rows.rows, rows.times * maxWidth, 1), scratch2: count(rows.rows, rows.times * maxWidth, 1) },
  });
}

function conv(c: Ctx): Pass[] {
  const { k } = c;
  const { C, K } = k.sizes as { C: number; K: number };
  if (K < 2) fail(`${k.name}: a causal conv of ${K} tap has no window to carry`);
  const s = shader(c);
  const state = s.state();
  s.operand('x');
  s.operand('w');
  const bias = k.inputs.b ? `${s.operand('b')}(0u, c)` : '0.0';
  const epi = k.epilogue ?? [];
  if (epi.length) s.raw('put', `fn put(r: u32, c: u32, v: f32) { ${s.store(s.scratch(1), `r * ${C}u + c`, 'v')}; }`);
  else s.output(k.outputs.y!);
  const code = s.render('CONV', 'conv', c.header, { wg: c.wg, C, taps: K, taps1: K - 1, state, bias });
  const rows = rowsOf(c.entry, view(k, 'x'));
  const passes = [pass('conv', s, code, count('S', C, c.wg), 1, epi.length ? { scratch: { scratch1: count(rows.rows, C, 1) } } : {})];
  if (epi.length) passes.push(epiloguePass(c, { ...rows, times: 1 }, C));
  return passes;
}

function ssdOperands(s: Shader): void {
  for (const n of ['x', 'dt', 'A', 'B', 'C', 'D']) s.operand(n);
}

function ssdStep(c: Ctx): Pass[] {
  const { k } = c;
  const { H, P, G, N } = k.sizes as { H: number; P: number; G: number; N: number };
  const s = shader(c);
  const state = s.state();
  ssdOperands(s);
  s.output(k.outputs.y!);
  const code = s.render('SSD_SCAN', 'scan', c.header, { wg: c.wg, H, P, N, hpg: H / G, state, bf16: c.bf16State === true });
  return [pass('scan', s, code, count('S', H * P, c.wg))];
}

function ssd(c: Ctx): Pass[] {
  const { k } = c;
  const { H, P, G, N, chunk } = k.sizes as { H: number; P: number; G: number; N: number; chunk: number };
  const lanes = c.sched.chunk_lanes!;
  const Q = chunk;
  const scratch = { scratch0: count('chunks', H * P * N, 1), scratch1: count('chunks', H, 1), scratch2: count('chunks', G * Q * Q, 1) };
  const one = (template: 'SSD_SCORES' | 'SSD_CHUNK' | 'SSD_PASS' | 'SSD_PASS_BF16' | 'SSD_OUT', name: string, groups: RunCount, wg: number): Pass => {
    const s = shader(c);
    ssdOperands(s);
    s.output(k.outputs.y!);
    s.scratch(0);
    s.scratch(1);
    s.scratch(2);
    const state = template.startsWith('SSD_PASS') ? s.state() : '';
    const code = s.render(template, name, c.header, {
      wg, lanes, H, P, N, G, HPN: H * P * N, HPN2: (H * P * N) / 2, hpg: H / G, Q, QQ: Q * Q, GQQ: G * Q * Q,
      chunks: 'seqField(nS() - 1u, 4u) + seqField(nS() - 1u, 5u)', state,
    });
    return pass(name, s, code, groups, 1, { scratch });
  };
  return [
    one('SSD_SCORES', 'chunk scores', count('chunks', G * Q * Q, c.wg), c.wg),
    one('SSD_CHUNK', 'chunk states', count('chunks', H, 1), lanes),
    c.bf16State ? one('SSD_PASS_BF16', 'state passing', count('S', (H * P * N) / 2, c.wg), c.wg) : one('SSD_PASS', 'state passing', count('S', H * P * N, c.wg), c.wg),
    one('SSD_OUT', 'state output', count('T', H * P, c.wg), c.wg),
  ];
}

function attention(c: Ctx): Pass[] {
  const { k } = c;
  if (k.attrs.window) return windowedAttention(c, k.attrs.window as number);
  const { H, KV, Dh } = k.sizes as { H: number; KV: number; Dh: number };
  const append = shader(c);
  const appendState = append.state();
  append.operand('k');
  append.operand('v');
  const a = append.render('KV_APPEND', 'kv append', c.header, { wg: c.wg, row: KV * Dh, state: appendState });
  const s = shader(c);
  const state = s.state();
  s.operand('q');
  s.output(k.outputs.y!);
  const appendPass = pass('kv append', append, a, count('T', KV * Dh, c.wg));
  const scale = lit(k.attrs.scale as number);
  if (k.family === 'attention') {
    // prefill: flash-style, `rows` rows x the group's heads per workgroup, K/V tiles of `keys` rows
    const { rows, keys } = c.sched as { rows: number; keys: number };
    const group = H / KV;
    if (rows * group > 256) fail(`${k.name}: ${group} query heads per KV head make a workgroup of ${rows * group} invocations; WebGPU allows 256`);
    const code = s.render('FLASH_ATTENTION', 'flash attention', c.header, { wg: rows * group, rows, keys, tileFloats: keys * Dh, KV, Dh, group, row: KV * Dh, scale, state });
    return [appendPass, pass('flash attention', s, code, count('T', 1, rows), KV)];
  }
  const code = s.render('ATTENTION', 'attention', c.header, { wg: 64, H, Dh, group: H / KV, row: KV * Dh, scale, state });
  return [appendPass, pass('attention', s, code, count('T', H, 64))];
}

const FAMILIES: Readonly<Record<Kernel['family'], (c: Ctx) => Pass[]>> = {
  embedding, matmul, norm, elementwise, copy, gather_last: gatherLast, rope, conv, conv_step: conv,
  ssd, ssd_step: ssdStep, attention, attention_decode: attention, ...ROUTE_PASSES,
};

/** Every kernel of every entry of `program` as WGSL passes, once per profile. */
export function renderProgram(program: Program): WgslProgram {
  const dtypes = new Map<string, { dtype: DType | QuantDType; length: number }>();
  for (const w of [...program.weights, ...program.derived]) dtypes.set(w.name, { dtype: w.dtype, length: w.shape.reduce((a, b) => a * b, 1) });
  const header = 5 + program.states.length;
  const rotary = rotaryTables(program);
  const quantisable = quantWeights(program), bf16 = bf16States(program);
  const profile = (target: WgslTarget): Record<EntryName, WgslEntry> => {
    const entries = {} as Record<EntryName, WgslEntry>;
    for (const [name, entry] of Object.entries(program.entries) as [EntryName, Entry][]) {
      const chunks = new Set(entry.kernels.filter((k) => k.family === 'ssd').map((k) => k.sizes.chunk));
      if (chunks.size > 1) fail(`entry ${name} has chunked scans of different chunk lengths (${[...chunks].join(', ')})`);
      const kernels: KernelShaders[] = entry.kernels.map((k) => {
        const sched = wgslSchedule(k, target);
        const passes = FAMILIES[k.family]({ k, entry, dtypes, header, rotary, sched, wg: sched.workgroup, bf16State: bf16State(k, bf16) });
        // a weight the load may quantise: the kernel's passes again per format, reading codes
        const w = k.inputs.w;
        if (!w || !('weight' in w) || !quantisable.has(w.weight) || (k.family !== 'embedding' && (k.family !== 'matmul' || k.attrs.transposed))) return { kernel: k.name, passes };
        const variants = (a8: boolean) => Object.fromEntries(QUANT_DTYPES.map((f) => {
          const d = new Map(dtypes);
          d.set(w.weight, { dtype: f, length: dtypes.get(w.weight)!.length });
          return [f, FAMILIES[k.family]({ k, entry, dtypes: d, header, rotary, sched, wg: sched.workgroup, a8 })];
        })) as Record<QuantDType, Pass[]>;
        // and a product's once more per format for 8-bit activations (LoadOptions.activations 'q8')
        return { kernel: k.name, passes, quant: { weight: w.weight, passes: variants(false), ...(k.family === 'matmul' ? { a8: variants(true) } : {}) } };
      });
      entries[name] = { kernels, chunk: [...chunks][0] ?? 0 };
    }
    return entries;
  };
  const train = (target: WgslTarget) => renderTrain(program, target, { dtypes, header, rotary }, (c) => FAMILIES[c.k.family](c)); // train.ts
  return { format: 'archc-wgsl/5', header, rotary, profiles: { gpu: profile(TARGETS.gpu), cpu: profile(TARGETS.cpu) }, ...(bf16.length ? { bf16States: bf16 } : {}),
    ...(program.train ? { train: { gpu: train(TARGETS.gpu), cpu: train(TARGETS.cpu) }, optimizer: renderOptimizer(program) } : {}) };
}

