// What every run of an entry on WebGPU does, the inference entries' (backend.ts) and the train
// entry's (train.ts): the batch's integer buffer, and a kernel's passes recorded into the encoder.

import type { RunBatch } from '../backend.ts';
import { slotLayout } from '../program.ts';
import type { WebGpuBackend } from './backend.ts';
import { CHUNK_FIELDS, SEQ_FIELDS, type Pass, type RunCount } from './shaders.ts';
import { type BoundPass, fillRotary, intsWords } from './split.ts';

/** The integer buffer of a batch: header, tokens, positions, row -> sequence, sequence and chunk
 *  records, the rotary table, then `tail` words for the caller (a train entry's labels); and the
 *  number of SSD chunks of `chunk` rows. */
export function batchInts(gpu: WebGpuBackend, batch: RunBatch, capacity: number, chunk: number, tail = 0): { ints: Uint32Array<ArrayBuffer>; chunks: number } {
  const T = batch.tokens.length, S = batch.seqs.length, { header } = gpu.shaders;
  const { floats, offsets } = slotLayout(gpu.program.states, capacity);
  const chunkCounts = batch.seqs.map((s) => (chunk ? Math.ceil(s.len / chunk) : 0));
  const chunks = chunkCounts.reduce((a, b) => a + b, 0);
  const ints = new Uint32Array(intsWords(gpu.shaders, T, S, chunks) + tail);
  ints.set([T, S, capacity, floats, ...offsets, fillRotary(ints.subarray(0, ints.length - tail), gpu.shaders.rotary, batch.positions)]);
  let at = header;
  ints.set(batch.tokens, at);
  ints.set(batch.positions, at + T);
  at += 3 * T;
  let first = 0;
  batch.seqs.forEach((s, i) => {
    ints.fill(i, header + 2 * T + s.start, header + 2 * T + s.start + s.len);
    ints.set([s.start, s.len, batch.slots[i]!, batch.lengths[i]!, first, chunkCounts[i]!], at + SEQ_FIELDS * i);
    for (let c = 0; c < chunkCounts[i]!; c++) {
      ints.set([s.start + c * chunk, Math.min(chunk, s.len - c * chunk), i], at + SEQ_FIELDS * S + CHUNK_FIELDS * (first + c));
    }
    first += chunkCounts[i]!;
  });
  return { ints, chunks };
}

/** Records the passes of one kernel that run at these row counts (`n`: tokens, sequences, 1, chunks),
 *  each as `bound` specialises it over the buffers `buffer` gives, its workgroups laid out over x and y. */
export function recordPasses(gpu: WebGpuBackend, passes: readonly Pass[], n: (rows: RunCount['rows']) => number, bound: (p: Pass) => BoundPass,
  buffer: (b: BoundPass['bindings'][number]) => GPUBuffer): void {
  for (const p of passes) {
    if (p.rowsAtMost !== undefined || p.rowsAbove !== undefined) {
      const productRows = n((p.rows ?? p.groups).rows) * (p.rows ?? p.groups).times;
      if (p.rowsAtMost !== undefined && productRows > p.rowsAtMost) continue;
      if (p.rowsAbove !== undefined && productRows <= p.rowsAbove) continue;
    }
    const groups = Math.ceil((n(p.groups.rows) * p.groups.times) / p.groups.per) * p.columns;
    if (groups === 0) continue;
    const bp = bound(p);
    const { pipeline } = gpu.pipeline(bp);
    const bind = gpu.bindGroup(bp, bp.bindings.map(buffer));
    const pass = gpu.commands().beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    const x = Math.min(groups, 65535);
    pass.dispatchWorkgroups(x, Math.ceil(groups / x));
    pass.end();
    gpu.dispatches++;
  }
}
