// The chat page's local mode (page.html opened with ?model=<checkpoint URL>, no server behind it):
// this runs in a module Worker, where the package's bundle (web/model-worker.js, codegen/web.ts)
// hands it the package's `load`. It loads the checkpoint by URL (`backend` wasm, the default: on
// several threads when the page is cross-origin isolated; or webgpu), reports the load's progress,
// and generates what the page asks, one message per token. With a chat template (runtime/chat.ts,
// as the server renders it) the page's messages become the prompt; without one the last message
// is a text completion's. Conversation state is kept between turns as the server keeps it
// (cache.ts, bounded in bytes): after each prompt but its last token, and after each reply, the
// sequence is saved under the ids it covers; a turn whose prompt extends a saved one restores it
// and prefills only what is new.

import { type ChatMessage, type ChatTemplate, chatPromptIds, fetchChatTemplate } from '../../runtime/chat.ts';
import type { LoadOptions, Model } from '../../runtime/model.ts';
import type { Backend } from '../../runtime/targets.ts';
import { StateCache } from './cache.ts';

/** Bytes of saved conversation state the page keeps (a Mamba layer's state is a fixed size; the
 *  attention layers' KV rows grow with the conversation). */
export const PAGE_CACHE_BYTES = 256 << 20;

/** What the page sends. */
export type PageRequest =
  | { readonly kind: 'load'; readonly url: string; readonly backend?: Backend; readonly threads?: number }
  | { readonly kind: 'generate'; readonly messages: readonly ChatMessage[]; readonly maxTokens: number; readonly temperature: number }
  | { readonly kind: 'stop' };

/** What the worker answers: progress and `ready` (or `error`) to a load; `token`s then `done` (or
 *  `error`) to a generate. */
export type WorkerReply =
  | { readonly kind: 'progress'; readonly bytesRead: number; readonly totalBytes: number; readonly bytesPerSecond: number }
  | { readonly kind: 'ready'; readonly backend: string; readonly threads: number; readonly chat: boolean; readonly isolated: boolean }
  | { readonly kind: 'token'; readonly id: number; readonly text: string }
  | { readonly kind: 'done'; readonly promptTokens: number; readonly cachedTokens: number; readonly tokens: number; readonly stopped: boolean }
  | { readonly kind: 'error'; readonly message: string };

type Load = (url: string, options: LoadOptions) => Promise<Model>;

/** Answers the page's messages on this worker's `self`. */
export function runPageWorker(load: Load): void {
  const post = (r: WorkerReply) => self.postMessage(r);
  let model: Model | null = null;
  let template: ChatTemplate | null = null;
  let stopping = false;
  const cache = new StateCache(PAGE_CACHE_BYTES);
  // a message turn between tokens, so a `stop` sent while generating is read (promises alone never yield to it)
  const channel = new MessageChannel();
  const turn = () => new Promise<void>((resolve) => { channel.port1.onmessage = () => resolve(); channel.port2.postMessage(0); });

  async function onLoad(r: Extract<PageRequest, { kind: 'load' }>): Promise<void> {
    const url = new URL(r.url, self.location.href).href;
    const backend = r.backend ?? 'wasm';
    model = await load(url, {
      backend,
      ...(r.threads ? { threads: r.threads } : {}),
      onProgress: (_done, _total, _name, p) => post({ kind: 'progress', bytesRead: p.bytesRead, totalBytes: p.totalBytes, bytesPerSecond: p.bytesPerSecond }),
    });
    template = model.tokenizer ? await fetchChatTemplate(url) : null;
    post({ kind: 'ready', backend, threads: model.threads, chat: template !== null, isolated: self.crossOriginIsolated === true });
  }

  async function onGenerate(r: Extract<PageRequest, { kind: 'generate' }>): Promise<void> {
    if (!model) throw new Error('no model is loaded');
    if (!model.tokenizer) throw new Error(`the checkpoint has no tokenizer.json (${model.dir}): the page needs text`);
    const last = r.messages[r.messages.length - 1];
    const prompt = template ? chatPromptIds(template, model.tokenizer, r.messages) : model.encode(last?.content ?? '');
    stopping = false;
    const hit = cache.lookup(prompt);
    const state = hit ? await model.restoreSequenceAsync(hit.saved) : model.newSequence();
    const made: number[] = [];
    try {
      // all but the prompt's last token, saved for the next turn (whose prompt extends this one);
      // the last one starts the reply
      const from = hit?.ids.length ?? 0;
      if (prompt.length - 1 > from) {
        await model.stepAsync([prompt.slice(from, -1)], [state], true);
        cache.put(prompt.slice(0, -1), await model.saveSequenceAsync(state));
      }
      for await (const t of model.generate(prompt.slice(-1), { sequence: state, maxTokens: r.maxTokens, temperature: r.temperature })) {
        if (t.id >= 0) made.push(t.id);
        post({ kind: 'token', id: t.id, text: t.text });
        await turn();
        if (stopping) break;
      }
      // the reply as the sequence holds it (a next prompt that renders it back as these ids reads on from here)
      cache.put([...prompt, ...made].slice(0, state.length), await model.saveSequenceAsync(state));
    } finally {
      model.releaseSequence(state);
    }
    post({ kind: 'done', promptTokens: prompt.length, cachedTokens: hit?.ids.length ?? 0, tokens: made.length, stopped: stopping });
  }

  self.onmessage = ({ data }: MessageEvent<PageRequest>) => {
    if (data.kind === 'stop') { stopping = true; return; }
    const job = data.kind === 'load' ? onLoad(data) : onGenerate(data);
    job.catch((e: unknown) => post({ kind: 'error', message: e instanceof Error ? e.message : String(e) }));
  };
}
