// Chat templates: a checkpoint's `chat_template` (tokenizer_config.json, or chat_template.jinja beside
// it as newer transformers save it) rendered with @huggingface/jinja the way transformers'
// `apply_chat_template` does: the messages, add_generation_prompt and the special tokens as strings
// (bos_token, eos_token, …) in the context (the library defines raise_exception itself); the text
// is then encoded without adding special tokens again (the template writes them).

import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { RuntimeError, describeError } from '../../runtime/errors.ts';
import { RUNTIME_LIMITS } from '../../runtime/limits.ts';
import { readRegular } from '../../runtime/paths.ts';

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

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'] as const;

/** The checkpoint's chat template, or null when it has none; a template that does not parse is
 *  RT410 naming its file (said when the server starts, not on the first request). */
export function loadChatTemplate(dir: string): ChatTemplate | null {
  const read = (name: string): { file: string; text: string } | null => {
    const file = join(dir, name);
    const limit = RUNTIME_LIMITS.tokenizerBytes;
    const r = readRegular(file, limit.value);
    if (r.kind === 'missing') return null;
    if (r.kind === 'bad') throw new RuntimeError('RT400', [file, r.why], { file });
    if (r.kind === 'over') throw new RuntimeError('RT409', [file, `at least ${r.bytes} bytes`, limit.name, limit.value], { file });
    return { file, text: new TextDecoder().decode(r.bytes) };
  };
  const cfgFile = read('tokenizer_config.json');
  let config: Record<string, unknown> = {};
  if (cfgFile) {
    try {
      config = JSON.parse(cfgFile.text) as Record<string, unknown>;
    } catch (e) {
      throw new RuntimeError('RT401', [cfgFile.file, describeError(e)], { file: cfgFile.file });
    }
  }
  const own = read('chat_template.jinja');
  const source = own ?? (cfgFile ? templateOf(config.chat_template, cfgFile.file) : null);
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
    const v = config[k];
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

/** What the template itself refused (raise_exception) or failed on: the request's fault, a 400. */
export class TemplateError extends Error {}

/** tokenizer_config.json's chat_template: a string, or a list of { name, template } (the one named
 *  `default`, as transformers picks without a name). */
function templateOf(v: unknown, file: string): { file: string; text: string } | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return { file, text: v };
  if (Array.isArray(v)) {
    const named = v.find((t) => t && typeof t === 'object' && (t as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    if (named && typeof named.template === 'string') return { file, text: named.template };
    throw new RuntimeError('RT410', [file, 'chat_template is a list without a template named "default"'], { file, key: 'chat_template' });
  }
  throw new RuntimeError('RT410', [file, `chat_template must be a string or a list of { name, template }, found ${typeof v}`], { file, key: 'chat_template' });
}
