// A model file against its float64 transcription of the Hugging Face forward on every backend that
// runs the kernel program (CPU engine, wasm, WebGPU on SwiftShader): random checkpoints of several
// configurations (SSM made vivid, so the scan carries signal), written in HF layout and compiled from
// their config.json as `archc forward` does. For each: a packed batch of sequences (each compared
// against the reference run on it alone: the full forward, and packing), and the first sequence step
// by step (two tokens of prefill, then one token at a time through decode). Bounds on
// max |got − ref| / (1 + max |ref|): 1e-5 on the CPU engine and wasm, 1e-4 on WebGPU.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { wasmKernelVariants } from '../../codegen/wasm/assemble.ts';
import { wasmProgram } from '../../codegen/wasm/program.ts';
import { renderProgram } from '../../codegen/wgsl/render.ts';
import { compileModel } from '../../compiler/pipeline.ts';
import { hfConfigText, initWeights } from '../../compiler/init.ts';
import { type HfConfig, readHfConfig } from '../../runtime/hfconfig.ts';
import { Model } from '../../runtime/model.ts';
import type { Program } from '../../runtime/program.ts';
import { createRng } from '../../runtime/rng.ts';
import { type Checkpoint, openCheckpoint, writeSafetensors } from '../../runtime/safetensors.ts';
import { expectLogitsClose, vividSsm } from '../helpers/checkpoints.ts';
import { useSwiftShader } from '../webgpu/gpu.ts';

export interface BackendCase {
  readonly name: string;
  /** `--set` values on top of the suite's base. */
  readonly set: readonly string[];
  readonly seqs: readonly (readonly number[])[];
}

export interface BackendSuite {
  readonly title: string;
  /** The .arch file. */
  readonly model: string;
  readonly base: readonly string[];
  readonly seed: number;
  readonly cases: readonly BackendCase[];
  /** The reference logits [seq length, vocab] of one sequence. */
  readonly reference: (config: HfConfig, ckpt: Checkpoint, ids: readonly number[]) => ArrayLike<number>;
}

const BACKENDS = [['cpu', 1e-5], ['wasm', 1e-5], ['webgpu', 1e-4]] as const;

async function load(program: Program, dir: string, backend: (typeof BACKENDS)[number][0]): Promise<Model> {
  if (backend === 'webgpu') useSwiftShader();
  return Model.loadProgram(program, dir, backend === 'cpu' ? { backend } : backend === 'webgpu' ? { backend, wgsl: renderProgram(program) }
    : { backend, wasmKernels: await wasmKernelVariants(), wasmProgram: await wasmProgram(program), threads: 2 });
}

export function backendSuite(s: BackendSuite): void {
  const work = mkdtempSync(join(tmpdir(), 'archc-ref-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  describe(s.title, () => {
    for (const c of s.cases) {
      // the checkpoint and the reference logits, made once per case on first use
      let made: { dir: string; program: Program; refs: Float64Array[]; vocab: number } | undefined;
      const make = () => {
        if (made) return made;
        const dir = join(work, c.name.replace(/\W+/g, '-'));
        mkdirSync(dir, { recursive: true });
        const init = compileModel(s.model, { set: [...s.base, ...c.set] });
        writeFileSync(join(dir, 'config.json'), hfConfigText(init, 'f32'));
        writeSafetensors(join(dir, 'model.safetensors'), vividSsm(initWeights(init.graph, createRng(s.seed), 'f32'), s.seed), { format: 'pt' });
        const { program } = compileModel(s.model, { hfConfig: join(dir, 'config.json') });
        const config = readHfConfig(join(dir, 'config.json'));
        const ckpt = openCheckpoint(dir);
        const refs = c.seqs.map((q) => Float64Array.from(s.reference(config, ckpt, q)));
        ckpt.close();
        made = { dir, program, refs, vocab: refs[0]!.length / c.seqs[0]!.length };
        return made;
      };
      for (const [backend, tol] of BACKENDS) {
        it(`${c.name}: ${backend}, packed and step by step`, async () => {
          const { dir, program, refs, vocab: V } = make();
          const spread = Math.max(...refs.map((r) => Math.max(...Array.from(r, Math.abs))));
          expect(spread, 'the logits carry signal').toBeGreaterThan(0.5);
          const m = await load(program, dir, backend);
          try {
            const cu = [0];
            for (const q of c.seqs) cu.push(cu[cu.length - 1]! + q.length);
            const got = (await m.forwardAsync({ ids: c.seqs.flat(), cuSeqlens: cu })).logits;
            const errs = c.seqs.map((_, i) => expectLogitsClose(got.subarray(cu[i]! * V, cu[i + 1]! * V), refs[i]!, tol, `${backend}: sequence ${i} of the packed batch vs the reference`, V));
            const a = c.seqs[0]!;
            const state = m.newSequence();
            const stepped = new Float32Array(a.length * V);
            stepped.set(await m.stepAsync([a.slice(0, 2)], [state]), 0); // both rows of the chunk
            for (let t = 2; t < a.length; t++) stepped.set(await m.decodeAsync([a[t]!], [state]), t * V);
            errs.push(expectLogitsClose(stepped, refs[0]!, tol, `${backend}: prefill of 2, then decode, vs the reference`, V));
            console.log(`${c.name}, ${backend}: max |got − ref| ${Math.max(...errs).toExponential(2)} (max |logit| ${spread.toFixed(2)})`);
          } finally {
            m.dispose();
          }
        }, backend === 'webgpu' ? 400_000 : 120_000); // SwiftShader compiles every shader on the CPU
      }
    }
  });
}
