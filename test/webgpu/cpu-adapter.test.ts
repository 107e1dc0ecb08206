// WebGPU on a CPU adapter (SwiftShader here, llvmpipe, WARP) is far slower than the wasm backend on
// the same cores: createWebGpuBackend says so once per adapter and process, naming the faster
// backend, unless the caller named a profile (a deliberate choice). On a real GPU it says nothing.

import { beforeAll, describe, expect, it } from 'vitest';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { lowerToProgram } from '../../compiler/lower.ts';
import type { Program } from '../../runtime/program.ts';
import { adapterProfile, createWebGpuBackend, findGpu } from '../../runtime/webgpu/backend.ts';
import type { WebGpuOptions } from '../../runtime/webgpu/options.ts';
import { compileTiny } from '../helpers/checkpoints.ts';
import { useSwiftShader } from './gpu.ts';

let program: Program;
let onCpu: boolean;

beforeAll(async () => {
  useSwiftShader();
  const c = compileTiny();
  program = lowerToProgram(c.graph, c.bindings);
  const adapter = await (await findGpu()).requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  onCpu = adapterProfile(adapter) === 'cpu';
}, 120_000);

/** The warnings one backend's creation gives (the backend is disposed at once). */
async function warningsOf(opts: WebGpuOptions): Promise<string[]> {
  const said: string[] = [];
  const b = await createWebGpuBackend(program, renderProgram(program), { ...opts, onWarning: (m) => said.push(m) });
  b.dispose();
  return said;
}

describe('WebGPU on a CPU adapter', () => {
  it('a named profile is a choice: no warning', async () => {
    expect(await warningsOf({ profile: 'cpu' })).toEqual([]);
    expect(await warningsOf({ profile: 'gpu' })).toEqual([]);
  }, 120_000);

  it('the adapter\'s own profile on a CPU adapter: one warning naming the wasm backend, then no more', async () => {
    const first = await warningsOf({});
    if (!onCpu) {
      expect(first).toEqual([]);
      return;
    }
    expect(first).toHaveLength(1);
    expect(first[0]).toMatch(/a CPU adapter/);
    expect(first[0]).toMatch(/backend 'wasm'/);
    expect(first[0]).toMatch(/--backend wasm/);
    expect(first[0]).toMatch(/SwiftShader|llvmpipe|lavapipe|fallback|WARP|Basic Render/i);
    expect(await warningsOf({})).toEqual([]);
  }, 120_000);
});
