// The `scale` op (records as in ops.ts): x times compile-time factors, one for every element (what
// `tensor * number` and `tensor / number` write) or one per consecutive part of the last dim
// (Falcon-H1's µP multipliers on in_proj), one elementwise kernel per part.

import type { View } from '../runtime/program.ts';
import type { Dim, OpDef, TensorType } from './ops.ts';
import { OpError } from './ops.ts';

const fmt = (s: readonly Dim[]) => `[${s.join(', ')}]`;
const need = (t: TensorType | null, what: string): TensorType => t ?? fail(`missing ${what}`);
const last = (t: TensorType) => t.shape[t.shape.length - 1]!;
const rowSize = (t: TensorType) => t.shape.reduce<number>((n, d) => (d === 'T' ? n : n * d), 1);
const f32 = (shape: readonly Dim[]): TensorType => ({ shape, dtype: 'f32' });
const fail = (msg: string): never => { throw new OpError(msg); };
const same = (a: Dim | string, b: Dim | string, msg: string): void => { if (a !== b) throw new OpError(msg); };
const num = (a: Record<string, unknown>, k: string) => a[k] as number;

export const SCALE: OpDef = {
  name: 'scale', doc: 'x · by, compile-time factors: one (what `tensor * number` and `tensor / number` write), or one per part of the last dim (µP multipliers: Falcon-H1)',
  inputs: [{ name: 'x' }],
  attrs: {
    by: { type: 'float', default: 1, doc: 'the factor of every element' },
    sizes: { type: 'list', optional: true, doc: 'consecutive parts of the last dim (as split), each times its factor' },
    factors: { type: 'list', optional: true, doc: 'one factor per part of `sizes`' },
  },
  infer([x], a) {
    const X = need(x, 'x'), sizes = a.sizes as number[] | undefined, fs = a.factors as number[] | undefined;
    if (!sizes !== !fs) throw new OpError('scale takes sizes and factors together, or neither');
    if (sizes && fs) {
      if (sizes.some((n) => !Number.isInteger(n) || n <= 0)) throw new OpError(`scale sizes must be positive integers, got [${sizes.join(', ')}]`);
      same(sizes.reduce((s, n) => s + n, 0), last(X), `scale sizes [${sizes.join(', ')}] do not sum to the last dim of ${fmt(X.shape)}`);
      if (fs.length !== sizes.length || fs.some((f) => typeof f !== 'number' || !Number.isFinite(f))) throw new OpError(`scale needs one finite factor per part: ${sizes.length} sizes, factors [${fs.join(', ')}]`);
    }
    return [f32(X.shape)];
  },
  flops: ([x]) => rowSize(x!),
  lower(c) {
    const by = num(c.attrs, 'by'), sizes = c.attrs.sizes as number[] | undefined;
    if (!sizes) return c.elementwise((leaf) => ({ op: 'mul', a: leaf(0), b: { op: 'const', value: by } }));
    // one kernel per part and row of the token (as split's copies read theirs), each writing its
    // columns of the output: a view holds one row per token
    const x = c.in(0) as View, y = c.out(0), W = last(c.types[0]!) as number, rows = rowSize(c.types[0]!) / W;
    let col = 0;
    sizes.forEach((n, i) => {
      for (let s = 0; s < rows; s++) {
        const at = s * W + col;
        c.emit({ family: 'elementwise', part: rows > 1 ? `${i}.${s}` : String(i), sizes: { W: n }, inputs: { x: { buf: x.buf, col: x.col + at, width: n } },
          body: { op: 'mul', a: { op: 'in', name: 'x' }, b: { op: 'const', value: by * (c.attrs.factors as number[])[i]! } }, outputs: { y: { buf: y.buf, col: y.col + at, width: n } } });
      }
      col += n;
    });
  },
};
