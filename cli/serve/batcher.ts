// Continuous batching over a model's state slots. Requests wait in a bounded queue; between decode
// steps, waiting requests join (up to `slots` at once: each restores the longest cached prefix of its
// prompt, or starts a fresh sequence, and prefills the rest on its own, a piece of at most
// `prefillChunk` tokens between two decode steps, so a long prompt does not stall the streams going)
// and finished or cancelled ones leave, so one decode step runs every sequence still going as one
// batch. Sampling follows runtime/generate.ts token for token (the same stop rules, sampler and
// generator), so a greedy reply equals Model.generate of the same prompt run alone. A request's
// state is kept in the StateCache after each piece of its prompt, and after its reply (the prompt
// and every token fed).

import type { Model } from '../../runtime/model.ts';
import { type Rng, createRng } from '../../runtime/rng.ts';
import { sampleToken } from '../../runtime/sampling.ts';
import type { SequenceState } from '../../runtime/sequences.ts';
import type { StreamDecoder } from '../../runtime/tokenizer.ts';
import type { StateCache } from './cache.ts';
import { type TokenLogprob, logprobsOf } from './logprobs.ts';

export interface JobSpec {
  readonly ids: readonly number[];
  /** Tokens to generate at most (checked against the capacity by the caller). */
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP?: number;
  /** Undefined: a random seed. */
  readonly seed?: number;
  /** Strings that end the reply; the reply stops before the first one (OpenAI's `stop`). */
  readonly stopStrings: readonly string[];
  /** Each token's logprob and this many likeliest alternatives (undefined: no logprobs). */
  readonly logprobs?: number;
}

export interface JobResult {
  readonly finish: 'stop' | 'length' | 'cancelled';
  readonly text: string;
  readonly ids: readonly number[];
  readonly promptTokens: number;
  /** Prompt tokens restored from the state cache instead of prefilled. */
  readonly cachedTokens: number;
  /** The reply's tokens' logprobs (when asked), as many as the text holds (none past a stop string). */
  readonly logprobs?: readonly TokenLogprob[];
}

/** The queue is full: the request is refused at once (HTTP 429). */
export class QueueFull extends Error {}

interface Job {
  readonly spec: JobSpec;
  readonly onText: (piece: string, logprobs: readonly TokenLogprob[]) => void;
  readonly resolve: (r: JobResult) => void;
  readonly reject: (e: unknown) => void;
  readonly rng: Rng;
  readonly decoder: StreamDecoder | undefined;
  state: SequenceState | null;
  /** The ids the state holds (prompt, then each sampled id fed back). */
  fed: number[];
  made: number[];
  logits: Float32Array | null;
  text: string;
  /** Characters of `text` sent to onText. */
  sent: number;
  /** The made tokens' logprobs (when asked), and how many went to onText. */
  lps: TokenLogprob[];
  lpSent: number;
  /** Ended at a stop string: the text is cut there. */
  stopped: boolean;
  cachedTokens: number;
  /** Prompt tokens the state holds (restored or prefilled). */
  prefilled: number;
  cancelled: boolean;
}

export interface BatcherOptions {
  /** Sequences decoding at once. */
  readonly slots: number;
  /** Requests waiting for a slot; one more is QueueFull. */
  readonly queue: number;
  readonly cache: StateCache;
  /** Prompt tokens prefilled between two decode steps, at most (whole multiples of `align` past the
   *  first piece); a longer prompt is prefilled over several steps. */
  readonly prefillChunk: number;
  /** The program's SSD chunk: pieces end on its multiples, where a piecewise prefill takes the same
   *  sums as a whole one (bit for bit on the CPU reference). */
  readonly align: number;
  /** A prompt's state is cached at every multiple of this many tokens inside it (rounded up to a
   *  multiple of `align`; pieces end there too), and at its end; 0: at its end only. A shared system
   *  prompt is then resumed by a different continuation from the last snapshot they share. */
  readonly snapshotEvery: number;
}

export class Batcher {
  private readonly waiting: Job[] = [];
  private readonly active: Job[] = [];
  private looping = false;
  /** Counters for /metrics. */
  readonly counts = { promptTokens: 0, cachedTokens: 0, completionTokens: 0, decodeSteps: 0, decodedSequences: 0, lastBatch: 0 };

  constructor(private readonly model: Model, readonly opts: BatcherOptions) {}

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Requests holding a slot. */
  get running(): number {
    return this.active.length;
  }

  /** Queues a request; `onText` gets the reply's text as it settles (never past a stop string), with
   *  the logprobs of the tokens whose text it completes.
   *  Aborting `signal` cancels it: out of the queue at once, or out of the batch before the next
   *  step, its slot released. Throws QueueFull when the queue is full. */
  submit(spec: JobSpec, onText: (piece: string, logprobs: readonly TokenLogprob[]) => void, signal?: AbortSignal): Promise<JobResult> {
    if (this.waiting.length >= this.opts.queue) throw new QueueFull(`${this.waiting.length} requests are waiting, the most this server queues (--max-queue)`);
    return new Promise<JobResult>((resolve, reject) => {
      const job: Job = {
        spec, onText, resolve, reject, rng: createRng(spec.seed), decoder: this.model.tokenizer?.decoder(), state: null,
        fed: [...spec.ids], made: [], logits: null, text: '', sent: 0, lps: [], lpSent: 0, stopped: false, cachedTokens: 0, prefilled: 0, cancelled: false,
      };
      signal?.addEventListener('abort', () => {
        job.cancelled = true;
        const at = this.waiting.indexOf(job);
        if (at >= 0) {
          this.waiting.splice(at, 1);
          this.settle(job, 'cancelled');
        }
      }, { once: true });
      this.waiting.push(job);
      if (!this.looping) void this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.looping = true;
    try {
      while (this.waiting.length || this.active.length) {
        for (const j of this.active.filter((j) => j.cancelled)) this.leave(j, 'cancelled');
        this.admit();
        await this.prefill();
        this.sampleAll();
        await this.decode();
        // the event loop runs between steps: new requests arrive, disconnects are seen
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      // a bug, not a request's fault: every request is answered with it rather than left hanging
      for (const j of [...this.active, ...this.waiting.splice(0)]) this.fail(j, e);
    } finally {
      this.looping = false;
    }
  }

  /** Waiting requests take the free slots: restored from the cache or fresh. */
  private admit(): void {
    while (this.active.length < this.opts.slots && this.waiting.length) {
      const job = this.waiting.shift()!;
      try {
        const hit = this.opts.cache.lookup(job.spec.ids);
        job.state = hit ? this.model.restoreSequence(hit.saved) : this.model.newSequence();
        job.cachedTokens = job.prefilled = hit ? hit.ids.length : 0;
        this.active.push(job);
        this.counts.promptTokens += job.spec.ids.length;
        this.counts.cachedTokens += job.cachedTokens;
      } catch (e) {
        this.fail(job, e);
      }
    }
  }

  /** Prompts not yet read take pieces, in the order they came, up to prefillChunk tokens in all; a
   *  prompt read to its end has the logits of its last token. Its state goes into the cache at each
   *  snapshot inside it and at its end. */
  private async prefill(): Promise<void> {
    let budget = this.opts.prefillChunk;
    const { align } = this.opts;
    const every = Math.ceil(this.opts.snapshotEvery / align) * align;
    for (const job of this.active.filter((j) => !j.cancelled && j.prefilled < j.spec.ids.length)) {
      if (budget <= 0) break;
      const { ids } = job.spec;
      let end = Math.min(ids.length, job.prefilled + budget);
      if (end < ids.length && Math.floor(end / align) * align > job.prefilled) end = Math.floor(end / align) * align;
      // a piece ends at the next snapshot
      if (every > 0) end = Math.min(end, (Math.floor(job.prefilled / every) + 1) * every);
      try {
        const logits = await this.model.stepAsync([ids.slice(job.prefilled, end)], [job.state!], true);
        budget -= end - job.prefilled;
        job.prefilled = end;
        // prompts that share a long beginning (a system prompt) but not the rest resume from the
        // last snapshot they share
        const snapshot = end === ids.length || (every > 0 && end % every === 0);
        if (snapshot && this.opts.cache.maxBytes > 0) this.opts.cache.put(ids.slice(0, end), await this.model.saveSequenceAsync(job.state!));
        if (end < ids.length) continue;
        job.logits = logits;
      } catch (e) {
        this.fail(job, e);
      }
    }
  }

  /** One token for each sequence that has logits, as generate.ts samples it. */
  private sampleAll(): void {
    const eos = new Set(this.model.tokenizer?.eosIds ?? []);
    for (const job of [...this.active]) {
      if (!job.logits || job.cancelled) continue;
      const { spec } = job;
      const logits = job.logits;
      const id = sampleToken(logits, { temperature: spec.temperature, topP: spec.topP }, job.made, job.rng);
      job.logits = null;
      if (eos.has(id)) {
        this.leave(job, 'stop');
        continue;
      }
      job.made.push(id);
      this.counts.completionTokens++;
      if (spec.logprobs !== undefined) job.lps.push({ id, offset: job.text.length, ...logprobsOf(logits, id, spec.logprobs) });
      job.text += job.decoder ? job.decoder.push(id) : '';
      if (this.emit(job, false)) this.leave(job, 'stop');
      else if (job.made.length >= spec.maxTokens) this.leave(job, 'length');
    }
  }

  /** Every sequence still going takes its last sampled id in one batched decode step. */
  private async decode(): Promise<void> {
    const going = this.active.filter((j) => !j.cancelled && j.made.length > 0 && j.fed.length < j.spec.ids.length + j.made.length);
    if (!going.length) return;
    this.counts.decodeSteps++;
    this.counts.lastBatch = going.length;
    this.counts.decodedSequences += going.length;
    const V = this.model.vocab;
    try {
      const last = going.map((j) => j.made[j.made.length - 1]!);
      // a view of the backend's memory where it has one, valid until the model next runs: sampled
      // now, before the next prefill
      const logits = await this.model.decodeAsync(last, going.map((j) => j.state!), { view: true });
      going.forEach((j, k) => {
        j.fed.push(last[k]!);
        j.logits = logits.subarray(k * V, (k + 1) * V);
      });
    } catch (e) {
      for (const j of going) this.fail(j, e);
    }
    this.sampleAll();
  }

  /** Sends the settled text (held back where it may begin a stop string) with the logprobs of the
   *  tokens it completes (at a stop string: of those that began before it); true at a stop string. */
  private emit(job: Job, final: boolean): boolean {
    const stops = job.spec.stopStrings;
    let end = job.text.length;
    let stopped = false;
    for (const s of stops) {
      const at = job.text.indexOf(s, Math.max(0, job.sent - s.length + 1));
      if (at >= 0 && at < end) {
        end = at;
        stopped = true;
      }
    }
    if (!stopped && !final) end -= heldBack(job.text, stops);
    const lps = job.lps;
    let k = job.lpSent;
    // token k's text ends where token k + 1's begins (the last one's: at the end of the text)
    const endOf = (k: number) => (k + 1 < lps.length ? lps[k + 1]!.offset : job.text.length);
    if (stopped) while (k < lps.length && lps[k]!.offset < end) k++;
    else if (final) k = lps.length;
    else while (k < lps.length && endOf(k) <= end) k++;
    if (end > job.sent || k > job.lpSent) {
      job.onText(job.text.slice(job.sent, end), lps.slice(job.lpSent, k));
      job.sent = end;
      job.lpSent = k;
    }
    if (stopped) {
      job.text = job.text.slice(0, end);
      lps.length = k;
      job.stopped = true;
    }
    return stopped;
  }

  /** A request leaves the batch: its state is cached (unless cancelled), its slot released. */
  private leave(job: Job, finish: JobResult['finish']): void {
    const at = this.active.indexOf(job);
    if (at >= 0) this.active.splice(at, 1);
    // (after a stop string the text is final: what the decoder holds lies past it)
    if (finish !== 'cancelled' && !job.stopped) {
      job.text += job.decoder?.flush() ?? '';
      if (this.emit(job, true)) finish = 'stop';
    }
    const state = job.state;
    job.state = null;
    if (state && finish !== 'cancelled' && this.opts.cache.maxBytes > 0) {
      // saved (a GPU's state is read asynchronously), then released; the reply does not wait
      const fed = job.fed;
      void this.model.saveSequenceAsync(state).then((saved) => this.opts.cache.put(fed, saved), () => {}).finally(() => this.model.releaseSequence(state));
    } else if (state) this.model.releaseSequence(state);
    this.settle(job, finish);
  }

  private settle(job: Job, finish: JobResult['finish']): void {
    job.resolve({
      finish, text: job.text.slice(0, job.sent), ids: job.made, promptTokens: job.spec.ids.length, cachedTokens: job.cachedTokens,
      ...(job.spec.logprobs === undefined ? {} : { logprobs: job.lps.slice(0, job.lpSent) }),
    });
  }

  private fail(job: Job, e: unknown): void {
    const at = this.active.indexOf(job);
    if (at >= 0) this.active.splice(at, 1);
    if (job.state) this.model.releaseSequence(job.state);
    job.state = null;
    job.reject(e);
  }
}

/** Characters at the end of `text` that may begin one of `stops` (held back until settled). */
function heldBack(text: string, stops: readonly string[]): number {
  let n = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > n; k--) {
      if (text.endsWith(s.slice(0, k))) {
        n = k;
        break;
      }
    }
  }
  return n;
}
