// Chat templates (cli/serve/chat.ts) against Python's jinja2 set up as transformers'
// apply_chat_template sets it up: test/fixtures/chat/rendered.json, written by make-rendered.py
// from templates.json (whitespace control, loop variables, slices, raise_exception). Then where the
// template comes from (tokenizer_config.json as a string or a named list, chat_template.jinja) and
// the errors: a template that does not parse is RT410 naming its file.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TemplateError, loadChatTemplate } from '../../cli/serve/chat.ts';
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
