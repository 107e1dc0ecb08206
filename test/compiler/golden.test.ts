// Golden files of the printed graph for every model in models/: a change to the compiler shows its
// exact effect here. Regenerate with `ARCHC_UPDATE_GOLDEN=1 npx vitest run test/compiler/golden.test.ts`.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileFile } from '../../compiler/compile.ts';
import { printGraph } from '../../compiler/printer.ts';
import { MODELS } from '../helpers/compile.ts';

const GOLDEN = join(import.meta.dirname, '..', 'golden');

describe('golden graphs', () => {
  for (const model of ['bamba', 'mamba2', 'llama', 'gpt2', 'qwen3', 'nemotron_h', 'falcon_h1', 'granite4h']) {
    it(`${model}.arch prints as test/golden/${model}.graph.txt`, () => {
      const text = printGraph(compileFile(join(MODELS, `${model}.arch`)).graph);
      const file = join(GOLDEN, `${model}.graph.txt`);
      if (process.env.ARCHC_UPDATE_GOLDEN || !existsSync(file)) {
        if (process.env.CI) throw new Error(`golden file ${file} is missing`);
        writeFileSync(file, text);
      }
      expect(text).toBe(readFileSync(file, 'utf8'));
    });
  }
});
