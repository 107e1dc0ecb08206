// Every primitive's shape rule: a good use and the errors it must catch.

import { describe, expect, it } from 'vitest';
import { OPS, OP_BY_NAME, OpError, type Attrs, type TensorType } from '../../compiler/ops.ts';

const t = (...shape: (number | 'T')[]): TensorType => ({ shape, dtype: 'f32' });
const ids = (): TensorType => ({ shape: ['T'], dtype: 'i32' });
const infer = (op: string, inputs: (TensorType | null)[], attrs: Attrs = {}) => {
  const def = OP_BY_NAME.get(op)!;
  const full: Record<string, unknown> = {};
  for (const [k, a] of Object.entries(def.attrs)) if (a.default !== undefined) full[k] = a.default;
  return def.infer(inputs, { ...full, ...attrs } as Attrs).map((x) => x.shape);
};
const bad = (op: string, inputs: (TensorType | null)[], attrs: Attrs, text: RegExp) => {
  expect(() => infer(op, inputs, attrs)).toThrow(OpError);
  expect(() => infer(op, inputs, attrs)).toThrow(text);
};

describe('shape rules', () => {
  it('embedding', () => {
    expect(infer('embedding', [ids(), t(100, 8)])).toEqual([['T', 8]]);
    bad('embedding', [ids(), t(100)], {}, /must be \[vocab, dim\]/);
    bad('embedding', [t('T'), t(100, 8)], {}, /ids must be integers/);
  });
  it('linear and head', () => {
    expect(infer('linear', [t('T', 8), t(4, 8), t(4)])).toEqual([['T', 4]]);
    expect(infer('linear', [t('T', 8), t(4, 8), null])).toEqual([['T', 4]]);
    bad('linear', [t('T', 9), t(4, 8), null], {}, /input width 9 does not match weight \[4, 8\]/);
    bad('linear', [t('T', 8), t(4, 8), t(5)], {}, /bias \[5\] does not match 4 outputs/);
    expect(infer('linear', [t('T', 3, 8), t(4, 8), null])).toEqual([['T', 3, 4]]);
    expect(infer('linear', [t('T', 8), t(8, 4), t(4)], { transposed: true })).toEqual([['T', 4]]);
    bad('linear', [t('T', 8), t(4, 8), null], { transposed: true }, /input width 8 does not match weight \[4, 8\] \(in = 4\)/);
    bad('linear', [t('T', 8), t(8, 4), t(8)], { transposed: true }, /bias \[8\] does not match 4 outputs/);
    expect(infer('head', [t('T', 8), t(50, 8)])).toEqual([['T', 50]]);
    bad('head', [t('T', 7), t(50, 8)], {}, /does not match/);
  });
  it('add and mul broadcast trailing dims', () => {
    expect(infer('add', [t('T', 4), t('T', 4)])).toEqual([['T', 4]]);
    expect(infer('add', [t('T', 4), t(4)])).toEqual([['T', 4]]);
    expect(infer('mul', [t('T', 2, 4), t(4)])).toEqual([['T', 2, 4]]);
    bad('add', [t('T', 4), t(5)], {}, /cannot add \[5\] to \[T, 4\]/);
    bad('mul', [t(4), t('T', 4)], {}, /cannot mul/);
  });
  it('split and reshape', () => {
    expect(infer('split', [t('T', 10)], { sizes: [3, 7] })).toEqual([['T', 3], ['T', 7]]);
    bad('split', [t('T', 10)], { sizes: [3, 6] }, /sum to 9, but the last dim of \[T, 10\] is 10/);
    bad('split', [t('T', 10)], { sizes: [0, 10] }, /positive integers/);
    expect(infer('reshape', [t('T', 12)], { dims: [3, 4] })).toEqual([['T', 3, 4]]);
    expect(infer('reshape', [t('T', 3, 4)], { dims: [12] })).toEqual([['T', 12]]);
    bad('reshape', [t('T', 12)], { dims: [5, 2] }, /cannot reshape \[T, 12\] to \[T, 5, 2\]/);
  });
  it('elementwise ops keep the shape', () => {
    for (const op of ['silu', 'softplus', 'exp', 'neg', 'gelu', 'relu2']) expect(infer(op, [t('T', 3)])).toEqual([['T', 3]]);
    expect(infer('scale', [t('T', 2, 3)], { by: 0.5 })).toEqual([['T', 2, 3]]);
    expect(infer('scale', [t('T', 7)], { sizes: [3, 4], factors: [0.5, 2] })).toEqual([['T', 7]]);
    bad('scale', [t('T', 7)], { sizes: [3, 4] }, /sizes and factors together/);
    bad('scale', [t('T', 7)], { sizes: [3, 3], factors: [1, 2] }, /do not sum to the last dim/);
    bad('scale', [t('T', 7)], { sizes: [3, 4], factors: [1] }, /one finite factor per part/);
    expect(infer('gelu', [t('T', 2, 3)], { tanh: true })).toEqual([['T', 2, 3]]);
    expect(infer('clamp', [t('T', 3)], { min: 0, max: Infinity })).toEqual([['T', 3]]);
    bad('clamp', [t('T', 3)], { min: 2, max: 1 }, /min 2 is above max 1/);
  });
  it('rmsnorm and rmsnorm_gated', () => {
    expect(infer('rmsnorm', [t('T', 8), t(8)], { eps: 1e-5 })).toEqual([['T', 8]]);
    bad('rmsnorm', [t('T', 8), t(7)], { eps: 1e-5 }, /weight \[7\] does not match width 8/);
    expect(infer('rmsnorm', [t('T', 4, 8), t(8)], { eps: 1e-5 })).toEqual([['T', 4, 8]]);
    expect(infer('rmsnorm_gated', [t('T', 8), t('T', 8), t(8)], { eps: 1e-5, groups: 2 })).toEqual([['T', 8]]);
    bad('rmsnorm_gated', [t('T', 8), t('T', 6), t(8)], { eps: 1e-5, groups: 1 }, /gate \[T, 6\] does not match/);
    bad('rmsnorm_gated', [t('T', 8), t('T', 8), t(8)], { eps: 1e-5, groups: 3 }, /groups 3 does not divide width 8/);
  });
  it('layernorm: weight and optional bias over the last dim, any rank', () => {
    expect(infer('layernorm', [t('T', 8), t(8), t(8)])).toEqual([['T', 8]]);
    expect(infer('layernorm', [t('T', 2, 8), t(8), null])).toEqual([['T', 2, 8]]);
    bad('layernorm', [t('T', 8), t(7), null], {}, /layernorm weight \[7\] does not match width 8/);
    bad('layernorm', [t('T', 8), t(8), t(4)], {}, /layernorm bias \[4\] does not match width 8/);
  });
  it('causal_conv1d carries a conv window per sequence', () => {
    const conv = OP_BY_NAME.get('causal_conv1d')!;
    expect(infer('causal_conv1d', [t('T', 6), t(6, 1, 4), t(6)])).toEqual([['T', 6]]);
    expect(conv.state!([t('T', 6), t(6, 1, 4), null], {})).toEqual({ kind: 'conv', per: 'sequence', shape: [6, 3] });
    bad('causal_conv1d', [t('T', 6), t(5, 1, 4), null], {}, /does not match 6 channels/);
    bad('causal_conv1d', [t('T', 6), t(6, 2, 4), null], {}, /depthwise/);
    bad('causal_conv1d', [t('T', 6), t(6, 1, 4), t(5)], {}, /bias \[5\]/);
  });
  it('ssd carries an SSM state per sequence and checks heads against groups', () => {
    const ssd = OP_BY_NAME.get('ssd')!;
    const ins = (H: number, G: number) => [t('T', H, 4), t('T', H), t(H), t('T', G, 8), t('T', G, 8), t(H)];
    expect(infer('ssd', ins(4, 2), { chunk: 16 })).toEqual([['T', 4, 4]]);
    expect(ssd.state!(ins(4, 2), { chunk: 16 })).toEqual({ kind: 'ssm', per: 'sequence', shape: [4, 4, 8] });
    bad('ssd', ins(6, 4), { chunk: 16 }, /groups 4 do not divide heads 6/);
    bad('ssd', [t('T', 4, 4), t('T', 3), t(4), t('T', 1, 8), t('T', 1, 8), t(4)], { chunk: 16 }, /dt \[T, 3\] must be \[T, 4\]/);
    bad('ssd', ins(4, 2), { chunk: 0 }, /chunk must be a positive integer/);
  });
  it('rope rotates an even number of dims within the head', () => {
    expect(infer('rope', [t('T', 4, 16), ids()], { rotary_dim: 8, theta: 10000 })).toEqual([['T', 4, 16]]);
    bad('rope', [t('T', 4, 16), ids()], { rotary_dim: 7, theta: 10000 }, /must be even/);
    bad('rope', [t('T', 4, 16), ids()], { rotary_dim: 32, theta: 10000 }, /between 2 and the head dim 16/);
    bad('rope', [t('T', 4, 16), t('T')], { rotary_dim: 8, theta: 10000 }, /positions must be integers/);
  });
  it('attention: GQA heads must divide, and it carries a KV cache per token', () => {
    const attn = OP_BY_NAME.get('attention')!;
    expect(infer('attention', [t('T', 8, 16), t('T', 2, 16), t('T', 2, 16)], { scale: 0.25 })).toEqual([['T', 8, 16]]);
    expect(attn.state!([t('T', 8, 16), t('T', 2, 16), t('T', 2, 16)], { scale: 0.25 })).toEqual({ kind: 'kv', per: 'token', shape: [2, 2, 16] });
    bad('attention', [t('T', 8, 16), t('T', 3, 16), t('T', 3, 16)], { scale: 1 }, /kv heads 3 do not divide heads 8/);
    bad('attention', [t('T', 8, 16), t('T', 2, 8), t('T', 2, 8)], { scale: 1 }, /head dims differ/);
  });
  it('sigmoid, scale and softmax keep the shape', () => {
    expect(infer('sigmoid', [t('T', 3)])).toEqual([['T', 3]]);
    expect(infer('scale', [t('T', 2, 3)], { by: 0.5 })).toEqual([['T', 2, 3]]);
    expect(infer('softmax', [t('T', 2, 5)])).toEqual([['T', 2, 5]]);
  });
  it('topk: values and integer indices [T, k] of a [T, n] row', () => {
    const outs = OP_BY_NAME.get('topk')!.infer([t('T', 8)], { k: 2, normalize: false });
    expect(outs).toEqual([{ shape: ['T', 2], dtype: 'f32' }, { shape: ['T', 2], dtype: 'i32' }]);
    bad('topk', [t('T', 8)], { k: 9 }, /k 9 must be an integer from 1 to the row's 8/);
    bad('topk', [t('T', 8)], { k: 0 }, /k 0 must be/);
    bad('topk', [t('T', 2, 8)], { k: 1 }, /must be \[T, n\]/);
  });
  it('experts: w_in [E, 2·I, H] and w_out [E, H, I] over [T, H], k of E per token', () => {
    const idx = (k: number): TensorType => ({ shape: ['T', k], dtype: 'i32' });
    const experts = OP_BY_NAME.get('experts')!;
    expect(infer('experts', [t('T', 8), idx(2), t('T', 2), t(4, 12, 8), t(4, 8, 6)])).toEqual([['T', 8]]);
    expect(experts.active!([t('T', 8), idx(2), t('T', 2), t(4, 12, 8), t(4, 8, 6)])).toBe(0.5);
    bad('experts', [t('T', 8), idx(2), t('T', 3), t(4, 12, 8), t(4, 8, 6)], {}, /idx \[T, 2\] and gates \[T, 3\] must both be/);
    bad('experts', [t('T', 8), idx(2), t('T', 2), t(4, 12, 7), t(4, 8, 6)], {}, /w_in \[4, 12, 7\] must be \[E, 2·I, 8\]/);
    bad('experts', [t('T', 8), idx(2), t('T', 2), t(4, 12, 8), t(4, 6, 8)], {}, /w_out \[4, 6, 8\] must be \[4, 8, 6\]/);
    bad('experts', [t('T', 8), idx(5), t('T', 5), t(4, 12, 8), t(4, 8, 6)], {}, /picks 5 of 4 experts/);
  });
  it('gather [T, n, …] by i32 [T, k] is [T, k, …]; scatter [T, k, …] into rows is [T, rows, …] (more cases: test/runtime/cpu/gather.test.ts)', () => {
    const idx = (k: number): TensorType => ({ shape: ['T', k], dtype: 'i32' });
    expect(infer('gather', [t('T', 6, 4), idx(3)])).toEqual([['T', 3, 4]]);
    expect(infer('gather', [t('T', 6), idx(2)])).toEqual([['T', 2]]);
    expect(infer('scatter', [t('T', 3, 4), idx(3)], { rows: 7 })).toEqual([['T', 7, 4]]);
    bad('gather', [t(6, 4), idx(3)], {}, /x must be \[T, rows/);
    bad('scatter', [t('T', 2, 4), idx(3)], { rows: 7 }, /2 rows per token but idx has 3/);
  });
  it('every op has a rule test above', () => {
    expect(OPS.map((o) => o.name).sort()).toEqual(['add', 'attention', 'causal_conv1d', 'clamp', 'embedding', 'exp', 'experts', 'gather', 'gelu', 'head',
      'layernorm', 'linear', 'mul', 'neg', 'relu2', 'reshape', 'rmsnorm', 'rmsnorm_gated', 'rope', 'scale', 'scatter', 'sigmoid', 'silu', 'softmax', 'softplus', 'split', 'ssd', 'topk']);
  });
});
