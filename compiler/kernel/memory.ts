// The memory plan: every activation buffer of an entry gets a place in one arena, reused by
// liveness. A buffer lives from the kernel that first writes it to the last kernel that reads it
// (entry outputs to the end); two buffers share floats only when their lives do not overlap, so no
// kernel's operands alias. Token-row buffers and sequence-row buffers (and constants) are planned
// in two regions, so the plan, in floats per row, holds for any token and sequence count. Buffers
// no kernel writes (left behind by fusion) are dropped and the rest renumbered densely.

import { InternalError } from '../../dsl/diagnostics.ts';
import type { EntryOf, ProgramBuffer, TrainKernel, TrainOperand, View } from '../../runtime/program.ts';
import type { LoweredOf } from './lower.ts';

interface Life {
  readonly buf: number;
  readonly from: number;
  readonly to: number;
}

/** `constants`: constant buffers get a region of their own, not scaled by the sequences (the train
 *  entry's weight gradients); inference entries keep them in the sequence region. */
export function planMemory<K extends TrainKernel>(l: LoweredOf<K, string>, opts: { constants?: boolean } = {}): EntryOf<K> {
  const from = new Map<number, number>();
  const to = new Map<number, number>();
  l.kernels.forEach((k, i) => {
    for (const v of Object.values(k.outputs)) if (!from.has(v.buf)) from.set(v.buf, i);
    for (const o of Object.values(k.inputs)) if ('buf' in o) to.set(o.buf, i);
  });
  const end = l.kernels.length;
  for (const v of Object.values(l.outputs)) to.set(v.buf, end);
  for (const [buf, i] of to) {
    if (!from.has(buf) || from.get(buf)! > i) throw new InternalError(`memory plan: ${l.entry} reads buffer ${buf} before any kernel writes it`);
  }
  const lives: Life[] = [...from].map(([buf, f]) => ({ buf, from: f, to: Math.max(f, to.get(buf) ?? f) }));
  const ids = new Map(lives.map((x, i) => [x.buf, i]));
  const offset = new Map<number, number>();
  const arena = { T: 0, S: 0, C: 0 };
  const regionOf = (rows: string) => (rows === 'T' ? 'T' : rows === 'C' && opts.constants ? 'C' : 'S');
  for (const region of ['T', 'S', 'C'] as const) {
    const mine = lives.filter((x) => regionOf(l.buffers[x.buf]!.rows) === region).sort((a, b) => a.from - b.from || a.buf - b.buf);
    const placed: { life: Life; at: number; width: number }[] = [];
    for (const life of mine) {
      const width = l.buffers[life.buf]!.width;
      // lowest offset that clears every placed buffer whose life overlaps this one
      const busy = placed.filter((p) => p.life.from <= life.to && life.from <= p.life.to).sort((a, b) => a.at - b.at);
      let at = 0;
      for (const p of busy) {
        if (at + width <= p.at) break;
        at = Math.max(at, p.at + p.width);
      }
      placed.push({ life, at, width });
      offset.set(life.buf, at);
      arena[region] = Math.max(arena[region], at + width);
    }
  }
  const buffers: ProgramBuffer[] = lives.map((x) => ({ id: ids.get(x.buf)!, width: l.buffers[x.buf]!.width, rows: l.buffers[x.buf]!.rows, offset: offset.get(x.buf)! }));
  const view = (v: View): View => ({ buf: ids.get(v.buf)!, col: v.col, width: v.width });
  const operand = (o: TrainOperand): TrainOperand => ('buf' in o ? view(o) : o);
  const kernels = l.kernels.map((k): K => ({
    ...k,
    inputs: Object.fromEntries(Object.entries(k.inputs).map(([n, o]) => [n, operand(o)])),
    outputs: Object.fromEntries(Object.entries(k.outputs).map(([n, v]) => [n, view(v)])),
  }));
  const outputs = Object.fromEntries(Object.entries(l.outputs).map(([n, v]) => [n, view(v)]));
  return { buffers, arena: opts.constants ? arena : { T: arena.T, S: arena.S }, kernels, outputs };
}

/** Arena bytes of an entry for `tokens` token rows and `sequences` sequence rows (f32). */
export function arenaBytes(e: EntryOf<unknown>, tokens: number, sequences: number): number {
  return 4 * (e.arena.T * tokens + e.arena.S * sequences + (e.arena.C ?? 0));
}
