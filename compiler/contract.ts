// What the runtime feeds a model and reads from it, checked where the model says it, so that `check`
// refuses what lowering could not run: the inputs are `tokens` and `positions`, each i32[T] (AC410),
// and every output is computed by ops from the inputs, one row per token (AC411) — not an input
// returned as it is, not a weight, not a value of weights alone.

import type { Input, Span } from '../dsl/ast.ts';
import { type Diagnostic, diag } from '../dsl/diagnostics.ts';
import type { Value } from './ir.ts';
import type { TensorType } from './ops.ts';

/** The inputs the runtime fills: token ids and their positions, one per token. */
export const PROGRAM_INPUTS: readonly string[] = ['tokens', 'positions'];

export function inputProblems(input: Input, type: TensorType): Diagnostic[] {
  const hint = 'declare `tokens: i32[T]` (and `positions: i32[T]` where the model reads positions)';
  if (!PROGRAM_INPUTS.includes(input.name)) return [diag('AC410', input.span, [input.name, `the runtime feeds only ${PROGRAM_INPUTS.join(' and ')}`], hint)];
  if (type.shape.length !== 1 || type.shape[0] !== 'T') return [diag('AC410', input.span, [input.name, `it must be i32[T] (one id per token), not i32[${type.shape.join(', ')}]`], hint)];
  return [];
}

export function outputProblems(name: string, value: Value, span: Span): Diagnostic[] {
  const what = value.source.kind === 'input' ? `is the model input ${value.source.name} itself`
    : value.source.kind === 'weight' ? `is the weight ${value.source.name} itself`
    : value.type.shape[0] !== 'T' ? `has no row per token: [${value.type.shape.join(', ')}] is computed from weights alone`
    : undefined;
  return what ? [diag('AC411', span, [name, what], 'return what the layers compute from the inputs, e.g. `return head(x, w)`')] : [];
}
