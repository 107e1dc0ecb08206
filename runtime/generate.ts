// Generation: prompts prefilled together, then one batched decode step per token for every sequence
// still going; each sequence samples with its own generator (seed + its index) and stops on its own
// (a stop id, a stop string, maxTokens, or the capacity with stopAtContext). A sequence the caller
// passes in continues from what it holds (a chat's next turn without re-reading the history) and
// is the caller's afterwards: it then holds the prompt and every token sampled, the last one (or
// the stop id) fed in too, ready for the next turn. Sequences made here are released at the end.

import { RuntimeError } from './errors.ts';
import { createRng } from './rng.ts';
import { type SamplingOptions, sampleToken, validateSampling } from './sampling.ts';
import type { SequenceState } from './sequences.ts';
import type { Tokenizer } from './tokenizer.ts';

export interface GenerateOptions extends SamplingOptions {
  readonly maxTokens?: number;
  /** Token ids that end generation (default: the tokenizer's eos ids). */
  readonly stop?: readonly number[];
  /** Strings that end generation once they appear in the output. */
  readonly stopStrings?: readonly string[];
  /** Stop cleanly when the sequence is full instead of refusing, up front, a prompt and maxTokens
   *  that need more than the capacity (RT307). */
  readonly stopAtContext?: boolean;
  /** Continue this sequence (Model.newSequence, or one kept from an earlier turn) instead of a
   *  fresh one: the prompt follows what it holds, and afterwards it holds the prompt and every
   *  token sampled. It stays the caller's (not released). `generateMany`: `sequences`, one each. */
  readonly sequence?: SequenceState;
}

export interface GenerateManyOptions extends Omit<GenerateOptions, 'sequence'> {
  /** One sequence per prompt to continue (see GenerateOptions.sequence). */
  readonly sequences?: readonly SequenceState[];
}

export interface GeneratedToken {
  /** The token id; -1 for a last entry that only carries text the detokenizer held back. */
  readonly id: number;
  /** The new text this token adds (empty without a tokenizer or while bytes are incomplete). */
  readonly text: string;
}

/** A token of one of several prompts' generations: `index` is the prompt's. */
export interface GeneratedTokenOf extends GeneratedToken {
  readonly index: number;
}

/** What generation needs of a model. */
export interface Generator {
  readonly capacity: number;
  readonly tokenizer: Tokenizer | null;
  encode(text: string): number[];
  newSequence(): SequenceState;
  releaseSequence(s: SequenceState): void;
  stepAsync(chunks: readonly ArrayLike<number>[], states: readonly SequenceState[], lastOnly?: boolean): Promise<Float32Array>;
  decodeAsync(tokens: readonly number[], states: readonly SequenceState[]): Promise<Float32Array>;
  readonly vocab: number;
}

interface Run {
  readonly index: number;
  readonly state: SequenceState;
  readonly mine: boolean;
  readonly history: number[];
  readonly maxTokens: number;
  readonly rng: ReturnType<typeof createRng>;
  readonly decoder: ReturnType<Tokenizer['decoder']> | undefined;
  text: string;
  made: number;
  logits: Float32Array;
  /** The last id sampled, not yet fed to the sequence. */
  pending: number;
  done: boolean;
}

export async function* generateMany(m: Generator, prompts: readonly (string | readonly number[])[], opts: GenerateManyOptions = {}): AsyncGenerator<GeneratedTokenOf> {
  validateSampling(opts);
  const given = opts.sequences;
  if (given && given.length !== prompts.length) throw new RuntimeError('RT301', [`${prompts.length} prompts but ${given.length} sequences`]);
  const ids = prompts.map((p) => (typeof p === 'string' ? m.encode(p) : [...p]));
  const asked = opts.maxTokens ?? 128;
  // Each sequence holds what it held, the prompt, and every sampled token but the last (the last
  // too where the sequence is the caller's): checked before the prefill, so a stream never breaks
  // off at the capacity (RT302) midway.
  const budgets = ids.map((p, i) => {
    if (p.length === 0) throw new RuntimeError('RT301', [prompts.length > 1 ? `prompt ${i} has no tokens` : 'the prompt has no tokens']);
    const held = (given?.[i]?.length ?? 0) + p.length;
    const fed = given ? 0 : 1;
    const room = m.capacity - held + fed;
    if (held + asked - fed > m.capacity && (!opts.stopAtContext || room < 1)) {
      throw new RuntimeError('RT307', [held, asked, held + asked - fed, m.capacity]);
    }
    return Math.min(asked, room);
  });
  const stop = new Set(opts.stop ?? m.tokenizer?.eosIds ?? []);
  const states = given ? [...given] : [];
  try {
    while (states.length < ids.length) states.push(m.newSequence());
  } catch (e) {
    for (const s of states.slice(given?.length ?? 0)) m.releaseSequence(s);
    throw e;
  }
  const runs: Run[] = [];
  try {
    const last = await m.stepAsync(ids, states, true);
    ids.forEach((p, i) => runs.push({
      index: i, state: states[i]!, mine: !given, history: [...p], maxTokens: budgets[i]!, rng: createRng((opts.seed ?? 0) + i),
      decoder: m.tokenizer?.decoder(), text: '', made: 0, logits: last.slice(i * m.vocab, (i + 1) * m.vocab), pending: -1, done: budgets[i]! < 1,
    }));
    for (;;) {
      const going = runs.filter((r) => !r.done);
      if (!going.length) break;
      for (const r of going) {
        const id = sampleToken(r.logits, opts, r.history, r.rng);
        r.history.push(id);
        r.pending = id;
        r.made++;
        if (stop.has(id)) {
          r.done = true;
          continue;
        }
        const piece = r.decoder ? r.decoder.push(id) : '';
        r.text += piece;
        yield { index: r.index, id, text: piece };
        if (r.made >= r.maxTokens || opts.stopStrings?.some((s) => r.text.includes(s))) r.done = true;
      }
      // the next step feeds each sampled id: of the sequences still going, and (the caller's) the last
      const feed = runs.filter((r) => r.pending >= 0 && (!r.done || !r.mine));
      if (!feed.length) continue;
      const logits = await m.decodeAsync(feed.map((r) => r.pending), feed.map((r) => r.state));
      feed.forEach((r, k) => {
        r.pending = -1;
        r.logits = logits.slice(k * m.vocab, (k + 1) * m.vocab);
      });
    }
  } finally {
    if (!given) for (const s of states) m.releaseSequence(s);
  }
  // Text each detokenizer held back (an unfinished character, a space it may still clean up).
  for (const r of runs) {
    const rest = r.decoder?.flush() ?? '';
    if (rest) yield { index: r.index, id: -1, text: rest };
  }
}

/** One prompt's generation (Model.generate). */
export async function* generateOne(m: Generator, prompt: string | readonly number[], opts: GenerateOptions = {}): AsyncGenerator<GeneratedToken> {
  const { sequence, ...rest } = opts;
  for await (const t of generateMany(m, [prompt], { ...rest, ...(sequence ? { sequences: [sequence] } : {}) })) yield { id: t.id, text: t.text };
}
