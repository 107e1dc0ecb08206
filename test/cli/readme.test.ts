// The README's commands work as written: every `npx archc …` line of its sh blocks runs, in order,
// in a temp directory that sees the repository's models/ and examples/ (as the repository root would), and exits 0.
// A number with thousands separators in a line's comment must appear in its output.

import { execFile } from 'node:child_process';
import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ARCHC, ROOT } from '../helpers/checkpoints.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs('archc-readme-');

interface ReadmeCommand {
  readonly line: string;
  readonly args: string[];
  readonly comment: string;
}

/** `npx archc …` commands of README.md's sh blocks, in order and without repeats. */
function readmeCommands(text: string): ReadmeCommand[] {
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const out: ReadmeCommand[] = [];
  for (const line of blocks.flatMap((b) => b.split('\n'))) {
    const at = line.indexOf('npx archc ');
    if (at < 0) continue;
    const { words, rest } = shellWords(line.slice(at + 'npx archc '.length));
    if (!out.some((c) => c.args.join('\0') === words.join('\0'))) out.push({ line: line.trim(), args: words, comment: rest });
  }
  return out;
}

/** Splits like sh for the README's needs (plain words, "double quotes"), up to `#` or `&&`. */
function shellWords(s: string): { words: string[]; rest: string } {
  const words: string[] = [];
  let i = 0;
  while (i < s.length) {
    while (s[i] === ' ') i++;
    if (i >= s.length || s[i] === '#' || s.startsWith('&&', i)) break;
    let w = '';
    while (i < s.length && s[i] !== ' ') {
      if (s[i] === '"') {
        const end = s.indexOf('"', i + 1);
        w += s.slice(i + 1, end);
        i = end + 1;
      } else {
        if (/[|;<>()[\]]/.test(s[i]!)) throw new Error(`the README's command has shell syntax the test does not run: ${s}`);
        w += s[i++];
      }
    }
    words.push(w);
  }
  return { words, rest: s.slice(i) };
}

const run = (args: string[], cwd: string) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [ARCHC, ...args], { cwd, maxBuffer: 64 << 20, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }));
  });

describe('README.md', () => {
  const commands = readmeCommands(readFileSync(join(ROOT, 'README.md'), 'utf8'));

  it('has the commands a new user starts with', () => {
    const verbs = new Set(commands.map((c) => c.args[0]));
    for (const v of ['check', 'stats', 'graph', 'build', 'init-weights', 'forward', 'run']) expect(verbs, v).toContain(v);
    expect(commands.some((c) => c.args.includes('--preset'))).toBe(true);
  });

  it('every `npx archc` command runs as written, in order', async () => {
    const dir = tmp();
    symlinkSync(join(ROOT, 'models'), join(dir, 'models'));
    symlinkSync(join(ROOT, 'examples'), join(dir, 'examples'));
    for (const c of commands) {
      const r = await run(c.args, dir);
      expect(r.code, `${c.line}\n${r.stderr}`).toBe(0);
      for (const n of c.comment.match(/\d{1,3}(?:,\d{3})+/g) ?? []) expect(r.stdout, c.line).toContain(n);
    }
  }, 600_000);
});
