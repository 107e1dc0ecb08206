// `archc run --chat`: a chat on the terminal through the checkpoint's chat template (as `archc serve`
// renders it). The conversation lives in one sequence kept across turns: each turn reads only what
// the template adds since the last reply (the reply's end, the new user message, the assistant's
// header), never the history again, and says so ("kept N, read M"). On a terminal each line is a
// turn, with a prompt; from a pipe each non-empty line is a turn and nothing else goes to stdout but
// the replies, one line each. Ctrl-D (end of input) or /exit leaves; Ctrl-C too.

import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { GenerateOptions } from '../../runtime/generate.ts';
import type { Model } from '../../runtime/model.ts';
import type { SequenceState } from '../../runtime/sequences.ts';
import type { ChatMessage, ChatTemplate } from './chat.ts';

export interface ChatIo {
  readonly input: Readable;
  /** The replies. */
  readonly output: Writable;
  /** Each turn's line of figures (kept, read, tokens/s); the prompt on a terminal. */
  readonly status: Writable;
  /** A terminal: prompts shown, lines edited by readline. */
  readonly tty: boolean;
}

export interface TurnReport {
  /** Tokens the sequence held from earlier turns, reused as they were. */
  readonly kept: number;
  /** Tokens read this turn before the reply (what the template added). */
  readonly read: number;
  readonly ids: readonly number[];
  readonly text: string;
}

/** Runs the chat until the input ends or /exit; a report per turn (for tests). */
export async function chatLoop(model: Model, template: ChatTemplate, options: GenerateOptions, io: ChatIo, system?: string): Promise<TurnReport[]> {
  const tok = model.tokenizer!;
  const messages: ChatMessage[] = system ? [{ role: 'system', content: system }] : [];
  const reports: TurnReport[] = [];
  // the text the sequence holds (as the template rendered it, then the reply as written), and the
  // text of the stop id that ended the reply (fed too: '' when none did)
  let held = '';
  let stopText = '';
  let seq: SequenceState | null = null;
  const rl = createInterface({ input: io.input, output: io.tty ? io.status : undefined, terminal: io.tty, prompt: '> ' });
  rl.on('SIGINT', () => rl.close());
  if (io.tty) {
    io.status.write('chat: a line is a turn; /exit or Ctrl-D leaves\n');
    rl.prompt();
  }
  try {
    for await (const line of rl) {
      const content = line.trim();
      if (content === '/exit') break;
      if (content === '') {
        if (io.tty) rl.prompt();
        continue;
      }
      messages.push({ role: 'user', content });
      const rendered = template.render(messages);
      // what the template added since the last reply; a template that rewrites earlier turns
      // (a date, a trimmed reply) cannot be continued: the sequence starts again
      let kept = seq ? seq.length : 0;
      let delta = rendered.slice(held.length);
      // the stop id is in the sequence already: where the template writes it too, it is not read again
      // (where it does not, the sequence keeps it: the end of the turn as the model wrote it)
      if (stopText && delta.startsWith(stopText)) delta = delta.slice(stopText.length);
      if (!seq || !rendered.startsWith(held)) {
        if (seq) io.status.write(`(the template rewrote the history: reading all ${kept} tokens again)\n`);
        if (seq) model.releaseSequence(seq);
        seq = model.newSequence();
        kept = 0;
        delta = rendered;
      }
      const prompt = tok.encode(delta, { addSpecialTokens: false });
      const t0 = performance.now();
      let first = 0;
      const ids: number[] = [];
      let text = '';
      for await (const t of model.generate(prompt, { ...options, sequence: seq })) {
        if (t.id >= 0) {
          if (!ids.length) first = performance.now();
          ids.push(t.id);
        }
        text += t.text;
        io.output.write(t.text);
      }
      io.output.write('\n');
      const t1 = performance.now();
      // the sequence holds the prompt, the reply and the stop id that ended it, if one did: the eos id
      // (which of the caller's `stop` ids is not said: then none is taken for the template's text)
      const stopFed = seq.length - kept - prompt.length - ids.length === 1;
      held = rendered + text;
      stopText = stopFed && !options.stop ? tok.decode(tok.eosIds.slice(0, 1)) : '';
      messages.push({ role: 'assistant', content: text });
      const rate = ids.length > 1 ? `${((ids.length - 1) / ((t1 - first) / 1000)).toFixed(1)} tokens/s` : '-';
      io.status.write(`[${ids.length} tokens; kept ${kept} of the history, read ${prompt.length} new; first after ${((first || t1) - t0).toFixed(0)} ms, ${rate}]\n`);
      reports.push({ kept, read: prompt.length, ids, text });
      if (io.tty) rl.prompt();
    }
  } finally {
    rl.close();
    if (seq) model.releaseSequence(seq);
  }
  return reports;
}
