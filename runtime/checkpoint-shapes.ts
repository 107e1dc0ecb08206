// A checkpoint checked against the tensors a model expects: every mismatch (shape, dtype, missing,
// unexpected) as a coded error naming the file and the tensor. Reading is runtime/safetensors.ts.

import type { DType } from './tensor.ts';
import { RuntimeError } from './errors.ts';
import { type Checkpoint, fmtShape } from './safetensors.ts';

export interface ExpectedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  /** If given, the dtype `read` must return. */
  readonly dtype?: DType;
}

export interface CheckShapesOptions {
  /** Tensors the model does not name are fine (e.g. extra buffers in a Hugging Face checkpoint). */
  readonly allowExtra?: boolean;
}

/** Every mismatch between the checkpoint and `expected`: wrong shape (RT160), wrong dtype (RT161),
 *  missing tensor (RT162), unexpected tensor (RT163, unless `allowExtra`). Empty when all match. */
export function checkShapes(ckpt: Pick<Checkpoint, 'path' | 'tensors'>, expected: readonly ExpectedTensor[], opts: CheckShapesOptions = {}): RuntimeError[] {
  const problems: RuntimeError[] = [];
  const file = ckpt.path;
  const named = new Set<string>();
  for (const want of expected) {
    named.add(want.name);
    const ctx = { file, tensor: want.name };
    const got = ckpt.tensors.get(want.name);
    if (!got) {
      problems.push(new RuntimeError('RT162', [file, want.name, fmtShape(want.shape)], ctx));
      continue;
    }
    if (!sameShape(got.shape, want.shape)) {
      problems.push(new RuntimeError('RT160', [file, want.name, fmtShape(want.shape), fmtShape(got.shape)], ctx));
    }
    if (want.dtype !== undefined && want.dtype !== got.dtype) {
      const found = got.fileDtype.toLowerCase() === got.dtype ? got.dtype : `${got.dtype} (stored as ${got.fileDtype})`;
      problems.push(new RuntimeError('RT161', [file, want.name, want.dtype, found], ctx));
    }
  }
  if (!opts.allowExtra) {
    for (const t of ckpt.tensors.values()) {
      if (!named.has(t.name)) problems.push(new RuntimeError('RT163', [file, t.name, fmtShape(t.shape)], { file, tensor: t.name }));
    }
  }
  return problems;
}

/** Like `checkShapes`, but throws: the problem itself if there is one, RT164 listing all if several. */
export function assertShapes(ckpt: Checkpoint, expected: readonly ExpectedTensor[], opts: CheckShapesOptions = {}): void {
  const problems = checkShapes(ckpt, expected, opts);
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) {
    const list = problems.map((p) => `  ${p.code}: ${p.text}`).join('\n');
    throw new RuntimeError('RT164', [ckpt.path, problems.length, list], { file: ckpt.path, problems });
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
