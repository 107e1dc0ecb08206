// The WebGPU device the tests run on: Dawn (the `webgpu` package) on a CPU Vulkan adapter
// (SwiftShader, from Debian's chromium package) unless VK_ICD_FILENAMES already names a driver.
// In CI (CI=true) a missing adapter fails the tests that need it instead of skipping them; locally too.

import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type WebGpuBackend, describeAdapter, findGpu, shaderProblem } from '../../runtime/webgpu/backend.ts';
import type { GpuEntry } from '../../runtime/webgpu/options.ts';
import type { EntryName } from '../../runtime/program.ts';
import type { WgslEntry, WgslProfile } from '../../runtime/webgpu/shaders.ts';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** Sets the environment Dawn's Vulkan loader reads; must run before the first adapter request. */
export function useSwiftShader(): void {
  if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  process.env.XDG_RUNTIME_DIR ??= mkdtempSync(join(tmpdir(), 'archc-xdg-'));
}

let shared: Promise<{ device: GPUDevice; adapter: string }> | null = null;

/** One device for a test file (limits raised to the adapter's); throws when there is no adapter. */
export function testDevice(): Promise<{ device: GPUDevice; adapter: string }> {
  shared ??= (async () => {
    useSwiftShader();
    const gpu = await findGpu();
    const adapter = await gpu.requestAdapter();
    if (!adapter) throw new Error(`no WebGPU adapter (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? ''}); install Debian's chromium (SwiftShader) and libvulkan1`);
    const l = adapter.limits;
    const device = await adapter.requestDevice({
      requiredLimits: { maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage, maxStorageBufferBindingSize: l.maxStorageBufferBindingSize, maxBufferSize: l.maxBufferSize },
    });
    return { device, adapter: describeAdapter(adapter) };
  })();
  return shared;
}

/** `target` with `overrides` in place of its own members, its other methods bound to it (Dawn's
 *  objects want themselves as `this`). */
function withOverrides<T extends object>(target: T, overrides: Partial<T>): T {
  return new Proxy(target, {
    get: (t, k) => {
      if (Object.hasOwn(overrides, k)) return overrides[k as keyof T];
      const v: unknown = Reflect.get(t, k, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

/** Devices handed out by sharedGpu(), one per descriptor asked for. */
const sharedDevices = new Map<string, Promise<GPUDevice>>();

/** A WebGPU entry for Model.load (`webgpu: { gpu: sharedGpu() }`) whose adapter opens one device per
 *  descriptor for the whole test file and keeps it when a model is disposed: the backend compiles
 *  pipelines by shader text once per device, so the models a file loads one after another compile
 *  the passes they have in common once. Everything else is Dawn's adapter and device as they are. */
export function sharedGpu(): GpuEntry {
  return {
    requestAdapter: async (options?: object) => {
      useSwiftShader();
      const adapter = await (await findGpu()).requestAdapter(options as GPURequestAdapterOptions | undefined);
      if (!adapter) return adapter;
      const requestDevice = (desc?: GPUDeviceDescriptor): Promise<GPUDevice> => {
        const key = JSON.stringify(desc ?? {});
        let device = sharedDevices.get(key);
        if (!device) sharedDevices.set(key, device = adapter.requestDevice(desc).then((d) => withOverrides(d, { destroy: () => {} })));
        return device;
      };
      return withOverrides(adapter, { requestDevice });
    },
  };
}

/** Throws with the source and the line when Dawn rejects a shader of the backend's program (every
 *  profile's, unless one is named), as the backend runs it: its bindings laid out by its split plan.
 *  `a8`: the passes for 8-bit activations too (the q8/q4 products' `quant.a8`). */
export async function expectShadersValid(b: WebGpuBackend, profile?: WgslProfile, a8 = false): Promise<number> {
  let n = 0;
  const profiles = profile ? [b.shaders.profiles[profile]] : Object.values(b.shaders.profiles);
  for (const [entry, e] of profiles.flatMap((p) => Object.entries(p) as [EntryName, WgslEntry][])) {
    for (const k of e.kernels) {
      for (const p of [...k.passes, ...(a8 ? Object.values(k.quant?.a8 ?? {}).flat() : [])]) {
        const problem = await shaderProblem(b.device, b.specialised(p, entry).code);
        if (problem) throw new Error(`Dawn rejected ${k.kernel} (${entry}, ${p.name}):\n${problem}`);
        n++;
      }
    }
  }
  return n;
}
