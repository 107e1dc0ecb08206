// What is not a regular file is refused with a code naming the path, never read: FIFOs (made with
// mkfifo), /dev/zero behind a link, directories — as a .arch file, an import or a file of an
// imported folder, config.json, tokenizer.json, a sharded checkpoint's index and its shards. Reads
// are bounded by the bytes actually read. The tokenizer's work on absurd added tokens is bounded
// (RT409). The CLI runs have timeouts, so a hang fails the test rather than stalling it.

import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadProgram } from '../../compiler/load.ts';
import { readHfConfig } from '../../runtime/hfconfig.ts';
import { RUNTIME_LIMITS } from '../../runtime/limits.ts';
import { readRegular } from '../../runtime/paths.ts';
import { openCheckpoint } from '../../runtime/safetensors.ts';
import { loadTokenizer, tokenizerFromJson } from '../../runtime/tokenizer.ts';
import { ROOT, runCli, writeCheckpoint } from '../helpers/checkpoints.ts';
import { expectRuntimeError } from '../helpers/errors.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmp = useTmpDirs('archc-special-');
const fifo = (p: string) => execFileSync('mkfifo', [p]);
const MODEL = 'model M(tokens: i32[T]) {\n  return tokens\n}\n';
const TOKENIZER = join(ROOT, '..', 'shared', 'models', 'tiny-bamba-a', 'f32', 'tokenizer.json');

describe('.arch files and imports', () => {
  it('check of a FIFO, a link to /dev/zero or a folder named .arch is AC100 naming the file, exit 1', async () => {
    const d = tmp();
    fifo(join(d, 'fifo.arch'));
    symlinkSync('/dev/zero', join(d, 'zero.arch'));
    mkdirSync(join(d, 'dir.arch'));
    for (const [f, why] of [['fifo.arch', 'a FIFO'], ['zero.arch', 'a device'], ['dir.arch', 'a directory']]) {
      const r = await runCli(['check', join(d, f!)], 20_000);
      expect(r.stderr).toContain(`AC100: cannot read file ${join(d, f!)}: `);
      expect(r.stderr).toContain(why);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.code).toBe(1);
    }
  }, 90_000);

  it('a model path that is not a file says what was meant: the name with .arch, or the folder\'s .arch files (AC100, no bare ENOENT)', async () => {
    const r = await runCli(['check', join(ROOT, 'models', 'bamba')], 20_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/AC100: cannot read file \S*models\/bamba: no such file/);
    expect(r.stderr).toMatch(/hint: did you mean \S*models\/bamba\.arch\?/);
    expect(r.stderr).not.toContain('ENOENT');
    const d = tmp();
    writeFileSync(join(d, 'a.arch'), MODEL);
    const hint = (p: string) => loadProgram(p).diagnostics.map((x) => [x.code, x.message.includes(' no such file') || x.message.includes('a directory'), x.hint]);
    expect(hint(join(d, 'a'))).toEqual([['AC100', true, expect.stringMatching(/did you mean \S*a\.arch\?/)]]);
    expect(hint(d)).toEqual([['AC100', true, expect.stringMatching(/a model is one \.arch file; this folder holds \S*a\.arch/)]]);
    expect(hint(join(d, 'b'))).toEqual([['AC100', true, "a model file's name ends in .arch"]]);
    expect(hint(join(d, 'b.arch'))).toEqual([['AC100', true, undefined]]);
  }, 60_000);

  it('an import of a FIFO, of a folder holding one, or of a link to /dev/zero is AC100 at the import', () => {
    const d = tmp();
    mkdirSync(join(d, 'lib'));
    writeFileSync(join(d, 'lib', 'a.arch'), 'block B(x) {\n  return x\n}\n');
    fifo(join(d, 'lib', 'b.arch'));
    fifo(join(d, 'lib', 'notes.txt')); // not an .arch file: never opened
    fifo(join(d, 'pipe.arch'));
    symlinkSync('/dev/zero', join(d, 'zero.arch'));
    for (const [imp, bad] of [['lib', join(d, 'lib', 'b.arch')], ['pipe', join(d, 'pipe.arch')], ['zero', join(d, 'zero.arch')]]) {
      writeFileSync(join(d, 'main.arch'), `import ${imp}\n${MODEL}`);
      const loaded = loadProgram(join(d, 'main.arch'));
      const d100 = loaded.diagnostics.filter((x) => x.code === 'AC100');
      expect(d100.map((x) => x.message).join('\n')).toContain(bad);
      expect(d100[0]!.span?.line).toBe(1);
    }
  });
});

describe('checkpoint files', () => {
  it('config.json, tokenizer.json and an index that are FIFOs or /dev/zero are refused (RT200, RT400, RT100)', async () => {
    const d = tmp();
    writeCheckpoint(d, {}, { seed: 1, shardSize: 40_000 });
    rmSync(join(d, 'config.json'));
    fifo(join(d, 'config.json'));
    expectRuntimeError(() => readHfConfig(d), 'RT200', join(d, 'config.json'), 'a FIFO');
    rmSync(join(d, 'config.json'));
    symlinkSync('/dev/zero', join(d, 'config.json'));
    expectRuntimeError(() => readHfConfig(join(d, 'config.json')), 'RT200', 'a device');
    fifo(join(d, 'tokenizer.json'));
    await expect(loadTokenizer(d)).rejects.toThrow(/RT400: .*tokenizer\.json.*a FIFO/);
    rmSync(join(d, 'tokenizer.json'));
    symlinkSync('/dev/zero', join(d, 'tokenizer.json'));
    await expect(loadTokenizer(d)).rejects.toThrow(/RT400: .*a device/);
    const index = join(d, 'model.safetensors.index.json');
    const saved = readFileSync(index);
    rmSync(index);
    symlinkSync('/dev/zero', index);
    expectRuntimeError(() => openCheckpoint(d), 'RT100', index, 'not a regular file');
    rmSync(index);
    writeFileSync(index, saved);
    const shard = readdirSync(d).find((f) => f.startsWith('model-'))!;
    rmSync(join(d, shard));
    fifo(join(d, shard));
    expectRuntimeError(() => openCheckpoint(d), 'RT100', shard, 'not a regular file');
  });

  it('reads stop at the limit by bytes read, whatever stat says', () => {
    const d = tmp();
    writeFileSync(join(d, 'f'), 'x'.repeat(100));
    expect(readRegular(join(d, 'f'), 100)).toMatchObject({ kind: 'ok' });
    expect(readRegular(join(d, 'f'), 99)).toEqual({ kind: 'over', bytes: 100 });
    // /proc files say size 0 and hold more
    expect(readRegular('/proc/self/status', 10)).toMatchObject({ kind: 'over' });
    expect(readRegular(join(d, 'none'), 10)).toEqual({ kind: 'missing' });
    symlinkSync(join(d, 'gone'), join(d, 'dangling'));
    expect(readRegular(join(d, 'dangling'), 10)).toMatchObject({ kind: 'bad', why: expect.stringContaining('does not exist') });
  });
});

describe('the tokenizer\'s work is bounded (RT409)', () => {
  const base = JSON.parse(readFileSync(TOKENIZER, 'utf8')) as { added_tokens?: unknown[] };
  const token = (content: string, id: number) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false });

  it('an added token over added-token-chars, or too many added tokens, is refused before the library runs', () => {
    const { addedTokenChars, addedTokens } = RUNTIME_LIMITS;
    const long = { ...base, added_tokens: [...(base.added_tokens ?? []), token('ab'.repeat(50_000_000), 100_000)] };
    const t0 = performance.now();
    expectRuntimeError(() => tokenizerFromJson(JSON.stringify(long)), 'RT409', 'content has 100000000 characters', addedTokenChars.name);
    expect(performance.now() - t0).toBeLessThan(20_000);
    const many = { ...base, added_tokens: Array.from({ length: addedTokens.value + 1 }, (_, i) => token(`t${i}`, 100_000 + i)) };
    expectRuntimeError(() => tokenizerFromJson(JSON.stringify(many)), 'RT409', `${addedTokens.value + 1} entries`, addedTokens.name);
    // at the limit it loads
    const ok = { ...base, added_tokens: [...(base.added_tokens ?? []), token('x'.repeat(addedTokenChars.value), 100_000)] };
    expect(tokenizerFromJson(JSON.stringify(ok)).encode('hello').length).toBeGreaterThan(0);
  }, 60_000);

  it('a tokenizer.json over tokenizer-bytes is refused by bytes read', async () => {
    const d = tmp();
    copyFileSync(TOKENIZER, join(d, 'tokenizer.json'));
    expect(await loadTokenizer(d)).not.toBeNull();
    truncateSync(join(d, 'tokenizer.json'), RUNTIME_LIMITS.tokenizerBytes.value + 1); // sparse: no disk used
    await expect(loadTokenizer(d)).rejects.toThrow(/RT409: .*tokenizer\.json: at least 268435457 bytes, over the limit tokenizer-bytes/);
  });
});
