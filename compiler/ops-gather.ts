// Rows by index, per token (records as in ops.ts): `gather` picks k of a token's n rows, `scatter`
// adds a token's k rows into n rows of zeros. The indices are i32 [T, k] in the graph (a topk's, say)
// and integer-valued floats in the arena. An index outside [0, n) never reaches memory outside the
// tensor: gather reads a row of zeros for it, scatter skips its row (the reference, runtime/cpu/route.ts).

import type { Dim, OpDef, TensorType } from './ops.ts';
import { OpError } from './ops.ts';

const fmt = (s: readonly Dim[]) => `[${s.join(', ')}]`;
const fail = (msg: string): never => { throw new OpError(msg); };
const need = (t: TensorType | null, what: string): TensorType => t ?? fail(`missing ${what}`);
/** Integers the arena's floats hold exactly. */
const MAX_ROWS = 2 ** 24;
/** Floats per row: the dims after the row dim (1 for [T, n]). */
const rowWidth = (t: TensorType) => t.shape.slice(2).reduce<number>((n, d) => n * (d as number), 1);

/** x [T, rows, …] and idx i32 [T, k]: the row count, k and the dims after the rows. */
function rowsAndIndex(op: string, x: TensorType, idx: TensorType): { rows: number; k: number; rest: readonly Dim[] } {
  if (x.shape.length < 2 || x.shape[0] !== 'T' || x.shape.slice(1).includes('T')) fail(`${op} x must be [T, rows, …] (rows per token), got ${fmt(x.shape)}`);
  if (idx.shape.length !== 2 || idx.shape[0] !== 'T' || idx.shape[1] === 'T') fail(`${op} idx must be integers [T, k], got ${fmt(idx.shape)}`);
  return { rows: x.shape[1] as number, k: idx.shape[1] as number, rest: x.shape.slice(2) };
}

export const GATHER_OPS: readonly OpDef[] = [
  {
    name: 'gather', doc: 'per token, the rows idx[t, j] of x[t] ([T, n, …] by i32 [T, k] → [T, k, …]); an index outside [0, n) gives a row of zeros',
    inputs: [{ name: 'x' }, { name: 'idx', int: true }], attrs: {},
    infer([x, idx]) {
      const { rows, k, rest } = rowsAndIndex('gather', need(x, 'x'), need(idx, 'idx'));
      if (rows > MAX_ROWS) fail(`gather from ${rows} rows: indices are exact below ${MAX_ROWS} (2^24)`);
      return [{ shape: ['T', k, ...rest], dtype: 'f32' }];
    },
    flops: () => 0,
    lower(c) {
      const x = c.types[0]!, K = c.types[1]!.shape[1] as number;
      c.emit({ family: 'gather', sizes: { N: x.shape[1] as number, K, D: rowWidth(x) }, inputs: { x: c.in(0)!, idx: c.in(1)! }, outputs: { y: c.out(0) } });
    },
  },
  {
    name: 'scatter', doc: 'per token, x[t, j] added into row idx[t, j] of `rows` rows of zeros ([T, k, …] by i32 [T, k] → [T, rows, …]); an index outside [0, rows) is skipped',
    inputs: [{ name: 'x' }, { name: 'idx', int: true }],
    attrs: { rows: { type: 'int', doc: 'rows of the result per token' } },
    infer([x, idx], a) {
      const X = need(x, 'x'), { rows: kx, k, rest } = rowsAndIndex('scatter', X, need(idx, 'idx'));
      if (kx !== k) fail(`scatter x ${fmt(X.shape)} has ${kx} rows per token but idx has ${k} indices`);
      const n = a.rows as number;
      if (!Number.isInteger(n) || n < 1 || n > MAX_ROWS) fail(`scatter rows ${n} must be an integer from 1 to ${MAX_ROWS} (2^24: indices are exact below it)`);
      return [{ shape: ['T', n, ...rest], dtype: 'f32' }];
    },
    flops: ([x]) => rowWidth(x!) * (x!.shape[1] as number),
    lower(c) {
      const x = c.types[0]!;
      c.emit({ family: 'scatter', sizes: { N: c.attrs.rows as number, K: x.shape[1] as number, D: rowWidth(x) }, inputs: { x: c.in(0)!, idx: c.in(1)! }, outputs: { y: c.out(0) } });
    },
  },
];
