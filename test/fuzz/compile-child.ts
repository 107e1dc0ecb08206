// A child process that takes programs over IPC, one at a time, through the whole pipeline (compile,
// lower, render for wasm, WebGPU and CUDA: test/fuzz/pipeline.ts) and reports how each ended: `ok`,
// `diagnosed` (a CompileError: its codes), or `crash` (anything else: an internal error, a stack
// overflow, a TypeError; the stage it happened in first). Run by test/fuzz/runner.ts, which watches
// it for hangs and deaths.

import { join } from 'node:path';
import { CompileError, InternalError } from '../../dsl/diagnostics.ts';
import { throughPipeline } from './pipeline.ts';

const MODELS = join(import.meta.dirname, '..', '..', 'models');

export interface Job {
  readonly id: number;
  /** The program's text (compiled as models/__fuzz__.arch), unless `file` names a shipped model. */
  readonly text: string;
  readonly set?: readonly string[];
  readonly file?: string;
}

export interface Outcome {
  readonly id: number;
  readonly kind: 'ok' | 'diagnosed' | 'crash';
  /** Diagnostic codes (diagnosed), or the error's first lines (crash). */
  readonly detail: readonly string[];
  readonly ms: number;
}

process.on('message', async (job: Job) => {
  const t0 = performance.now();
  let kind: Outcome['kind'];
  let detail: string[] = [];
  try {
    if (job.file) await throughPipeline(join(MODELS, job.file), { set: job.set });
    else await throughPipeline(join(MODELS, '__fuzz__.arch'), { text: job.text, set: job.set });
    kind = 'ok';
  } catch (e) {
    if (e instanceof CompileError && !(e instanceof InternalError)) {
      kind = 'diagnosed';
      detail = [...new Set(e.diagnostics.map((d) => d.code))];
    } else {
      kind = 'crash';
      detail = [String((e as Error)?.stack ?? e).split('\n').slice(0, 4).join(' | ')];
    }
  }
  const out: Outcome = { id: job.id, kind, detail, ms: performance.now() - t0 };
  process.send!(out);
});
process.send!({ ready: true });
