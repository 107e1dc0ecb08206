// Chat templates: a checkpoint's `chat_template` (tokenizer_config.json, or chat_template.jinja beside
// it as newer transformers save it) rendered with @huggingface/jinja the way transformers'
// `apply_chat_template` does: the messages, add_generation_prompt and the special tokens as strings
// (bos_token, eos_token, …) in the context (the library defines raise_exception itself); the text
// is then encoded without adding special tokens again (the template writes them).
// Browser-safe: files come in as text (cli/serve/chat.ts reads them from a directory, fetchChatTemplate
// over HTTP), so the server and the chat page's worker render the same way.

import { Template } from '@huggingface/jinja';
import { RuntimeError, describeError } from './errors.ts';
import type { Tokenizer } from './tokenizer.ts';

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

export interface ChatTemplate {
  /** The file the template came from (for messages). */
  readonly file: string;
  /** The prompt text for these messages, ending with the assistant's turn opened. */
  render(messages: readonly ChatMessage[]): string;
}

/** One file of a checkpoint as text: where it is (path or URL, for messages) and what it holds. */
export interface TextFile {
  readonly file: string;
  readonly text: string;
}

/** What the template itself refused (raise_exception) or failed on: the request's fault, a 400. */
export class TemplateError extends Error {}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'] as const;

/** The chat template of a checkpoint whose tokenizer_config.json and chat_template.jinja (either may
 *  be absent: null) hold these texts; null when it has none. chat_template.jinja wins, as in
 *  transformers. A template that does not parse is RT410 naming its file; bad JSON RT401. */
export function chatTemplateFrom(config: TextFile | null, jinja: TextFile | null): ChatTemplate | null {
  let cfg: Record<string, unknown> = {};
  if (config) {
    try {
      cfg = JSON.parse(config.text) as Record<string, unknown>;
    } catch (e) {
      throw new RuntimeError('RT401', [config.file, describeError(e)], { file: config.file });
    }
  }
  const source = jinja ?? (config ? templateOf(cfg.chat_template, config.file) : null);
  if (!source) return null;
  let template: Template;
  try {
    template = new Template(source.text);
  } catch (e) {
    throw new RuntimeError('RT410', [source.file, describeError(e)], { file: source.file, key: 'chat_template' });
  }
  // the special tokens as strings: tokenizer_config.json writes them as "<s>" or {"content": "<s>"}
  const specials: Record<string, string> = {};
  for (const k of SPECIAL_KEYS) {
    const v = cfg[k];
    if (typeof v === 'string') specials[k] = v;
    else if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') specials[k] = (v as { content: string }).content;
  }
  return {
    file: source.file,
    render(messages) {
      try {
        return template.render({ messages, add_generation_prompt: true, ...specials });
      } catch (e) {
        throw e instanceof TemplateError ? e : new TemplateError(describeError(e));
      }
    },
  };
}

/** The prompt's token ids for `messages`: rendered, then encoded without special tokens (the
 *  template wrote them). TemplateError when the template refuses the messages. */
export function chatPromptIds(template: ChatTemplate, tokenizer: Tokenizer, messages: readonly ChatMessage[]): number[] {
  return tokenizer.encode(template.render(messages), { addSpecialTokens: false });
}

/** The chat template of the checkpoint under the URL `base` (a browser's, or any `fetch`): the
 *  same files, fetched; a file that is not there (404) is absent, another failure RT100. */
export async function fetchChatTemplate(base: string, fetchFn: typeof fetch = globalThis.fetch.bind(globalThis)): Promise<ChatTemplate | null> {
  const root = base.endsWith('/') ? base : `${base}/`;
  const get = async (name: string): Promise<TextFile | null> => {
    const file = `${root}${name}`;
    let r: Response;
    try {
      r = await fetchFn(file);
    } catch (e) {
      throw new RuntimeError('RT100', [file, describeError(e)], { file });
    }
    if (r.status === 404) return null;
    if (!r.ok) throw new RuntimeError('RT100', [file, `HTTP ${r.status}`], { file });
    return { file, text: await r.text() };
  };
  return chatTemplateFrom(await get('tokenizer_config.json'), await get('chat_template.jinja'));
}

/** tokenizer_config.json's chat_template: a string, or a list of { name, template } (the one named
 *  `default`, as transformers picks without a name). */
function templateOf(v: unknown, file: string): TextFile | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return { file, text: v };
  if (Array.isArray(v)) {
    const named = v.find((t) => t && typeof t === 'object' && (t as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    if (named && typeof named.template === 'string') return { file, text: named.template };
    throw new RuntimeError('RT410', [file, 'chat_template is a list without a template named "default"'], { file, key: 'chat_template' });
  }
  throw new RuntimeError('RT410', [file, `chat_template must be a string or a list of { name, template }, found ${typeof v}`], { file, key: 'chat_template' });
}
