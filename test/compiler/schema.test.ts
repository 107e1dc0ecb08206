import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { checkGraphJson, checkProgramJson, graphFromJson, graphToJson } from '../../compiler/schema.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
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
  for (const m of ['bamba', 'mamba2', 'llama']) {
    it(`${m}: valid against the program schema; every buffer but the outputs and weights is released exactly once`, () => {
      const c = compileFile(join(MODELS, `${m}.arch`), { set: m === 'bamba' ? ['n_layers=4', 'attn_layers=[2]'] : ['n_layers=4'] });
      const p = lowerToProgram(c.graph, c.bindings);
      expect(checkProgramJson(json(p))).toEqual([]);
      const released = p.steps.flatMap((s) => s.release);
      expect(new Set(released).size).toBe(released.length);
      const kept = new Set([...p.outputs.map((o) => o.buffer), ...p.weights.map((w) => w.buffer), ...p.inputs.map((i) => i.buffer)]);
      const produced = p.steps.flatMap((s) => s.outputs).filter((b) => !kept.has(b));
      expect(new Set(released)).toEqual(new Set(produced));
    });
  }
  it('rejects a step without its release list', () => {
    const c = compileFile(join(MODELS, 'llama.arch'), { set: ['n_layers=1'] });
    const p = json(lowerToProgram(c.graph, c.bindings));
    delete p.steps[3].release;
    expect(checkProgramJson(p)[0]).toMatch(/^\/steps\/3/);
  });
});
