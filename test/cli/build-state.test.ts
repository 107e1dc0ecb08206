// `archc build --ssm-state bf16`: the package keeps its SSM states in bf16 on every backend — its
// program says so, its WGSL and its CUDA manifest were rendered for it (each a program loads only
// with: RT303, RT705), and its report's state per slot is the f32 one less half the SSM states'
// bytes. Built without nvcc on the PATH (CUDA sources only), as on a machine without the toolkit
// (and for one architecture, should a system nvcc be found all the same).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { lowerToProgram } from '../../compiler/lower.ts';
import { bf16States, slotLayout, withSsmState } from '../../runtime/program.ts';
import { BAMBA, TINY, compileTiny, runCli, setsFor } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs('archc-build-state-');

it('build --ssm-state bf16: the program, WGSL and CUDA manifest keep the SSM states in bf16; the slot is smaller by half their bytes', async () => {
  const out = join(tmp(), 'pkg');
  const r = await runCli(['build', BAMBA, ...setsFor(TINY).flatMap((s) => ['--set', s]), '--ssm-state', 'bf16', '--cuda-arch', 'sm_80', '-o', out], 240_000, { PATH: '/usr/bin:/bin' });
  expect(r.code, r.stderr).toBe(0);
  const compiled = compileTiny();
  const p32 = lowerToProgram(compiled.graph, compiled.bindings), p16 = withSsmState(p32, 'bf16');
  const want = bf16States(p16);
  expect(want.length).toBeGreaterThan(0);
  const manifest = JSON.parse(readFileSync(join(out, 'cuda', 'manifest.json'), 'utf8'));
  expect(manifest.bf16States).toEqual(want);
  expect(readFileSync(join(out, 'src', 'wgsl.ts'), 'utf8')).toContain(`\\"bf16States\\":[${want.join(',')}]`);
  // the program's states as written in src/model.ts: each SSM state marked bf16, no other
  const states = [...readFileSync(join(out, 'src', 'model.ts'), 'utf8').matchAll(/\{ name: "([^"]+)", kind: "(\w+)"[^}]*\}/g)];
  expect(states.map((m) => m[1])).toEqual(p16.states.map((s) => s.name));
  for (const m of states) expect(m[0].includes('dtype: "bf16"'), m[1]).toBe(m[2] === 'ssm');
  const context = compiled.graph.params.context as number;
  const report = JSON.parse(readFileSync(join(out, 'build-report.json'), 'utf8'));
  const ssm = p32.states.filter((s) => s.kind === 'ssm').reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  expect(report.memory.stateBytesPerSlot).toBe(4 * slotLayout(p16.states, context).floats);
  expect(4 * slotLayout(p32.states, context).floats - report.memory.stateBytesPerSlot).toBe(2 * ssm);
}, 300_000);
