// Depthwise causal conv1d over packed sequences, carrying each sequence's last K-1 inputs.

import { checkLen, checkSeqs, type SeqSlice } from './seq.ts';

/**
 * y[t, c] = bias[c] + sum_{j<K} w[c, 0, j] * win[t - (K-1) + j, c], where win is the sequence's
 * inputs preceded by its state; the last tap (j = K-1) multiplies the current token. No activation.
 *
 * x: [T, C]; w: [C, 1, K] (depthwise, as nn.Conv1d(groups=C) stores it); bias: [C] or null.
 * states[s]: [C, K-1], sequence s's previous K-1 inputs, oldest first; zero for a fresh sequence.
 * Each is read as the initial window and overwritten with the window after the sequence's last row.
 * Rows of x outside every slice are left zero in the result.
 */
export function causalConv1d(
  x: Float32Array, T: number, C: number, K: number, w: Float32Array, bias: Float32Array | null,
  seqs: readonly SeqSlice[], states: Float32Array[],
): Float32Array {
  checkLen('causalConv1d', 'x', x, T * C);
  checkLen('causalConv1d', 'weight', w, C * K);
  if (bias) checkLen('causalConv1d', 'bias', bias, C);
  checkSeqs('causalConv1d', T, seqs, states.length);
  const S = K - 1;
  for (const st of states) checkLen('causalConv1d', 'state', st, C * S);

  const y = new Float32Array(T * C);
  const win = new Float64Array(S + T); // one channel's [state, inputs] of the current sequence
  for (let s = 0; s < seqs.length; s++) {
    const { start, len } = seqs[s];
    const st = states[s];
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < S; i++) win[i] = st[c * S + i];
      for (let i = 0; i < len; i++) win[S + i] = x[(start + i) * C + c];
      const b = bias ? bias[c] : 0;
      const wc = c * K;
      for (let i = 0; i < len; i++) {
        // Window of token i is win[i .. i+K-1]; win[i+K-1] is the token itself.
        let acc = 0;
        for (let j = 0; j < K; j++) acc += w[wc + j] * win[i + j];
        y[(start + i) * C + c] = acc + b;
      }
      for (let i = 0; i < S; i++) st[c * S + i] = win[len + i];
    }
  }
  return y;
}
