// `archc run --chat` (cli/serve/terminal.ts) on tiny-bamba-a with a chat template: turns read from a
// pipe; each turn continues the kept sequence, reading only what the template added (the tokens fed
// to the model are counted: the history is never read again), and its greedy reply equals a fresh
// generation over the same ids; the CLI end to end (stdin closed = Ctrl-D), and its refusals.

import { spawn } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadChatTemplate } from '../../cli/serve/chat.ts';
import { chatLoop } from '../../cli/serve/terminal.ts';
import type { Model } from '../../runtime/model.ts';
import { ARCHC, BAMBA, ROOT, loadModel, removeDir, runCli } from '../helpers/checkpoints.ts';
import { TINY_A, trainedWithTemplate } from './setup.ts';

let dir: string;
let model: Model;
beforeAll(async () => {
  dir = trainedWithTemplate('archc-chat-');
  model = await loadModel(dir);
});
afterAll(() => removeDir(dir));

const sink = () => {
  let text = '';
  return { w: new Writable({ write: (c, _e, done) => { text += String(c); done(); } }), text: () => text };
};

/** Greedy ids of a fresh generation over `ids`. */
async function fresh(ids: readonly number[], maxTokens: number): Promise<number[]> {
  const out: number[] = [];
  for await (const t of model.generate(ids, { maxTokens, temperature: 0 })) if (t.id >= 0) out.push(t.id);
  return out;
}

describe('archc run --chat', () => {
  it('continues the kept sequence each turn: only the new tokens are read, and the replies equal a fresh run', async () => {
    const template = loadChatTemplate(dir)!;
    // every token the model reads outside decode steps (prefills)
    let prefilled = 0;
    const step = model.stepAsync.bind(model);
    model.stepAsync = (chunks, states, lastOnly) => {
      prefilled += chunks.reduce((n, c) => n + c.length, 0);
      return step(chunks, states, lastOnly);
    };
    const out = sink();
    const status = sink();
    const input = Readable.from(['Tell me a story about a dog.\n', '\n', 'What happened next?\n', 'And then?\n', '/exit\n', 'not a turn\n']);
    let turns;
    try {
      turns = await chatLoop(model, template, { maxTokens: 10, temperature: 0 }, { input, output: out.w, status: status.w, tty: false }, 'You tell stories.');
    } finally {
      model.stepAsync = step;
    }
    expect(turns.map((t) => t.ids.length)).toEqual([10, 10, 10]);
    expect(out.text()).toBe(turns.map((t) => `${t.text}\n`).join(''));
    // each turn keeps what the last held (its prompt and reply, the last token fed too) and reads the rest
    expect(turns[0]!.kept).toBe(0);
    for (let i = 1; i < turns.length; i++) expect(turns[i]!.kept).toBe(turns[i - 1]!.kept + turns[i - 1]!.read + turns[i - 1]!.ids.length);
    expect(prefilled, 'tokens prefilled over the chat: the new ones only').toBe(turns.reduce((n, t) => n + t.read, 0));
    const lines = status.text().trim().split('\n');
    expect(lines).toHaveLength(3);
    lines.forEach((l, i) => expect(l).toMatch(new RegExp(`^\\[10 tokens; kept ${turns[i]!.kept} of the history, read ${turns[i]!.read} new; first after \\d+ ms, [\\d.]+ tokens/s\\]$`)));
    // the reference: the messages rendered turn by turn, each turn's new text encoded after the ids held
    const messages = [{ role: 'system', content: 'You tell stories.' }];
    let ids: number[] = [];
    let held = '';
    for (const [i, user] of ['Tell me a story about a dog.', 'What happened next?', 'And then?'].entries()) {
      messages.push({ role: 'user', content: user });
      const rendered = template.render(messages);
      expect(rendered.startsWith(held)).toBe(true);
      ids = [...ids, ...model.tokenizer!.encode(rendered.slice(held.length), { addSpecialTokens: false })];
      expect(turns[i]!.ids, `turn ${i + 1}`).toEqual(await fresh(ids, 10));
      ids.push(...turns[i]!.ids);
      held = rendered + turns[i]!.text;
      messages.push({ role: 'assistant', content: turns[i]!.text });
    }
    expect(model.openSequences).toBe(0);
  });

  it('a reply ended by a stop id keeps it in the sequence: the next turn follows it', async () => {
    const template = loadChatTemplate(dir)!;
    const chat = (stop?: number[]) => chatLoop(model, template, { maxTokens: 10, temperature: 0, ...(stop ? { stop } : {}) },
      { input: Readable.from(['Tell me about a bird.\n', 'Go on.\n']), output: sink().w, status: sink().w, tty: false });
    // a stop id: the third token of the first reply as it comes without one
    const stopId = (await chat())[0]!.ids[2]!;
    const turns = await chat([stopId]);
    expect(turns[0]!.ids).toHaveLength(2);
    expect(turns[1]!.kept).toBe(turns[0]!.read + 2 + 1);
    // the reference: the first turn's ids, its reply, the stop id, then the second turn's new text
    const first = template.render([{ role: 'user', content: 'Tell me about a bird.' }]);
    const next = template.render([{ role: 'user', content: 'Tell me about a bird.' }, { role: 'assistant', content: turns[0]!.text }, { role: 'user', content: 'Go on.' }]);
    const encode = (t: string) => model.tokenizer!.encode(t, { addSpecialTokens: false });
    const ids = [...encode(first), ...turns[0]!.ids, stopId, ...encode(next.slice(first.length + turns[0]!.text.length))];
    const want: number[] = [];
    for await (const t of model.generate(ids, { maxTokens: 10, temperature: 0, stop: [stopId] })) if (t.id >= 0) want.push(t.id);
    expect(turns[1]!.ids).toEqual(want);
    expect(model.openSequences).toBe(0);
  });

  it('the CLI: turns from stdin until it closes; refusals with their codes', async () => {
    const run = (args: string[], stdin: string) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [ARCHC, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', ARCHC_DEBUG: '' } });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      p.on('close', (code) => resolve({ code, stdout, stderr }));
      p.stdin.end(stdin);
    });
    const r = await run(['run', BAMBA, '--weights', dir, '--chat', '--max-tokens', '6', '--backend', 'cpu'], 'Hello there.\nWho are you?\n');
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const turns = await chatLoop(model, loadChatTemplate(dir)!, { maxTokens: 6, temperature: 0 }, { input: Readable.from(['Hello there.\n', 'Who are you?\n']), output: sink().w, status: sink().w, tty: false });
    expect(r.stdout).toBe(turns.map((t) => `${t.text}\n`).join(''));
    expect(r.stderr.match(/kept \d+ of the history/g)).toEqual(turns.map((t) => `kept ${t.kept} of the history`));
    // no chat template: RT410 naming tokenizer_config.json, before the weights load; --chat with --prompt: AC315
    const none = await runCli(['run', BAMBA, '--weights', TINY_A, '--chat']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('RT410');
    expect(none.stderr).toContain('tokenizer_config.json');
    expect(none.stderr).not.toMatch(/\n\s+at /);
    const both = await runCli(['run', BAMBA, '--weights', dir, '--chat', '--prompt', 'hi']);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toMatch(/AC315.*--chat/s);
  }, 120_000);
});
