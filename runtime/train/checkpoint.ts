// A training run's checkpoint in a directory: the masters as model.safetensors (f32, the
// checkpoint's names; Hugging Face layout with the config.json the caller writes), both moments
// as optimizer.safetensors (`exp_avg.NAME`, `exp_avg_sq.NAME`, f32) and trainer_state.json (step,
// tokens, the run's settings). Reading one back gives the state bit for bit.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeError, fail } from '../errors.ts';
import { assertShapes } from '../checkpoint-shapes.ts';
import { openCheckpoint } from '../safetensors.ts';
import { writeSafetensors } from '../safetensors-write.ts';
import { fromF32, toF32 } from '../tensor.ts';
import type { ParamState } from './optim.ts';
import type { TrainState } from './trainer.ts';

export const STATE_FILE = 'trainer_state.json';

/** Writes the state's three files into `dir`; `settings` goes into trainer_state.json as is. */
export function writeTrainState(dir: string, s: TrainState, settings: unknown): void {
  writeSafetensors(join(dir, 'model.safetensors'), s.params.map((p) => ({ name: p.name, tensor: fromF32(p.value, p.shape, 'f32') })), { format: 'pt' });
  writeSafetensors(join(dir, 'optimizer.safetensors'), s.params.flatMap((p) => [
    { name: `exp_avg.${p.name}`, tensor: fromF32(p.expAvg, p.shape, 'f32') },
    { name: `exp_avg_sq.${p.name}`, tensor: fromF32(p.expAvgSq, p.shape, 'f32') },
  ]), { format: 'pt' });
  const text = JSON.stringify({ format: 'archc-train-1', step: s.step, tokens: s.tokens, settings }, null, 2) + '\n';
  writeFileSync(join(dir, STATE_FILE), text); // the caller writes the whole directory atomically
}

/** The settings a run saved (trainer_state.json), RT601 naming the file when it is missing or bad. */
export function readTrainSettings(dir: string): { step: number; tokens: number; settings: Record<string, unknown> } {
  const file = join(dir, STATE_FILE);
  let j: { format?: unknown; step?: unknown; tokens?: unknown; settings?: unknown };
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    fail('RT601', [dir, `${file}: ${describeError(e)}`], { file });
  }
  if (j?.format !== 'archc-train-1' || !Number.isSafeInteger(j.step) || !Number.isSafeInteger(j.tokens) || typeof j.settings !== 'object' || j.settings === null) {
    fail('RT601', [dir, `${file} is not a trainer state archc wrote (format archc-train-1 with step, tokens and settings)`], { file });
  }
  return { step: j.step as number, tokens: j.tokens as number, settings: j.settings as Record<string, unknown> };
}

/** The state saved in `dir` for the weights `shapes` (the model's, in order). */
export function readTrainState(dir: string, shapes: readonly { name: string; shape: readonly number[] }[]): TrainState {
  const { step, tokens } = readTrainSettings(dir);
  const model = openCheckpoint(join(dir, 'model.safetensors'));
  const opt = openCheckpoint(join(dir, 'optimizer.safetensors'));
  try {
    assertShapes(model, shapes.map((w) => ({ name: w.name, shape: w.shape })));
    assertShapes(opt, shapes.flatMap((w) => [{ name: `exp_avg.${w.name}`, shape: w.shape }, { name: `exp_avg_sq.${w.name}`, shape: w.shape }]));
    const f32 = (c: typeof model, name: string) => Float32Array.from(toF32(c.read(name)));
    const params: ParamState[] = shapes.map((w) => ({
      name: w.name, shape: w.shape, value: f32(model, w.name), expAvg: f32(opt, `exp_avg.${w.name}`), expAvgSq: f32(opt, `exp_avg_sq.${w.name}`),
    }));
    return { step, tokens, params };
  } finally {
    model.close();
    opt.close();
  }
}
