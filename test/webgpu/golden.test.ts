// Golden files of emitted WGSL for a few kernels of the tiny Bamba (TINY), every pass of each, in
// both profiles (GPUs: `<entry>.<kernel>.wgsl`; CPU adapters: `cpu.<entry>.<kernel>.wgsl`): a change
// to the renderer, the templates or a WGSL schedule shows its exact effect here. Each pass's header
// line lists its bindings and the values its `place(i)` reads.
// Regenerate with `ARCHC_UPDATE_GOLDEN=1 npx vitest run test/webgpu/golden.test.ts`.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import type { EntryName } from '../../runtime/program.ts';
import { shaderCode } from '../../runtime/webgpu/shaders.ts';
import { compileTiny } from '../helpers/checkpoints.ts';

const GOLDEN = join(import.meta.dirname, '..', 'golden', 'wgsl');

/** (entry, kernel name): fused products on both paths, both scans, attention, the head. */
const KERNELS: readonly [EntryName, string][] = [
  ['decode', 'model.layers.0.mamba.in_proj:linear'],
  ['decode', 'model.layers.0.mamba:ssd'],
  ['decode', 'model.layers.1.self_attn.q_proj+k_proj+v_proj:linear'],
  ['decode', 'model.layers.1.self_attn:attention'],
  ['prefill', 'model.layers.0.mamba:ssd'],
  ['prefill', 'model.layers.0.feed_forward.gate_proj+up_proj:linear'],
  ['prefill', 'model.layers.1.self_attn:attention'],
  ['prefill', 'head'],
];

describe('golden WGSL of the tiny Bamba', () => {
  const c = compileTiny();
  const program = lowerToProgram(c.graph, c.bindings);
  const wgsl = renderProgram(program);
  for (const [profile, [entry, name]] of (['gpu', 'cpu'] as const).flatMap((p) => KERNELS.map((k) => [p, k] as const))) {
    const file = join(GOLDEN, `${profile === 'gpu' ? '' : `${profile}.`}${entry}.${name.replace(/[^\w.+-]/g, '_')}.wgsl`);
    it(`${profile} ${entry} ${name}`, () => {
      const k = wgsl.profiles[profile][entry].kernels.find((x) => x.kernel === name);
      expect(k, `no kernel ${name} in ${entry}`).toBeDefined();
      const text = k!.passes.map((p) => `// ==== pass ${p.name}: bindings ${p.bindings.join(', ')}${p.places ? `; places ${p.places.join(', ')}` : ''}; workgroups ceil(n(${p.groups.rows})·${p.groups.times}/${p.groups.per})·${p.columns}`
        + `${p.rowsAtMost !== undefined ? `; product rows <= ${p.rowsAtMost}` : ''}${p.rowsAbove !== undefined ? `; product rows > ${p.rowsAbove}` : ''}\n${shaderCode(p)}`).join('\n');
      if (process.env.ARCHC_UPDATE_GOLDEN || !existsSync(file)) {
        if (process.env.CI) throw new Error(`golden file ${file} is missing`);
        mkdirSync(GOLDEN, { recursive: true });
        writeFileSync(file, text);
      }
      expect(text).toBe(readFileSync(file, 'utf8'));
    });
  }
});
