// The kernels the wasm backend runs on the reference families (runtime/wasm/plan.ts), pinned per model
// of models/ at the tiny preset, and for Bamba-9B at its own sizes: an allow-list that only shrinks — the test fails when a kernel falls
// back that is not listed, and when a listed one no longer does (then delete its line). Then the
// plan's users agree with it: the renderer's functions (exactly the kernels placed in the module),
// the backend's `fallbacks` (with and without the program module), the build report's list and the
// line `archc build` prints.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderWasmProgram } from '../../../codegen/wasm/program.ts';
import { compileFile } from '../../../compiler/compile.ts';
import { fallbackSummary, programReport } from '../../../compiler/kernel/report.ts';
import { lowerToProgram } from '../../../compiler/lower.ts';
import { presetSets } from '../../../compiler/presets.ts';
import type { Entry, EntryName, Kernel, Program } from '../../../runtime/program.ts';
import { NO_MODULE, ownFunctions, placeKernel, wasmFallbacks, wasmPlan } from '../../../runtime/wasm/plan.ts';
import { ROOT } from '../../helpers/checkpoints.ts';
import { useProgramBackends } from '../../helpers/wasm-program.ts';

const ENTRIES: readonly EntryName[] = ['forward', 'prefill', 'decode'];
/** `name` in every entry. */
const everywhere = (...names: string[]) => names.flatMap((n) => ENTRIES.map((e) => `${e} ${n}`));

/** What falls back, as `entry kernel-name`, by model file. Only ever delete lines here (the
 *  routers' softmax and topk were the last, now rendered). */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  bamba: [],
  falcon_h1: [],
  gpt2: [],
  granite4h: [],
  llama: [],
  mamba2: [],
  nemotron_h: [],
  qwen3: [],
};

const MODELS = readdirSync(join(ROOT, 'models')).filter((f) => f.endsWith('.arch')).map((f) => f.slice(0, -'.arch'.length)).sort();

const programs = new Map<string, Program>();
function tiny(name: string): Program {
  let p = programs.get(name);
  if (!p) {
    const file = join(ROOT, 'models', `${name}.arch`);
    const c = compileFile(file, { set: presetSets(file, 'tiny') });
    programs.set(name, (p = lowerToProgram(c.graph, c.bindings)));
  }
  return p;
}

function bamba9b(): Program {
  const c = compileFile(join(ROOT, 'models', 'bamba.arch'));
  return lowerToProgram(c.graph, c.bindings);
}

describe('kernels the wasm backend runs on the reference path (tiny preset)', () => {
  it('every model of models/ has its list here', () => {
    expect(MODELS.filter((m) => !(m in ALLOWED)), 'models without an allow-list').toEqual([]);
    expect(Object.keys(ALLOWED).filter((m) => !MODELS.includes(m)), 'lists of models that are gone').toEqual([]);
  });

  /** Bamba-9B at its own sizes: its embedding table (2 GiB as f32) stays on the host
   *  (EMBEDDING_COPY_BYTES). */
  const FULL_BAMBA = everywhere('model.embed_tokens:embedding');

  for (const name of [...MODELS, 'bamba (Bamba-9B)']) {
    it(name, () => {
      const full = name.endsWith('(Bamba-9B)');
      const falls = wasmFallbacks(full ? bamba9b() : tiny(name));
      const got = falls.map((f) => `${f.entry} ${f.name}`);
      const allowed = full ? FULL_BAMBA : ALLOWED[name] ?? [];
      expect(got.filter((g) => !allowed.includes(g)), `${name}: kernels falling back that the list does not allow (render them, or add them with a reason)`).toEqual([]);
      expect(allowed.filter((a) => !got.includes(a)), `${name}: listed kernels that no longer fall back (delete their lines)`).toEqual([]);
      for (const f of falls) expect(f.reason.length, `${f.entry} ${f.name} says why`).toBeGreaterThan(10);
    });
  }
});

describe('the plan, the renderer, the backend and the build report agree', () => {
  const backendFor = useProgramBackends();

  for (const name of MODELS) {
    it(`${name}: the module has functions for exactly the kernels placed in it`, () => {
      const p = tiny(name);
      const text = renderWasmProgram(p);
      const exported = new Set([...text.matchAll(/\(export "(\w+)\.(\d+)\.(?:run|pre|post)"/g)].map((m) => `${m[1]}.${m[2]}`));
      const plan = wasmPlan(p);
      const want = new Set<string>();
      for (const [entry, e] of Object.entries(p.entries) as [EntryName, Entry][]) {
        e.kernels.forEach((k, i) => { if (plan[entry][i]!.path === 'module' && ownFunctions(k)) want.add(`${entry}.${i}`); });
      }
      expect([...exported].sort()).toEqual([...want].sort());
      expect(programReport(p, { prefillTokens: 64, decodeBatch: 2, context: 64 }).fallbacks).toEqual(wasmFallbacks(p).map((f) => ({ target: 'wasm', ...f })));
    });
  }

  it('archc build\'s line counts them by family', () => {
    const p = bamba9b();
    const r = programReport(p, { prefillTokens: 64, decodeBatch: 2, context: 64 });
    const total = Object.values(p.entries).reduce((n, e) => n + e.kernels.length, 0);
    expect(fallbackSummary(p, r)).toBe(`wasm: ${r.fallbacks.length} of ${total} kernels on the reference path (embedding ${r.fallbacks.length}); webgpu, cuda: none`);
    expect(fallbackSummary(tiny('bamba'), programReport(tiny('bamba'), { prefillTokens: 64, decodeBatch: 2, context: 64 }))).toMatch(/^wasm: 0 of \d+ kernels on the reference path; /);
  });

  it('the backend lists the plan\'s fallbacks with the module, every kernel without it', () => {
    const p = tiny('bamba');
    const withModule = backendFor(p), without = backendFor(p, { module: false });
    expect(withModule.fallbacks).toEqual(wasmFallbacks(p));
    const all = (Object.entries(p.entries) as [EntryName, Entry][]).flatMap(([entry, e]) => e.kernels.map((k) => ({ entry, name: k.name, family: k.family, reason: NO_MODULE })));
    const fallbackAt = new Map(wasmFallbacks(p).map((f) => [`${f.entry} ${f.name}`, f.reason]));
    expect(without.fallbacks).toEqual(all.map((f) => ({ ...f, reason: fallbackAt.get(`${f.entry} ${f.name}`) ?? NO_MODULE })));
    for (const e of Object.values(p.entries)) for (const k of e.kernels) expect(withModule.renders(k), k.name).toBe(placeKernel(p, k).path === 'module');
  });

  it('a kernel outside what the renderer handles is placed on the reference path, with its reason', () => {
    const p = tiny('bamba');
    const decode = p.entries.decode.kernels;
    const product = p.entries.forward.kernels.find((k) => k.family === 'matmul' && k.prologue?.some((s) => s.kind === 'rmsnorm'))!;
    const attn = decode.find((k) => k.family === 'attention_decode')!;
    const step = decode.find((k) => k.family === 'ssd_step')!;
    const cases: [Kernel, RegExp][] = [
      [{ ...attn, pre: { q: { op: 'neg', a: { op: 'x', offset: 0 } } } }, /pre-expression/],
      [{ ...attn, outputs: { y: attn.inputs.q as Kernel['outputs'][string] } }, /sharing a buffer/],
      [{ ...step, sizes: { ...step.sizes, G: 3 } }, /groups/],
      [{ ...step, inputs: { ...step.inputs, x: { input: 'tokens' } } }, /integer input/],
      [{ ...product, epilogue: [...(product.epilogue ?? []), { kind: 'map', body: { op: 'x', offset: 0 }, width: 1 }] }, /output/],
      [{ ...product, prologue: [{ kind: 'rmsnorm', weight: 'w', eps: 1e-5 }, { kind: 'gather_last' }] }, /gather_last after a norm/],
      [{ ...product, attrs: { ...product.attrs, transposed: true } }, /of shape \[\d+,\d+\] is not \[/],
      [{ ...product, family: 'copy' } as unknown as Kernel, /no copy family/],
    ];
    for (const [k, why] of cases) {
      const placed = placeKernel(p, k);
      expect(placed.path, k.name).toBe('reference');
      expect(placed.path === 'reference' && placed.reason, k.name).toMatch(why);
    }
  });
});
