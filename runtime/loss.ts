// Causal-LM loss over one sequence, as transformers computes it (ForCausalLMLoss + Bamba's z-loss):
// row t of logits [T, V] predicts labels[t + 1]; the last row predicts nothing; label -100 is
// ignored; loss = mean cross-entropy over the counted rows, with log-softmax in f64.

import { fail } from './errors.ts';

export const IGNORE_INDEX = -100;

export interface CausalLmLoss {
  /** Mean cross-entropy over counted rows (+ coef × zLoss). NaN when no row is counted, like torch's mean over nothing. */
  loss: number;
  /** Rows whose shifted label is not -100. */
  tokens: number;
  /** Mean over all T rows of logsumexp(row)², present when zLossCoefficient > 0. */
  zLoss?: number;
}

/**
 * logits [T, V] row-major, labels [T]. Every label is checked (also labels[0], which no row uses)
 * so a bad label fails loudly instead of being silently ignored.
 */
export function causalLmLoss(logits: Float32Array, T: number, V: number, labels: Int32Array, zLossCoefficient = 0): CausalLmLoss {
  if (!Number.isInteger(T) || T < 0 || !Number.isInteger(V) || V <= 0) fail('RT323', [T, V]);
  if (logits.length !== T * V) fail('RT321', [logits.length, T, V, T * V]);
  if (labels.length !== T) fail('RT322', [labels.length, T]);
  if (!(Number.isFinite(zLossCoefficient) && zLossCoefficient >= 0)) fail('RT324', [zLossCoefficient]);
  for (let t = 0; t < T; t++) {
    const y = labels[t];
    if (y !== IGNORE_INDEX && (y < 0 || y >= V)) fail('RT320', [y, t, t === 0 ? 'no logits row predicts it' : `the target of logits row ${t - 1}`, V]);
  }

  const wantZ = zLossCoefficient > 0;
  let sum = 0;
  let tokens = 0;
  let zSum = 0;
  for (let t = 0; t < T; t++) {
    const target = t + 1 < T ? labels[t + 1] : IGNORE_INDEX;
    if (target === IGNORE_INDEX && !wantZ) continue;
    const lse = logSumExp(logits, t * V, V);
    if (wantZ) zSum += lse * lse;
    if (target === IGNORE_INDEX) continue;
    sum += lse - logits[t * V + target]; // -log_softmax(row)[target]
    tokens++;
  }
  const ce = sum / tokens; // 0 / 0 = NaN when nothing is counted
  if (!wantZ) return { loss: ce, tokens };
  const zLoss = zSum / T;
  return { loss: ce + zLossCoefficient * zLoss, tokens, zLoss };
}

/** log Σ exp(row) in f64, shifted by the row max (−∞ for an all −∞ row, NaN if the row has NaN). */
function logSumExp(x: Float32Array, off: number, n: number): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = x[off + i];
    if (v > max || v !== v) max = v;
    if (v !== v) break;
  }
  if (max !== max) return NaN;
  if (max === -Infinity || max === Infinity) return max;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(x[off + i] - max);
  return max + Math.log(s);
}
