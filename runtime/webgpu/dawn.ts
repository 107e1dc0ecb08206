// The WebGPU entry point: `navigator.gpu` in browsers and workers, Dawn (the `webgpu` package) in
// Node, one instance per set of Dawn flags for the life of the process.

import { RuntimeError } from '../errors.ts';
import type { WebGpuOptions } from './options.ts';

/** Dawn instances by flags: held for the life of the process, since Dawn's devices stop working
 *  (and the process crashes) once the instance that made them is garbage-collected. */
const dawn = new Map<string, GPU>();

/** The GPU entry point of this JS environment. */
export async function findGpu(opts: WebGpuOptions = {}): Promise<GPU> {
  if (opts.gpu) return opts.gpu as GPU; // a GpuEntry is typed structurally only for the public .d.ts (options.ts)
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  const key = (opts.dawnFlags ?? []).join(' ');
  const made = dawn.get(key);
  if (made) return made;
  const name = 'webgpu'; // a variable: bundlers for the browser leave the Node package out
  let mod: { create(flags: string[]): GPU; globals: Record<string, unknown> };
  try {
    mod = await import(name);
  } catch (e) {
    throw new RuntimeError('RT500', [`cannot load the \`webgpu\` package (${e instanceof Error ? e.message : String(e)})`]);
  }
  Object.assign(globalThis, mod.globals);
  await runtimeDir();
  const gpu = mod.create([...(opts.dawnFlags ?? [])]);
  dawn.set(key, gpu);
  return gpu;
}

/** Vulkan drivers that probe for a Wayland display (Mesa's) print "XDG_RUNTIME_DIR is invalid or
 *  not set" once per probe when the variable names no directory of ours, as on servers and in
 *  containers: Dawn then gets a private empty one, where no display is found and nothing is said. */
async function runtimeDir(): Promise<void> {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  if (!env) return;
  const [fs, os, path] = await Promise.all([import('node:fs'), import('node:os'), import('node:path')]);
  const dir = env.XDG_RUNTIME_DIR;
  try {
    if (dir && fs.statSync(dir).isDirectory()) return fs.accessSync(dir, fs.constants.W_OK);
  } catch { /* not ours: replaced below */ }
  const made = fs.mkdtempSync(path.join(os.tmpdir(), 'archc-xdg-'));
  env.XDG_RUNTIME_DIR = made;
  (globalThis as { process?: { once?(e: string, f: () => void): void } }).process?.once?.('exit', () => fs.rmSync(made, { recursive: true, force: true }));
}
