// Chat templates (runtime/chat.ts, read by cli/serve/chat.ts) against Python's jinja2 set up as transformers'
// apply_chat_template sets it up: test/fixtures/chat/rendered.json, written by make-rendered.py
// from templates.json (whitespace control, loop variables, slices, raise_exception). Then where the
// template comes from (tokenizer_config.json as a string or a named list, chat_template.jinja) and
// the errors: a template that does not parse is RT410 naming its file. Fetched over HTTP (the chat
// page's worker) the same files give the same template; a file that is not there is absent.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TemplateError, loadChatTemplate } from '../../cli/serve/chat.ts';
import { fetchChatTemplate } from '../../runtime/chat.ts';
import { RuntimeError } from '../../runtime/errors.ts';
import { ROOT } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'chat');
type Msg = { role: string; content: string };
const templates = JSON.parse(readFileSync(join(FIXTURES, 'templates.json'), 'utf8')) as { name: string; template: string; specials: Record<string, string> }[];
const rendered = JSON.parse(readFileSync(join(FIXTURES, 'rendered.json'), 'utf8')) as { name: string; messages: Msg[]; text?: string; error?: string }[];
const tmp = useTmpDirs('archc-chat-');

/** A directory whose tokenizer_config.json holds `config`. */
function dirWith(config: Record<string, unknown>): string {
  const d = tmp();
  writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify(config));
  return d;
}

describe('chat templates render as transformers renders them', () => {
  it.each(rendered.map((r, i) => [`${r.name} #${i}`, r] as const))('%s', (_, r) => {
    const t = templates.find((x) => x.name === r.name)!;
    // special tokens written both ways tokenizer_config.json writes them
    const specials = Object.fromEntries(Object.entries(t.specials).map(([k, v], i) => [k, i % 2 ? { content: v, special: true } : v]));
    const chat = loadChatTemplate(dirWith({ ...specials, chat_template: t.template }))!;
    if (r.error !== undefined) {
      expect(() => chat.render(r.messages)).toThrow(TemplateError);
      expect(() => chat.render(r.messages)).toThrow(r.error);
    } else {
      expect(chat.render(r.messages)).toBe(r.text);
    }
  });
});

describe('where the template comes from', () => {
  const msgs = [{ role: 'user', content: 'hi' }];

  it('none: null', () => {
    expect(loadChatTemplate(dirWith({ bos_token: '<s>' }))).toBeNull();
    expect(loadChatTemplate(tmp())).toBeNull();
  });

  it('a list of named templates: the one named default', () => {
    const d = dirWith({ chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D{{ messages[0].content }}' }] });
    expect(loadChatTemplate(d)!.render(msgs)).toBe('Dhi');
    expectCode(() => loadChatTemplate(dirWith({ chat_template: [{ name: 'tool_use', template: 'T' }] })), 'RT410', 'default');
  });

  it('chat_template.jinja beside tokenizer_config.json wins', () => {
    const d = dirWith({ chat_template: 'config' });
    writeFileSync(join(d, 'chat_template.jinja'), 'file {{ messages | length }}');
    expect(loadChatTemplate(d)!.render(msgs)).toBe('file 1');
    expect(loadChatTemplate(d)!.file).toBe(join(d, 'chat_template.jinja'));
  });

  it('a template that does not parse, or is not a string, is RT410 naming the file', () => {
    const d = dirWith({ chat_template: '{% for m in messages %}never closed' });
    expectCode(() => loadChatTemplate(d), 'RT410', join(d, 'tokenizer_config.json'));
    expectCode(() => loadChatTemplate(dirWith({ chat_template: 42 })), 'RT410', 'must be a string');
    const bad = tmp();
    writeFileSync(join(bad, 'tokenizer_config.json'), '{"chat_template": ');
    expectCode(() => loadChatTemplate(bad), 'RT401', 'tokenizer_config.json');
  });
});

describe('a template fetched over HTTP (the chat page\'s worker)', () => {
  // a fetch over a directory: 404 for what it lacks, `status` for the file named in `failing`
  const fetchOf = (dir: string, failing?: [string, number]) => async (url: string | URL | Request): Promise<Response> => {
    const name = String(url).slice('http://h/ckpt/'.length);
    if (failing && name === failing[0]) return new Response('no', { status: failing[1] });
    try {
      return new Response(readFileSync(join(dir, name)));
    } catch {
      return new Response('missing', { status: 404 });
    }
  };
  const msgs = [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yes' }, { role: 'user', content: 'and?' }];

  it('renders as the directory\'s does, from tokenizer_config.json or chat_template.jinja; none: null', async () => {
    const t = templates[0]!;
    const d = dirWith({ ...t.specials, chat_template: t.template });
    const fetched = await fetchChatTemplate('http://h/ckpt', fetchOf(d));
    expect(fetched!.render(msgs)).toBe(loadChatTemplate(d)!.render(msgs));
    expect(fetched!.file).toBe('http://h/ckpt/tokenizer_config.json');
    writeFileSync(join(d, 'chat_template.jinja'), 'file {{ messages | length }}');
    expect((await fetchChatTemplate('http://h/ckpt/', fetchOf(d)))!.render(msgs)).toBe('file 3');
    expect(await fetchChatTemplate('http://h/ckpt/', fetchOf(tmp()))).toBeNull();
  });

  it('a file the server fails on is RT100 naming its URL; one that does not parse RT410', async () => {
    const d = dirWith({ chat_template: 'T' });
    await expect(fetchChatTemplate('http://h/ckpt/', fetchOf(d, ['tokenizer_config.json', 500]))).rejects.toThrow('RT100: cannot read http://h/ckpt/tokenizer_config.json: HTTP 500');
    await expect(fetchChatTemplate('http://h/ckpt/', fetchOf(dirWith({ chat_template: '{% if %}' })))).rejects.toThrow(/^RT410: http:\/\/h\/ckpt\/tokenizer_config.json/);
  });
});

function expectCode(f: () => unknown, code: string, text: string): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(RuntimeError);
  expect((err as RuntimeError).code).toBe(code);
  expect((err as RuntimeError).message).toContain(text);
}
