// The OpenAI API's request bodies checked into a JobSpec, and its error shape. Each field the
// runtime supports is checked with its own name (`param`); a field the runtime cannot honour with a
// value other than its default (n > 1, penalties, tools, …) is refused rather than ignored.
// Fields that do not change the reply (user, metadata, …) are ignored, as other servers do.

import type { Model } from '../../runtime/model.ts';
import type { JobSpec } from './batcher.ts';
import { type ChatMessage, type ChatTemplate, TemplateError, chatPromptIds } from '../../runtime/chat.ts';
import { MAX_TOP_LOGPROBS } from './logprobs.ts';

/** An error the client gets as `{ error: { message, type, param, code } }` with `status`. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null, readonly code: string | null = null,
    readonly type = status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error') {
    super(message);
  }

  get body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export interface Parsed {
  readonly spec: JobSpec;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  /** vLLM's extension: the reply's token ids in each choice (`token_ids`). */
  readonly returnTokenIds: boolean;
}

export interface ServedModel {
  readonly id: string;
  readonly model: Model;
  readonly template: ChatTemplate | null;
  /** The most tokens one reply may ask for (--max-tokens). */
  readonly maxTokens: number;
}

type Body = Record<string, unknown>;

const bad = (message: string, param: string | null, code: string | null = 'invalid_value'): never => {
  throw new ApiError(400, message, param, code);
};

/** A request body: a JSON object naming the served model. */
export function checkBody(body: unknown, served: ServedModel): Body {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) bad('the request body must be a JSON object', null, 'invalid_request');
  const b = body as Body;
  if (typeof b.model !== 'string') bad('`model` is required: a string naming the model (GET /v1/models lists it)', 'model', 'missing_required_parameter');
  if (b.model !== served.id) throw new ApiError(404, `The model \`${String(b.model).slice(0, 200)}\` does not exist; this server serves \`${served.id}\``, 'model', 'model_not_found');
  return b;
}

/** POST /v1/chat/completions: the messages through the chat template. */
export function parseChat(b: Body, served: ServedModel): Parsed {
  const msgs = b.messages;
  if (!Array.isArray(msgs) || msgs.length === 0) bad('`messages` must be a non-empty array of { role, content }', 'messages');
  const messages: ChatMessage[] = (msgs as unknown[]).map((m, i) => {
    if (m === null || typeof m !== 'object') bad(`messages[${i}] must be an object { role, content }`, `messages[${i}]`);
    const { role, content } = m as Body;
    if (typeof role !== 'string') bad(`messages[${i}].role must be a string`, `messages[${i}].role`);
    return { role: role as string, content: contentText(content, `messages[${i}].content`) };
  });
  for (const k of ['tools', 'functions', 'tool_choice', 'response_format']) if (b[k] !== undefined && b[k] !== null) unsupported(k);
  const { model, template } = served;
  if (!model.tokenizer) bad('the model has no tokenizer (tokenizer.json), so it cannot chat; use /v1/completions with token ids', 'messages', 'no_tokenizer');
  if (!template) bad(`the model's tokenizer has no chat template (chat_template in ${model.dir}/tokenizer_config.json); use /v1/completions with a prompt`, 'messages', 'no_chat_template');
  let ids: number[];
  try {
    ids = chatPromptIds(template!, model.tokenizer!, messages);
  } catch (e) {
    if (e instanceof TemplateError) bad(`the chat template refused the messages: ${e.message}`, 'messages');
    throw e;
  }
  // logprobs: true, with top_logprobs alternatives (which need logprobs)
  if (b.logprobs !== undefined && b.logprobs !== null && typeof b.logprobs !== 'boolean') bad('`logprobs` must be a boolean', 'logprobs');
  const top = topCount(b, 'top_logprobs');
  if (top !== undefined && b.logprobs !== true) bad('`top_logprobs` needs `logprobs: true`', 'top_logprobs');
  const logprobs = b.logprobs === true ? top ?? 0 : undefined;
  return common(b, served, ids, 'messages', b.max_completion_tokens !== undefined && b.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens', logprobs);
}

/** POST /v1/completions: a prompt of text (encoded as Model.generate does) or token ids. */
export function parseCompletion(b: Body, served: ServedModel): Parsed {
  let p = b.prompt;
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || Array.isArray(p[0]))) p = p[0];
  let ids: number[];
  if (typeof p === 'string') {
    if (!served.model.tokenizer) bad('the model has no tokenizer (tokenizer.json): give the prompt as token ids', 'prompt', 'no_tokenizer');
    ids = served.model.encode(p);
  } else if (Array.isArray(p) && p.every((x) => typeof x === 'number')) {
    const V = served.model.vocab;
    const at = p.findIndex((x) => !Number.isInteger(x) || x < 0 || x >= V);
    if (at >= 0) bad(`prompt[${at}] = ${p[at]} is not a token id (an integer from 0 to ${V - 1})`, 'prompt');
    ids = p as number[];
  } else {
    return bad('`prompt` must be a string or an array of token ids (one prompt: n = 1)', 'prompt');
  }
  if (b.echo === true) unsupported('echo');
  if (typeof b.best_of === 'number' && b.best_of !== 1) unsupported('best_of');
  if (typeof b.suffix === 'string' && b.suffix !== '') unsupported('suffix');
  return common(b, served, ids, 'prompt', 'max_tokens', topCount(b, 'logprobs'));
}

/** An integer count of likeliest alternatives, 0 to MAX_TOP_LOGPROBS (undefined when absent). */
function topCount(b: Body, k: string): number | undefined {
  const v = b[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_TOP_LOGPROBS) bad(`\`${k}\` must be an integer from 0 to ${MAX_TOP_LOGPROBS}, got ${JSON.stringify(v)?.slice(0, 40)}`, k);
  return v as number;
}

/** The fields both endpoints share, and the prompt against the model's capacity. */
function common(b: Body, served: ServedModel, ids: readonly number[], promptParam: string, maxParam: string, logprobs: number | undefined): Parsed {
  if (ids.length === 0) bad('the prompt has no tokens', promptParam);
  const num = (k: string, ok: (x: number) => boolean, what: string): number | undefined => {
    const v = b[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !ok(v)) bad(`\`${k}\` must be ${what}, got ${JSON.stringify(v)?.slice(0, 40)}`, k);
    return v as number;
  };
  const flag = (k: string): boolean => {
    const v = b[k];
    if (v !== undefined && v !== null && typeof v !== 'boolean') bad(`\`${k}\` must be a boolean`, k);
    return v === true;
  };
  const temperature = num('temperature', (x) => x >= 0 && x <= 2, 'a number from 0 to 2') ?? 1;
  const topP = num('top_p', (x) => x > 0 && x <= 1, 'a number in (0, 1]');
  const seed = num('seed', Number.isSafeInteger, 'an integer');
  const n = num('n', Number.isInteger, 'an integer');
  if (n !== undefined && n !== 1) bad('`n` must be 1: this server makes one choice per request', 'n', 'unsupported_value');
  for (const k of ['presence_penalty', 'frequency_penalty']) if (num(k, Number.isFinite, 'a number')) unsupported(k);
  if (b.logit_bias && typeof b.logit_bias === 'object' && Object.keys(b.logit_bias).length) unsupported('logit_bias');
  const stream = flag('stream');
  const opts = b.stream_options;
  if (opts !== undefined && opts !== null && (typeof opts !== 'object' || Array.isArray(opts))) bad('`stream_options` must be an object', 'stream_options');
  const includeUsage = !!opts && (opts as Body).include_usage === true;
  let stop = b.stop;
  if (typeof stop === 'string') stop = [stop];
  if (stop === undefined || stop === null) stop = [];
  if (!Array.isArray(stop) || stop.length > 4 || stop.some((s) => typeof s !== 'string' || s === '')) bad('`stop` must be a non-empty string or an array of at most 4 of them', 'stop');
  const { capacity } = served.model;
  const room = capacity - ids.length + 1; // the last token sampled is never fed
  const asked = num(maxParam, (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
  if (asked !== undefined && asked > served.maxTokens) bad(`\`${maxParam}\` is ${asked}, over this server's limit of ${served.maxTokens} (--max-tokens)`, maxParam);
  const maxTokens = asked ?? Math.min(served.maxTokens, room);
  if (ids.length + maxTokens - 1 > capacity || maxTokens < 1) {
    bad(`This model's maximum context length is ${capacity} tokens. However, you requested ${ids.length + maxTokens} tokens (${ids.length} in the prompt, ${maxTokens} for the completion). Please reduce the length of the prompt or ${maxParam}.`,
      asked !== undefined ? maxParam : promptParam, 'context_length_exceeded');
  }
  return { spec: { ids, maxTokens, temperature, topP, seed, stopStrings: stop as string[], ...(logprobs === undefined ? {} : { logprobs }) }, stream, includeUsage, returnTokenIds: flag('return_token_ids') };
}

/** A message's content: a string, or text parts [{ type: 'text', text }]. */
function contentText(c: unknown, param: string): string {
  if (typeof c === 'string') return c;
  if (c === null || c === undefined) return '';
  if (Array.isArray(c)) {
    return c.map((part, i) => {
      const p = part as Body;
      if (!p || p.type !== 'text' || typeof p.text !== 'string') bad(`${param}[${i}] must be a text part { type: "text", text }: the model reads text only`, `${param}[${i}]`);
      return p.text as string;
    }).join('');
  }
  return bad(`${param} must be a string or an array of text parts`, param);
}

function unsupported(k: string): never {
  return bad(`\`${k}\` is not supported by this server`, k, 'unsupported_parameter');
}
