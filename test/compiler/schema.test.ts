import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { checkGraphJson, checkProgramJson, graphFromJson, graphToJson } from '../../compiler/schema.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import type { EntryOf, TrainKernel } from '../../runtime/program.ts';
import { MODELS } from '../helpers/compile.ts';

describe('graph.json', () => {
  for (const m of ['bamba', 'mamba2', 'llama']) {
    it(`${m}: valid against the schema and round-trips (infinities included)`, () => {
      const g = compileFile(join(MODELS, `${m}.arch`)).graph;
      const text = graphToJson(g);
      expect(checkGraphJson(JSON.parse(text))).toEqual([]);
      expect(graphFromJson(text)).toEqual(g);
    });
  }
  it('the schema rejects a malformed graph with a path to the problem', () => {
    const g = JSON.parse(graphToJson(compileFile(join(MODELS, 'llama.arch'), { set: ['n_layers=1'] }).graph));
    g.nodes[0].inputs = ['x'];
    delete g.weights[0].dtype;
    const errors = checkGraphJson(g);
    expect(errors.some((e) => e.startsWith('/nodes/0/inputs/0'))).toBe(true);
    expect(errors.some((e) => e.startsWith('/weights/0'))).toBe(true);
  });
});

describe('the kernel program', () => {
  const json = (v: unknown) => JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x)));
  /** Each buffer's life (first write to last read) never shares floats of its region with another's. */
  function noOverlap(e: EntryOf<TrainKernel>): void {
    const life = new Map<number, [number, number]>();
    e.kernels.forEach((k, i) => {
      for (const v of Object.values(k.outputs)) if (!life.has(v.buf)) life.set(v.buf, [i, i]);
      for (const o of Object.values(k.inputs)) if ('buf' in o) life.get(o.buf)![1] = i;
    });
    for (const v of Object.values(e.outputs)) life.get(v.buf)![1] = e.kernels.length;
    expect(life.size).toBe(e.buffers.length);
    // constants share the sequence region unless the entry has a region of its own for them
    const region = (r: string) => (r === 'C' && e.arena.C !== undefined ? 'C' : r === 'T' ? 'T' : 'S');
    for (const a of e.buffers) {
      for (const b of e.buffers) {
        if (a.id >= b.id || region(a.rows) !== region(b.rows)) continue;
        const [af, at] = life.get(a.id)!, [bf, bt] = life.get(b.id)!;
        const liveTogether = af <= bt && bf <= at;
        const overlap = a.offset < b.offset + b.width && b.offset < a.offset + a.width;
        expect(liveTogether && overlap, `buffers ${a.id} and ${b.id}`).toBe(false);
      }
    }
    const width = (r: string) => Math.max(0, ...e.buffers.filter((b) => region(b.rows) === r).map((b) => b.offset + b.width));
    expect([e.arena.T, e.arena.S, e.arena.C]).toEqual([width('T'), width('S'), e.arena.C === undefined ? undefined : width('C')]);
  }
  for (const m of ['bamba', 'mamba2', 'llama']) {
    it(`${m}: valid against the program schema, its train entry too; arena places never overlap while both buffers live`, () => {
      const c = compileFile(join(MODELS, `${m}.arch`), { set: m === 'bamba' ? ['n_layers=4', 'attn_layers=[2]'] : ['n_layers=4'] });
      const p = lowerToProgram(c.graph, c.bindings, { train: true });
      expect(checkProgramJson(json(p))).toEqual([]);
      for (const e of [...Object.values(p.entries), p.train!]) noOverlap(e);
    });
  }
  it('rejects a kernel without its provenance, and a view with a negative column', () => {
    const c = compileFile(join(MODELS, 'llama.arch'), { set: ['n_layers=1'] });
    const p = json(lowerToProgram(c.graph, c.bindings));
    delete p.entries.decode.kernels[3].fused;
    p.entries.forward.kernels[1].outputs.y.col = -1;
    const problems = checkProgramJson(p);
    expect(problems.some((e) => e.startsWith('/entries/decode/kernels/3'))).toBe(true);
    expect(problems.some((e) => e.startsWith('/entries/forward/kernels/1/outputs/y/col'))).toBe(true);
  });
});
