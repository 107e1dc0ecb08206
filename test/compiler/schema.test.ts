import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { checkGraphJson, graphFromJson, graphToJson } from '../../compiler/schema.ts';
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
