// The page and worker side of bench/browser-9b.ts, and the steps it runs wherever a model loads:
// load by URL (or directory), prefill one prompt of token ids, then greedy tokens — the first from
// the prefill's logits, each next from a decode step — with each step's time, top-5 and logits.
// The same `runSteps` runs on the page (webgpu), in a dedicated worker (wasm) and in Node (the CPU
// reference engine), so every side picks its tokens by the one argmax below.

import type { LoadOptions, Model } from '../../runtime/model.ts';

/** What a side is asked to run. */
export interface Spec {
  /** The checkpoint: a URL in the browser, a directory in Node. */
  readonly url: string;
  readonly opts: LoadOptions;
  readonly prompt: readonly number[];
  /** Greedy tokens: the prefill's, then one per decode step. */
  readonly tokens: number;
}

export interface Step {
  readonly token: number;
  /** The five largest logits, largest first. */
  readonly top5: readonly { readonly id: number; readonly logit: number }[];
  /** The step's logits [vocab]. */
  readonly logits: readonly number[];
  /** Milliseconds of the prefill (step 0) or of the decode step that made these logits. */
  readonly ms: number;
}

export interface Run {
  readonly loadMs: number;
  readonly steps: readonly Step[];
  readonly threads: number;
  /** crossOriginIsolated where it ran (false in Node). */
  readonly isolated: boolean;
  /** Weights held quantised, and whether the checkpoint held the codes already. */
  readonly quantised: { readonly weights: number; readonly prequantized: boolean } | null;
  /** wasm: each WebAssembly memory's bytes and the packed weights it holds (memory 0 first). */
  readonly memories: readonly { readonly bytes: number; readonly weightBytes: number; readonly weights: number; readonly address?: 'i64' }[];
}

/** The package's Model class, as far as this file uses it. */
export interface ModelClass {
  load(url: string, opts: LoadOptions): Promise<Model>;
}

/** The first index of the largest value (NaN never wins: a NaN logit shows up in the comparison). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

function top5(x: ArrayLike<number>): Step['top5'] {
  const ids: number[] = [];
  for (let i = 0; i < x.length; i++) {
    if (ids.length === 5 && !(x[i]! > x[ids[4]!]!)) continue;
    ids.push(i);
    ids.sort((a, b) => x[b]! - x[a]! || a - b);
    if (ids.length > 5) ids.pop();
  }
  return ids.map((id) => ({ id, logit: x[id]! }));
}

const now = (): number => globalThis.performance.now();

/** Loads the model and runs the spec; `say` gets progress lines (load every ~10 s, each step). */
export async function runSteps(M: ModelClass, spec: Spec, say: (line: string) => void): Promise<Run> {
  let last = now();
  const t0 = now();
  const onProgress = (done: number, total: number, tensor: string) => {
    if (now() - last < 10_000 && done < total) return;
    last = now();
    say(`load: ${done}/${total} tensors (${tensor}) after ${((now() - t0) / 1000).toFixed(1)} s`);
  };
  const m = await M.load(spec.url, { ...spec.opts, onProgress });
  const loadMs = now() - t0;
  const mems = m.memories.length ? `; ${m.memories.length} wasm memories (${m.memories.map((r) => `${(r.bytes / 2 ** 30).toFixed(2)} GiB${r.address === 'i64' ? ' memory64' : ''}`).join(', ')})` : '';
  say(`loaded in ${(loadMs / 1000).toFixed(1)} s${mems}; prefill of ${spec.prompt.length} tokens`);
  const steps: Step[] = [];
  const step = (logits: Float32Array, ms: number) => {
    const token = argmax(logits);
    steps.push({ token, top5: top5(logits), logits: Array.from(logits), ms });
    say(`token ${steps.length}: ${token} in ${(ms / 1000).toFixed(1)} s`);
    return token;
  };
  try {
    let t = now();
    const { states: [s], logits: [first] } = await m.prefillAsync([spec.prompt]);
    let token = step(first!, now() - t);
    try {
      while (steps.length < spec.tokens) {
        t = now();
        const logits = await m.decodeAsync([token], [s!]);
        token = step(logits, now() - t);
      }
    } finally {
      m.releaseSequence(s!);
    }
    const q = m.quantization;
    return {
      loadMs, steps, threads: m.threads, isolated: globalThis.crossOriginIsolated === true,
      quantised: q ? { weights: q.formats.size, prequantized: q.prequantized } : null,
      memories: m.memories.map(({ bytes, weightBytes, weights, address }) => ({ bytes, weightBytes, weights, ...(address ? { address } : {}) })),
    };
  } finally {
    m.dispose();
  }
}

type Message = { progress: string } | { ok: Run } | { error: string };

/** The page: `window.bench(spec, inWorker)` runs the spec on the page or in a module worker made
 *  from `workerUrl`; progress goes to console.log (the bench prints it). */
export function page(M: ModelClass, workerUrl: string): void {
  const say = (line: string) => console.log(line);
  const w = window as unknown as { bench(spec: Spec, inWorker: boolean): Promise<Run> };
  w.bench = (spec, inWorker) => {
    if (!inWorker) return runSteps(M, spec, say);
    return new Promise((resolve, reject) => {
      const worker = new Worker(new URL(workerUrl, location.href), { type: 'module' });
      worker.onmessage = ({ data }: MessageEvent<Message>) => {
        if ('progress' in data) return say(data.progress);
        worker.terminate();
        if ('ok' in data) resolve(data.ok);
        else reject(new Error(data.error));
      };
      worker.onerror = (e) => { worker.terminate(); reject(new Error(`worker: ${e.message}`)); };
      worker.postMessage(spec);
    });
  };
}

/** The worker: runs the spec it is sent and posts progress, then the run or the error. */
export function worker(M: ModelClass): void {
  const post = (m: Message) => (self as unknown as { postMessage(m: Message): void }).postMessage(m);
  self.onmessage = async ({ data }: MessageEvent<Spec>) => {
    try {
      post({ ok: await runSteps(M, data, (progress) => post({ progress })) });
    } catch (e) {
      post({ error: String((e as Error)?.stack ?? e) });
    }
  };
}
