// Chat templates from a checkpoint directory: tokenizer_config.json and chat_template.jinja read as
// regular files within the tokenizer limit, then rendered by runtime/chat.ts (shared with the chat
// page's worker, which fetches the same files).

import { join } from 'node:path';
import { type ChatTemplate, type TextFile, chatTemplateFrom } from '../../runtime/chat.ts';
import { RuntimeError } from '../../runtime/errors.ts';
import { RUNTIME_LIMITS } from '../../runtime/limits.ts';
import { readRegular } from '../../runtime/paths.ts';

export { type ChatMessage, type ChatTemplate, TemplateError } from '../../runtime/chat.ts';

/** The checkpoint's chat template, or null when it has none; a template that does not parse is
 *  RT410 naming its file (said when the server starts, not on the first request). */
export function loadChatTemplate(dir: string): ChatTemplate | null {
  const read = (name: string): TextFile | null => {
    const file = join(dir, name);
    const limit = RUNTIME_LIMITS.tokenizerBytes;
    const r = readRegular(file, limit.value);
    if (r.kind === 'missing') return null;
    if (r.kind === 'bad') throw new RuntimeError('RT400', [file, r.why], { file });
    if (r.kind === 'over') throw new RuntimeError('RT409', [file, `at least ${r.bytes} bytes`, limit.name, limit.value], { file });
    return { file, text: new TextDecoder().decode(r.bytes) };
  };
  return chatTemplateFrom(read('tokenizer_config.json'), read('chat_template.jinja'));
}
