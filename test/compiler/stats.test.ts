import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { compileFile } from '../../compiler/compile.ts';
import { computeStats, formatStats } from '../../compiler/stats.ts';
import { MODELS } from '../helpers/compile.ts';

const BAMBA = join(MODELS, 'bamba.arch');
const CONFIG = join(import.meta.dirname, '..', 'fixtures', 'configs', 'bamba-9b.json');

describe('archc stats for Bamba-9B', () => {
  it('counts 9,254,898,816 parameters with tied embeddings (the .arch defaults)', () => {
    const s = computeStats(compileFile(BAMBA).graph, 4096, 1);
    expect(s.parameters.total).toBe(9_254_898_816);
    expect(s.parameters.byKind.embedding).toBe(128256 * 4096);
    expect(s.parameters.byKind.head).toBeUndefined();
    expect(s.weightBytes.byDtype).toEqual({ bf16: 9_254_898_816 * 2 });
  });

  it('counts 9,780,235,392 with the published config.json (tie_word_embeddings: false)', () => {
    const s = computeStats(compileFile(BAMBA, { hfConfig: CONFIG }).graph, 4096, 1);
    expect(s.parameters.total).toBe(9_780_235_392);
    expect(s.parameters.byKind.head).toBe(128256 * 4096);
  });

  it('gives each weight format\'s bytes: q8/q4 quantise every product\'s and embedding\'s matrix, the rest stays bf16', () => {
    const s = computeStats(compileFile(BAMBA, { hfConfig: CONFIG }).graph, 4096, 1);
    const total = 9_780_235_392;
    // not quantised: 65 RMSNorm weights of 4096; per Mamba layer (29) the conv weight [8448, 1, 4]
    // and bias, A_log, D and dt_bias (128 heads) and the gated norm (8192)
    const rest = 65 * 4096 + 29 * (8448 * 4 + 8448 + 3 * 128 + 8192);
    expect(s.weightBytes.quantizable).toBe(total - rest);
    expect(s.weightBytes.byFormat).toEqual({
      f32: total * 4, bf16: total * 2, q8: ((total - rest) * 8.5) / 8 + rest * 2, q4: ((total - rest) * 4.5) / 8 + rest * 2,
    });
    // about 5.5 GB at 4.5 bits a weight, 10.4 GB at 8.5
    expect(s.weightBytes.byFormat.q4 / 1e9).toBeCloseTo(5.50, 2);
    expect(s.weightBytes.byFormat.q8 / 1e9).toBeCloseTo(10.39, 2);
    const text = formatStats(s);
    expect(text).toContain('q4                      5.13 GiB     5.50 GB  does not fit one wasm memory (4 GiB)');
  });

  it('derives the inference state from the graph', () => {
    const s = computeStats(compileFile(BAMBA).graph, 4096, 2);
    // 3 attention layers × K and V × 8 kv heads × 128 dims × 4 bytes
    expect(s.state.kvBytesPerToken).toBe(3 * 2 * 8 * 128 * 4);
    // 29 Mamba layers × (conv window 8448 × 3 + SSM state 128 heads × 64 × 128) × 4 bytes
    expect(s.state.convSsmBytesPerSequence).toBe(29 * (8448 * 3 + 128 * 64 * 128) * 4);
    expect(s.state.totalBytes).toBe((s.state.kvBytesPerToken * 4096 + s.state.convSsmBytesPerSequence) * 2);
  });

  it('counts decode FLOPs as about two per parameter, growing with context', () => {
    const g = compileFile(BAMBA).graph;
    const short = computeStats(g, 128, 1).flopsPerToken.decode;
    const long = computeStats(g, 4096, 1).flopsPerToken.decode;
    const matmulParams = 9_254_898_816 - 128256 * 4096 + 128256 * 4096; // the tied head is a matmul too
    expect(short / (2 * matmulParams)).toBeGreaterThan(0.98);
    expect(short / (2 * matmulParams)).toBeLessThan(1.05);
    // attention reads 3 layers × 32 heads × 128 dims × (4 FLOPs + ...) per context token
    expect(long - short).toBeGreaterThan(3 * 4 * 32 * 128 * (4096 - 128));
  });
});

describe('archc stats with sliding-window attention (examples/mistral.arch, window 4096)', () => {
  const MISTRAL = join(MODELS, '..', 'examples', 'mistral.arch');
  const at = (context: number, window = 4096) => computeStats(compileFile(MISTRAL, { set: [`window=${window}`] }).graph, context, 3);

  it('bounds the KV cache per sequence by the window, and the total with it', () => {
    // 32 layers × K and V × 8 kv heads × 128 dims × 4 bytes, for min(window, context) tokens
    const perToken = 32 * 2 * 8 * 128 * 4;
    for (const context of [1000, 4096, 32768]) {
      const s = at(context);
      expect(s.state.kvBytesPerToken).toBe(perToken);
      expect(s.state.kvBytesPerSequence, `context ${context}`).toBe(perToken * Math.min(4096, context));
      expect(s.state.totalBytes).toBe(perToken * Math.min(4096, context) * 3);
    }
    expect(at(32768, 0).state.kvBytesPerSequence).toBe(perToken * 32768);
    expect(formatStats(at(32768))).toContain('KV (windowed)           1.00 GiB per sequence at context 32768');
    expect(formatStats(at(32768, 0))).not.toContain('windowed');
  });

  it('counts attention FLOPs over the window: decode stops growing past it, prefill grows slower', () => {
    // per layer and token: 4·H·Dh + 5·H per key seen (32 heads of 128)
    const perKey = 32 * (32 * (4 * 128 + 5));
    expect(at(10_000).flopsPerToken.decode).toBe(at(4096).flopsPerToken.decode);
    expect(at(4095).flopsPerToken.decode).toBe(at(4096, 0).flopsPerToken.decode - perKey);
    expect(at(10_000, 0).flopsPerToken.decode - at(10_000).flopsPerToken.decode).toBe(perKey * (10_001 - 4096));
    // prefill at n = 8192: mean keys (W(W+1)/2 + (n − W)·W) / n against (n + 1)/2
    const n = 8192, W = 4096;
    expect(at(n, 0).flopsPerToken.prefill - at(n).flopsPerToken.prefill).toBeCloseTo(perKey * ((n + 1) / 2 - (W * (W + 1) / 2 + (n - W) * W) / n), 3);
  });
});
