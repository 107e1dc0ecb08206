// AdamW on the device after the train entry (runtime/train/optim.ts is the oracle; runtime/webgpu/optim.ts
// runs these passes): the gradients' squared global norm in two passes (partial sums of PART floats,
// then one invocation sums them, compensated), which also takes the loss, the clip factor
// min(1, clip / (norm + 1e-6)) and whether the step is finite (nothing is updated when it is not);
// then one update pass over every float of the constant region that is a parameter (its kind: 1, or 2
// when it decays), reading its gradient and writing its master and moments in f32. The masters sit
// at their gradients' offsets, so a float's gradient, master and moments share one index. Derived
// weights an expression makes (−exp(A_log)) are computed from the masters by a pass each; the host
// copies masters and derived values into the weights' buffers. No barrier, no atomics: one rendering
// for both profiles.

import type { Program } from '../../runtime/program.ts';
import { type BindingKind, OPTIM_SCALARS, type Pass, type WgslOptimizer, bindingName } from '../../runtime/webgpu/shaders.ts';
import { count } from './passes.ts';
import { wgslExpr } from './shader.ts';

const WG = 64;
/** Floats each invocation of the norm's first pass sums. */
const PART = 256;
const BINDINGS: readonly BindingKind[] = ['arena', 'ints', 'optim'];

/** The optimizer of `program`'s train entry (undefined without one). */
export function renderOptimizer(program: Program): WgslOptimizer | undefined {
  const entry = program.train;
  if (!entry) return undefined;
  const size = entry.arena.C ?? 0;
  const at = (v: { buf: number; col: number }) => entry.buffers[v.buf]!.offset + v.col;
  const params = program.weights.map((w) => {
    const v = entry.outputs[`grad:${w.name}`] ?? fail(`the train entry has no gradient of ${w.name}`);
    return { name: w.name, at: at(v), length: v.width };
  });
  const master = new Map(params.map((p) => [p.name, p]));
  const partials = Math.ceil(size / PART);
  const scalars = 4 * size + partials;
  let next = scalars + OPTIM_SCALARS.count;
  // the constant region starts after the token rows and the sequence rows
  const optimPass = (name: string, n: number, body: string, places?: number[]) => pass(name, n, `${entry.arena.T}u * ints_get(0u) + ${entry.arena.S}u * ints_get(1u)`, body, places);
  const derived = program.derived.map((d) => {
    const length = d.shape.reduce((a, b) => a * b, 1);
    if (d.from.kind === 'concat') {
      for (const p of d.from.parts) if (!master.has(p)) fail(`derived weight ${d.name} joins ${p}, which is not a weight trained`);
      return { name: d.name, parts: d.from.parts, length };
    }
    const at = next;
    next += length;
    // where it goes and where its masters are: place(0), place(1), … (the layers' share one text)
    const places = [at];
    const body = wgslExpr(d.from.body, {
      x: () => fail(`derived weight ${d.name} reads an activation`),
      in: () => fail(`derived weight ${d.name} reads an input`),
      w: (n) => { const p = master.get(n) ?? fail(`derived weight ${d.name} reads ${n}, which is not a weight trained`); places.push(p.at); return `${o('get')}(place(${places.length - 1}u) + i % ${p.length}u)`; },
    });
    return { name: d.name, at, length, pass: optimPass(`derived ${d.name}`, length, `${o('set')}(place(0u) + i, ${body});`, places) };
  });
  const S = (k: keyof typeof OPTIM_SCALARS) => `${o('get')}(${scalars + OPTIM_SCALARS[k]}u)`;
  const set = (k: keyof typeof OPTIM_SCALARS, v: string) => `${o('set')}(${scalars + OPTIM_SCALARS[k]}u, ${v});`;
  const loss = at(entry.outputs.loss ?? fail('the train entry has no loss'));
  const kind = (i: string) => `${o('get')}(${3 * size}u + ${i})`;
  const grad = (i: string) => `${bindingName('arena', 0)}_get(base() + ${i})`;
  const passes = [
    optimPass('norm partials', partials, `var ss = 0.0;
  for (var e = i * ${PART}u; e < min(${size}u, i * ${PART}u + ${PART}u); e++) {
    if (${kind('e')} > 0.5) { let g = ${grad('e')}; ss += g * g; }
  }
  ${o('set')}(${4 * size}u + i, ss);`),
    optimPass('norm', 1, `var ss = 0.0;
  var lost = 0.0;
  for (var p = 0u; p < ${partials}u; p++) {
    let y = ${o('get')}(${4 * size}u + p) - lost;
    let t = ss + y;
    lost = (t - ss) - y;
    ss = t;
  }
  let norm = sqrt(ss);
  let loss = ${grad(`${loss}u`)};
  let clip = ${S('clip')};
  ${set('loss', 'loss')}
  ${set('tokens', grad(`${loss + 1}u`))}
  ${set('norm', 'norm')}
  ${set('scale', 'select(1.0, min(1.0, clip / (norm + 1e-6)), clip > 0.0)')}
  ${set('ok', 'select(0.0, 1.0, finite(loss) && finite(norm))')}`),
    optimPass('update', size, `if (${kind('i')} < 0.5 || ${S('ok')} < 0.5) { return; }
  let g = ${grad('i')} * ${S('scale')};
  let m = ${S('beta1')} * ${o('get')}(${size}u + i) + ${S('oneMinusBeta1')} * g;
  let v = ${S('beta2')} * ${o('get')}(${2 * size}u + i) + ${S('oneMinusBeta2')} * g * g;
  ${o('set')}(${size}u + i, m);
  ${o('set')}(${2 * size}u + i, v);
  let decay = select(1.0, ${S('decay')}, ${kind('i')} > 1.5);
  ${o('set')}(i, ${o('get')}(i) * decay - ${S('stepSize')} * m / (sqrt(v) / ${S('bc2Sqrt')} + ${S('eps')}));`),
  ];
  return { size, partials, scalars, params, derived, passes };
}

/** The optimizer buffer's accessor names. */
function o(what: 'get' | 'set'): string {
  return `${bindingName('optim', 2)}_${what}`;
}

/** One invocation per i < n; `body` the statement for i; `base` where the constant region starts;
 *  `places` what its place(i) reads (then its head does not name it: the layers share the text). */
function pass(name: string, n: number, base: string, body: string, places?: number[]): Pass {
  return {
    name, head: `// archc optimizer (${places ? 'derived' : name})`, bindings: BINDINGS, ...(places ? { places } : {}), groups: count('C', n, WG), columns: 1,
    body: `fn base() -> u32 { return ${base}; }
fn finite(v: f32) -> bool { return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u; }
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + li;
  if (i >= ${n}u) { return; }
  ${body}
}
`,
  };
}

function fail(msg: string): never {
  throw new Error(`archc wgsl: ${msg}`);
}
