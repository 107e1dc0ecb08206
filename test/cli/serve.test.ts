// `archc serve` as a user runs it: the command line (flags checked before anything loads, a chat
// template that cannot be used named before the weights load), then a real server on an ephemeral
// port answering a completion with the same tokens as `archc run`, and stopping cleanly on SIGTERM.

import { spawn } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ARCHC, BAMBA, ROOT, runCli, writeCheckpoint } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs('archc-serve-cli-');

/** A random tiny checkpoint with the fixture tokenizer (its chat template concatenates the contents). */
function checkpoint(): string {
  const d = tmp();
  writeCheckpoint(d, { vocab: 368 }, { seed: 5 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(ROOT, 'test', 'fixtures', 'tokenizer', f), join(d, f));
  return d;
}

describe('archc serve', () => {
  it('refuses bad flags and a broken chat template before loading, exit 1, no stack', async () => {
    const d = checkpoint();
    for (const [flag, value] of [['--port', '70000'], ['--max-sequences', '0'], ['--cache-bytes', '-1'], ['--max-queue', 'many'],
      ['--max-connections', '0'], ['--headers-timeout', '0'], ['--request-timeout', '1.5'], ['--snapshot-every', '-64'], ['--body-timeout', '5']] as const) {
      // (--body-timeout 5 is under the default --headers-timeout 30)
      const r = await runCli(['serve', BAMBA, '--weights', d, flag, value]);
      expect(r.code, `${flag} ${value}`).toBe(1);
      expect(r.stderr).toContain('AC315');
      expect(r.stderr).toContain(flag);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{% if %}' }));
    const r = await runCli(['serve', BAMBA, '--weights', d, '--port', '0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error RT410: ${join(d, 'tokenizer_config.json')}: the chat template cannot be used`);
  });

  it('serves completions equal to archc run, and stops on SIGTERM', async () => {
    const d = checkpoint();
    const child = spawn(process.execPath, [ARCHC, 'serve', BAMBA, '--weights', d, '--port', '0', '--alias', 'tiny'], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "serving" line in 60 s:\n${stderr}`)), 60_000);
        child.stderr.on('data', () => {
          const m = /serving tiny at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stderr);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
        void exited.then((code) => reject(new Error(`archc serve exited ${code}:\n${stderr}`)));
      });
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny', prompt: 'Hello world', max_tokens: 8, temperature: 0 }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { choices: { text: string }[] };
      const run = await runCli(['run', BAMBA, '--weights', d, '--prompt', 'Hello world', '--max-tokens', '8']);
      expect(run.code, run.stderr).toBe(0);
      expect(body.choices[0]!.text).toBe(run.stdout.replace(/\n$/, ''));
      expect(stderr).toMatch(/POST \/v1\/completions 200 prompt=\d+ cached=0 completion=\d+ finish=\w+ \d+ ms/);
      // the chat page, found by the CLI's bundle
      const page = await fetch(`${url}/`);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(await page.text()).toMatch(/^<!doctype html>[\s\S]*\/v1\/chat\/completions/);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
