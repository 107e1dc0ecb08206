// A model's sequences: handles over state slots, checked on every use. Each slot has a generation
// counter, bumped when the slot is released; a handle holds the generation it was made with, so a
// released handle (whose slot may now hold another sequence), a handle of another model or a forged
// object is refused with a code instead of reaching the slot. Live sequences are bounded; a handle
// dropped without release (an abandoned `generate` iterator) gives its slot back when collected.
// Saved sequences carry a header (the program's fingerprint, length, bytes of state) and hold only
// what the sequence holds: every per-sequence state (conv window, SSM state) whole and the first
// `length` rows of each KV cache, so a short sequence saves small whatever the capacity, and
// restores into any model of the same program whose capacity holds it. They are checked whole
// before a slot is taken.

import type { StatePool } from './backend.ts';
import type { SlotState } from './engine.ts';
import { RuntimeError } from './errors.ts';
import { bf16ToF32 } from './tensor.ts';
import { type Program, type ProgramState, kvRows, sequenceFloats, slotLayout } from './program.ts';

/** A sequence of a model (Model.newSequence): an opaque handle the model checks on every use. */
export interface SequenceState {
  /** The state slot it decodes in. */
  readonly slot: number;
  /** Tokens seen so far (the next position). */
  readonly length: number;
  /** The most tokens the sequence may hold. */
  readonly capacity: number;
}

/** A sequence's state saved outside its slot (Model.saveSequence): `bytes` is the header below and
 *  the floats the sequence holds (heldRuns); `length` repeats the header's. */
export interface SavedSequence {
  readonly length: number;
  readonly bytes: Uint8Array;
}

/** What the table knows of a handle (the engine's view of it, and the slot's generation). */
interface Rec extends SlotState {
  readonly table: Sequences;
  readonly gen: number;
}

/** Every handle ever made, to its record: a forged object has none. */
const records = new WeakMap<object, Rec>();

/** The header of a saved sequence: 48 bytes, little-endian. */
const MAGIC = 'archcseq';
const VERSION = 2;
export const SAVED_HEADER_BYTES = 48;
const HEADER = SAVED_HEADER_BYTES;
// [0, 8) magic · [8, 12) u32 version · [12, 16) u32 header bytes · [16, 20) u32 length ·
// [20, 24) u32 capacity of the model that saved it (for messages) · [24, 32) u64 bytes of state
// that follow · [32, 40) u64 program fingerprint · [40, 48) zero

/** The runs of a slot (float offset, count, whether its values are bf16) a sequence of `length`
 *  tokens holds, for slots of `capacity` (runtime/program.ts slotLayout): each per-sequence state
 *  whole; a per-token state is shape[0] blocks (K, V) of [rows][row] (rows = capacity, or a sliding
 *  window's ring: kvRows), of which the first min(length, rows) rows. */
export function heldRuns(states: readonly ProgramState[], capacity: number, length: number): [number, number, boolean?][] {
  const { offsets } = slotLayout(states, capacity);
  const runs: [number, number, boolean?][] = [];
  states.forEach((s, i) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (s.per === 'sequence') runs.push([offsets[i]!, sequenceFloats(s), s.dtype === 'bf16']);
    else {
      const blocks = s.shape[0]!, row = n / blocks, rows = kvRows(s, capacity);
      for (let b = 0; b < blocks; b++) runs.push([offsets[i]! + b * rows * row, Math.min(length, rows) * row]);
    }
  });
  return runs;
}

export class Sequences {
  /** Generation of each slot: a handle is live while its generation is its slot's. */
  private readonly gens: number[] = [];
  private live = 0;
  private closed = false;
  private fingerprint: bigint | undefined;
  /** Slots of handles collected without a release. */
  private readonly registry = new FinalizationRegistry<Rec>((rec) => {
    if (!this.closed && this.gens[rec.slot] === rec.gen) this.drop(rec);
  });

  constructor(private readonly pool: StatePool, readonly capacity: number, readonly maxLive: number, private readonly program: Program) {}

  /** Sequences open now. */
  get open(): number {
    return this.live;
  }

  /** Refuses (RT333) unless `n` more sequences fit under the bound. */
  reserve(n: number): void {
    if (this.live + n > this.maxLive) throw new RuntimeError('RT333', [this.live, n, this.maxLive]);
  }

  /** A fresh sequence in a zeroed slot. */
  create(): SequenceState {
    this.reserve(1);
    const slot = this.pool.acquire();
    const gen = (this.gens[slot] ??= 0);
    const rec: Rec = { table: this, pool: this.pool, slot, gen, length: 0, capacity: this.capacity };
    const handle = Object.freeze({
      get slot() { return rec.slot; },
      get length() { return rec.length; },
      capacity: this.capacity,
    });
    records.set(handle, rec);
    this.registry.register(handle, rec, rec);
    this.live++;
    return handle;
  }

  /** The slot state behind a live handle of this table; `what` names the call (RT330–332). */
  state(h: SequenceState, what: string): SlotState {
    const rec = typeof h === 'object' && h !== null ? records.get(h) : undefined;
    if (!rec) throw new RuntimeError('RT332', [what, describe(h)]);
    if (rec.table !== this) throw new RuntimeError('RT331', [what]);
    if (this.closed) throw new RuntimeError('RT334', [what]);
    if (this.gens[rec.slot] !== rec.gen) throw new RuntimeError('RT330', [what, rec.slot]);
    return rec;
  }

  release(h: SequenceState): void {
    this.state(h, 'releaseSequence');
    const rec = records.get(h)!;
    this.registry.unregister(rec);
    this.drop(rec);
  }

  private drop(rec: Rec): void {
    this.gens[rec.slot] = rec.gen + 1;
    this.live--;
    this.pool.release(rec.slot);
  }

  /** A new sequence that continues like `h`. */
  copy(h: SequenceState): SequenceState {
    const from = this.state(h, 'copySequence');
    const c = this.create();
    const to = records.get(c)!;
    this.pool.copy(from.slot, to.slot);
    to.length = from.length;
    return c;
  }

  /** The header for a sequence of `length` tokens, then what it holds of the slot's bytes. */
  pack(length: number, slot: Uint8Array): SavedSequence {
    const runs = heldRuns(this.program.states, this.capacity, length);
    const held = runs.reduce((a, [, n]) => a + 4 * n, 0);
    const bytes = new Uint8Array(HEADER + held);
    const d = new DataView(bytes.buffer);
    for (let i = 0; i < MAGIC.length; i++) bytes[i] = MAGIC.charCodeAt(i);
    d.setUint32(8, VERSION, true);
    d.setUint32(12, HEADER, true);
    d.setUint32(16, length, true);
    d.setUint32(20, this.capacity, true);
    d.setBigUint64(24, BigInt(held), true);
    d.setBigUint64(32, this.programFingerprint(), true);
    let at = HEADER;
    for (const [o, n] of runs) {
      bytes.set(slot.subarray(4 * o, 4 * (o + n)), at);
      at += 4 * n;
    }
    return { length, bytes };
  }

  /** A new sequence holding a saved state, checked whole before a slot is taken (RT335, RT336). */
  restore(saved: SavedSequence): SequenceState {
    const { length, state } = this.unpack(saved);
    const h = this.create();
    const rec = records.get(h)!;
    try {
      this.pool.restore(rec.slot, state);
    } catch (e) {
      this.release(h);
      throw e;
    }
    rec.length = length;
    return h;
  }

  private unpack(saved: SavedSequence): { length: number; state: Uint8Array } {
    const bad = (why: string): never => { throw new RuntimeError('RT335', [why]); };
    if (typeof saved !== 'object' || saved === null || !(saved.bytes instanceof Uint8Array)) bad('expected { length, bytes: Uint8Array } from saveSequence');
    const b = saved.bytes;
    if (b.byteLength < HEADER) bad(`${b.byteLength} bytes, shorter than the ${HEADER}-byte header`);
    const d = new DataView(b.buffer, b.byteOffset, b.byteLength);
    if (String.fromCharCode(...b.subarray(0, MAGIC.length)) !== MAGIC) bad('no archcseq header: not bytes from saveSequence');
    if (d.getUint32(8, true) !== VERSION || d.getUint32(12, true) !== HEADER) bad(`format version ${d.getUint32(8, true)}, this runtime reads ${VERSION}`);
    if (d.getBigUint64(32, true) !== this.programFingerprint()) bad('saved by a model of another program');
    const length = d.getUint32(16, true);
    if (length > this.capacity) bad(`length ${length} is over the capacity ${this.capacity} (saved by a model of capacity ${d.getUint32(20, true)})`);
    if (saved.length !== length) bad(`length ${String(saved.length)} does not match the header's ${length}`);
    const runs = heldRuns(this.program.states, this.capacity, length);
    const held = runs.reduce((a, [, n]) => a + 4 * n, 0);
    if (d.getBigUint64(24, true) !== BigInt(held)) bad(`the header gives ${d.getBigUint64(24, true)} bytes of state; a sequence of ${length} tokens holds ${held}`);
    if (b.byteLength !== HEADER + held) bad(`${b.byteLength} bytes, expected ${HEADER} + ${held}`);
    // every state value must be finite (a NaN decodes to NaN logits for ever after): a float, or in
    // a bf16 state's run each half of one
    const f = new Float32Array(b.slice(HEADER).buffer), half = new Uint16Array(f.buffer);
    for (let r = 0, at = 0; r < runs.length; at += runs[r++]![1]) {
      const [, n, bf16] = runs[r]!;
      if (bf16) {
        for (let i = 2 * at; i < 2 * (at + n); i++) if ((half[i]! & 0x7f80) === 0x7f80) throw new RuntimeError('RT336', [bf16ToF32(half[i]!), i >> 1]);
      } else for (let i = at; i < at + n; i++) if (f[i]! - f[i]! !== 0) throw new RuntimeError('RT336', [f[i], i]);
    }
    // the whole slot: what was held where it lies, zeros past the sequence's rows
    const slot = new Float32Array(this.pool.slotBytes >> 2);
    let at = 0;
    for (const [o, n] of runs) {
      slot.set(f.subarray(at, at + n), o);
      at += n;
    }
    return { length, state: new Uint8Array(slot.buffer) };
  }

  /** 64 bits of FNV-1a (two lanes) over the program's states and entries: what the slot means. */
  private programFingerprint(): bigint {
    if (this.fingerprint === undefined) {
      const text = JSON.stringify([this.program.states, this.program.entries]);
      let a = 0x811c9dc5, b = 0x01000193 ^ 0x5bd1e995;
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        a = Math.imul(a ^ c, 0x01000193);
        b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
      }
      this.fingerprint = (BigInt(a >>> 0) << 32n) | BigInt(b >>> 0);
    }
    return this.fingerprint;
  }

  /** The model is disposed: every handle is refused from now on. */
  close(): void {
    this.closed = true;
  }
}

function describe(x: unknown): string {
  if (x === null || typeof x !== 'object') return typeof x === 'string' ? JSON.stringify(x).slice(0, 40) : String(x);
  return Array.isArray(x) ? 'an array' : 'an object newSequence did not make';
}
