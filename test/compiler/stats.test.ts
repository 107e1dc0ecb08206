import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { compileFile } from '../../compiler/compile.ts';
import { computeStats } from '../../compiler/stats.ts';
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
