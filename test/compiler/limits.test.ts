// Every limit in compiler/limits.ts and runtime/limits.ts, tripped twice in one run: the second trip
// must give the same coded error as the first (a limit that resets or drifts after tripping is no
// limit). Programs that take the compiler to a limit of work (ops, eval-steps) run in a child
// process (test/fuzz/runner.ts) so this worker stays responsive. docs/LIMITS.md lists them all.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LIMITS } from '../../compiler/limits.ts';
import { CompileError, type Diagnostic } from '../../dsl/diagnostics.ts';
import { parseHfConfig } from '../../runtime/hfconfig.ts';
import { RUNTIME_LIMITS, jsonDepth } from '../../runtime/limits.ts';
import { parseSafetensorsHeader } from '../../runtime/safetensors.ts';
import { runPrograms } from '../fuzz/runner.ts';
import { compileText } from '../helpers/compile.ts';
import { expectRuntimeError } from '../helpers/errors.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

/** `body` in a model that returns a value computed from its input (returning the input is AC411). */
const model = (body: string) => `model M(tokens: i32[T]) {\n  weight out__[8, 4]\n${body}\n  return embedding(tokens, out__)\n}\n`;

function diagnostics(text: string, set?: string[]): Diagnostic[] {
  try {
    compileText(text, { set });
  } catch (e) {
    if (e instanceof CompileError) return [...e.diagnostics];
    throw e;
  }
  throw new Error('compiled');
}

/** Compiles twice; both runs must report AC500 for `limit` (the same messages both times). */
function tripsTwice(limit: { name: string }, text: string, set?: string[]): Diagnostic[] {
  const first = diagnostics(text, set);
  const second = diagnostics(text, set);
  const hits = first.filter((d) => d.code === 'AC500' && d.message.includes(`limit ${limit.name} exceeded`));
  expect(hits.length, first.map((d) => `${d.code} ${d.message}`).join('\n')).toBeGreaterThan(0);
  expect(second.map((d) => d.message)).toEqual(first.map((d) => d.message));
  return hits;
}

describe('front-end limits (compiler/limits.ts)', () => {
  it('expr-depth: ten lets of a 3,000-term sum are ten errors, not a stack overflow', () => {
    const sum = Array.from({ length: 3000 }, () => '1').join(' + ');
    const hits = tripsTwice(LIMITS.exprDepth, model(Array.from({ length: 10 }, (_, i) => `  let a${i} = ${sum}`).join('\n')));
    expect(hits.length).toBe(10);
    expect(hits[0]!.message).toBe('limit expr-depth exceeded: expressions nested 201 deep here (the limit is 200)');
    // and a program within the limit still compiles after the trips
    expect(compileText(model('  let a = 1 + 2 + 3')).graph.model).toBe('M');
  });

  it('expr-depth: a chain of 500 params each reading the next', () => {
    const chain = Array.from({ length: 500 }, (_, i) => `  param p${i} = p${i + 1} + 1`).join('\n');
    tripsTwice(LIMITS.exprDepth, model(`${chain}\n  param p500 = 1\n  let z = p0`));
  });

  it('block-depth: a block that applies itself', () => {
    const text = `block R(n)(x) {\n  y = if n > 0 then a: R(n - 1)(x) else x\n  return y\n}\n${model('  e = r: R(1000)(tokens)')}`;
    const [d] = tripsTwice(LIMITS.blockDepth, text);
    expect(d!.message).toContain('R applied 65 blocks deep (the limit is 64)');
  });

  it('loop-iterations: a loop bound of 1e9 and nested loops', () => {
    const [d] = tripsTwice(LIMITS.loopIterations, model('  for i in 0..1000000000 {\n  }'));
    expect(d!.message).toContain('1,000,000,000 loop iterations');
    tripsTwice(LIMITS.loopIterations, model('  for i in 0..2000 {\n    for j in 0..2000 {\n    }\n  }'));
  });

  it('list-length, list-depth and string-length: values that double in a loop', () => {
    tripsTwice(LIMITS.listLength, model('  let l = [1]\n  for i in 0..40 {\n    let l = l + l\n  }'));
    tripsTwice(LIMITS.listLength, model('  let l = 1\n  for i in 0..60 {\n    let l = [l, l]\n  }'));
    tripsTwice(LIMITS.listDepth, model('  let l = 1\n  for i in 0..60 {\n    let l = [l]\n  }'));
    tripsTwice(LIMITS.stringLength, model('  let s = "ab"\n  for i in 0..40 {\n    let s = s + s\n  }'));
    // from --set: lists nested deeper than list-depth are refused as a value, naming the param
    const d = diagnostics(model('  param l = [1]\n  let z = len(l)'), [`l=${'['.repeat(40)}1${']'.repeat(40)}`]);
    expect(d.map((x) => `${x.code} ${x.message}`).join()).toMatch(/AC311 .*l .*list-depth/);
  });

  it('weight-elements: a weight of 10^15 elements', () => {
    const [d] = tripsTwice(LIMITS.weightElements, model('  weight w[1000000000, 1000000]\n  x = embedding(tokens, w)'));
    expect(d!.message).toContain('weight w [1,000,000,000, 1,000,000] has 1,000,000,000,000,000 elements');
  });

  it('diagnostics: a model with 500 unknown names stops at the limit', () => {
    const text = model(Array.from({ length: 500 }, (_, i) => `  let a${i} = unknown${i}`).join('\n'));
    tripsTwice(LIMITS.diagnostics, text);
    expect(diagnostics(text).length).toBe(LIMITS.diagnostics.value + 1);
  });

  it('source-bytes: a file over 1 MiB is refused before it is parsed', () => {
    const text = `# ${'x'.repeat(LIMITS.sourceBytes.value)}\n`;
    const [d] = tripsTwice(LIMITS.sourceBytes, text);
    expect(d!.message).toMatch(/__test__\.arch is 1,048,57\d characters/);
  });

  it('source-tokens: ten lets of 20,000-term sums are refused after lexing', () => {
    const sum = Array.from({ length: 20_000 }, () => '1').join(' + ');
    const [d] = tripsTwice(LIMITS.sourceTokens, model(Array.from({ length: 10 }, (_, i) => `  let a${i} = ${sum}`).join('\n')));
    expect(d!.message).toMatch(/has 400,\d{3} tokens \(the limit is 100,000\)/);
  });

  it('ops and eval-steps: a loop that emits ops, a block that applies itself twice per level (child process)', async () => {
    const ops = `model M(tokens: i32[T]) {\n  weight w[4, 4]\n  x = embedding(tokens, w)\n  for i in 0..500000 {\n    x = x + x\n  }\n  return x\n}\n`;
    const steps = `block R(n)(x) {\n  y = if n > 0 then a: R(n - 1)(x) else x\n  z = if n > 0 then b: R(n - 1)(y) else y\n  return z\n}\n${model('  e = r: R(25)(tokens)')}`;
    // n_layers = 1000000 in Bamba: the op limit stops it within seconds
    const bamba = readFileSync(join(import.meta.dirname, '..', '..', 'models', 'bamba.arch'), 'utf8');
    const jobs = [ops, ops, steps, steps].map((text, id) => ({ id, text }));
    jobs.push({ id: 4, text: bamba, set: ['n_layers=1000000'] } as never);
    const results = await runPrograms(jobs);
    for (const r of results) expect(r.kind, r.detail.join()).toBe('diagnosed');
    expect(results.map((r) => r.detail.includes('AC500'))).toEqual([true, true, true, true, true]);
  }, 120_000);
});

describe('code frames and diagnostics shown (cli/errors.ts)', () => {
  it('frame-width and shown-diagnostics: 100,000 errors on one line print 50 frames of bounded width', async () => {
    const { reportError } = await import('../../cli/errors.ts');
    const { compileFile } = await import('../../compiler/compile.ts');
    for (let run = 0; run < 2; run++) {
      const text = `model M(tokens: i32[T]) { ${'$ '.repeat(100_000)} return tokens }`;
      let err: unknown;
      try {
        compileFile(join(import.meta.dirname, '..', '..', 'models', '__test__.arch'), { text });
      } catch (e) {
        err = e;
      }
      let out = '';
      const write = process.stderr.write;
      process.stderr.write = ((s: string) => ((out += s), true)) as never;
      try {
        expect(reportError(err)).toBe(1);
      } finally {
        process.stderr.write = write;
      }
      expect(out.match(/error AC101/g)!.length).toBe(LIMITS.shownDiagnostics.value);
      expect(out).toContain(`… and ${(100_000 - LIMITS.shownDiagnostics.value).toLocaleString('en-US')} more not shown`);
      const widest = Math.max(...out.split('\n').map((l) => l.length));
      expect(widest).toBeLessThan(LIMITS.frameWidth.value + 20);
      expect(out.length).toBeLessThan(50 * 1000);
    }
  });
});

describe('runtime limits (runtime/limits.ts)', () => {
  const tmp = useTmpDirs();
  const header = (json: string) => new TextEncoder().encode(json);

  it('header-depth: a header nesting 20,000 deep is RT118, twice', () => {
    const deep = `{"a":${'['.repeat(20_000)}${']'.repeat(20_000)}}`;
    for (let i = 0; i < 2; i++) expectRuntimeError(() => parseSafetensorsHeader(header(deep), 8 + deep.length, 'f'), 'RT118', 'header-depth = 64');
    expect(jsonDepth('{"a": "[[[[", "b": [[1]]}')).toBe(3);
  });

  it('header-bytes: a header length over 100 MB is RT113, twice', async () => {
    const { readHeaderLength } = await import('../../runtime/safetensors.ts');
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(RUNTIME_LIMITS.headerBytes.value + 8), true);
    for (let i = 0; i < 2; i++) expectRuntimeError(() => readHeaderLength(prefix, 2e9, 'f'), 'RT113', '100000000');
  });

  it('config-depth: a config.json nesting 600 deep is RT201, twice', () => {
    const deep = `{"a": ${'['.repeat(600)}${']'.repeat(600)}}`;
    for (let i = 0; i < 2; i++) expectRuntimeError(() => parseHfConfig(deep, 'config.json'), 'RT201', 'config-depth = 512');
  });

  it('config-bytes: a config.json over 64 MiB is RT205, twice', async () => {
    const { readHfConfig } = await import('../../runtime/hfconfig.ts');
    const f = join(tmp(), 'config.json');
    writeFileSync(f, `{"a": "${'x'.repeat(RUNTIME_LIMITS.configBytes.value)}"}`);
    for (let i = 0; i < 2; i++) expectRuntimeError(() => readHfConfig(f), 'RT205', 'config-bytes');
  });

  it('tensor-bytes: a tensor larger than one typed array can hold is RT145 before any allocation, twice', async () => {
    const { openCheckpoint } = await import('../../runtime/safetensors.ts');
    // A header claiming 2^31 f32 elements over a tiny file: refused at open (RT124, data missing) —
    // so give the limit its own test through read of a sparse file of the right size.
    const dir = tmp();
    const n = RUNTIME_LIMITS.tensorBytes.value / 4 + 1;
    const json = JSON.stringify({ big: { dtype: 'F32', shape: [n], data_offsets: [0, n * 4] } });
    const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
    const f = join(dir, 'model.safetensors');
    const head = Buffer.alloc(8);
    head.writeBigUInt64LE(BigInt(padded.length));
    writeFileSync(f, Buffer.concat([head, Buffer.from(padded)]));
    const { truncateSync } = await import('node:fs');
    truncateSync(f, 8 + padded.length + n * 4); // sparse: no disk used
    const ckpt = openCheckpoint(dir);
    try {
      for (let i = 0; i < 2; i++) expectRuntimeError(() => ckpt.read('big'), 'RT145', 'big', 'tensor-bytes');
    } finally {
      ckpt.close();
    }
  });

  it('shown-problems: a checkpoint missing most tensors lists 20 and counts the rest (RT164), twice', async () => {
    const { compileTiny, loadModel, randomTensors, writeCheckpoint } = await import('../helpers/checkpoints.ts');
    const dir = tmp();
    const all = randomTensors(compileTiny());
    expect(all.length - 5).toBeGreaterThan(RUNTIME_LIMITS.shownProblems.value);
    writeCheckpoint(dir, {}, { tensors: all.slice(0, 5) });
    for (let i = 0; i < 2; i++) {
      const e = await loadModel(dir).then(() => undefined, (x: unknown) => x);
      expect((e as { code?: string }).code).toBe('RT164');
      const text = (e as { text: string }).text;
      expect(text.split('\n').filter((l) => l.startsWith('  ')).length).toBe(RUNTIME_LIMITS.shownProblems.value + 1);
      expect(text).toMatch(/… and \d+ more/);
    }
  });
});

describe('the limits of the sequence API, the environment and the tokenizer, twice each', () => {
  const tmp = useTmpDirs();
  it('run-bytes: a run whose arena passes one typed array is RT305, twice', async () => {
    const [{ compileTiny }, { lowerToProgram }, { checkRunBytes }] = await Promise.all([import('../helpers/checkpoints.ts'), import('../../compiler/lower.ts'), import('../../runtime/engine.ts')]);
    const c = compileTiny();
    const program = lowerToProgram(c.graph, c.bindings);
    const T = Math.ceil(RUNTIME_LIMITS.runBytes.value / (4 * program.entries.forward.arena.T)) + 1;
    for (let i = 0; i < 2; i++) expectRuntimeError(() => checkRunBytes(program, 'forward', T, 1), 'RT305', 'run-bytes');
    checkRunBytes(program, 'forward', 1, 1);
  });

  it('sequences: one more live sequence than maxSequences is RT333, twice; a release makes room', async () => {
    const [{ compileTiny }, { lowerToProgram }, { Sequences }] = await Promise.all([import('../helpers/checkpoints.ts'), import('../../compiler/lower.ts'), import('../../runtime/sequences.ts')]);
    const c = compileTiny();
    let next = 0;
    const pool = { capacity: 4, slotBytes: 0, acquire: () => next++, release: () => {}, copy: () => {}, save: () => new Uint8Array(0), restore: () => {} };
    const seqs = new Sequences(pool, 4, 3, lowerToProgram(c.graph, c.bindings));
    const held = [seqs.create(), seqs.create(), seqs.create()];
    for (let i = 0; i < 2; i++) expectRuntimeError(() => seqs.create(), 'RT333', 'maxSequences = 3');
    seqs.release(held[0]!);
    seqs.create();
  });

  it('threads: ARCHC_THREADS over 64 is RT306, twice', async () => {
    const { envThreads } = await import('../../runtime/cpu/pool.ts');
    for (let i = 0; i < 2; i++) expectRuntimeError(() => envThreads(String(RUNTIME_LIMITS.threads.value + 1)), 'RT306', 'ARCHC_THREADS', 'limit threads');
    expect(envThreads(String(RUNTIME_LIMITS.threads.value))).toBe(RUNTIME_LIMITS.threads.value);
  });

  it('added-token-chars, added-tokens and tokenizer-bytes are RT409, twice', async () => {
    const { loadTokenizer, tokenizerFromJson } = await import('../../runtime/tokenizer.ts');
    const { truncateSync } = await import('node:fs');
    const json = (added: unknown[]) => JSON.stringify({ model: { type: 'WordLevel', vocab: { a: 0 }, unk_token: 'a' }, added_tokens: added });
    const token = (content: string, id: number) => ({ id, content, special: true });
    const long = json([token('x'.repeat(RUNTIME_LIMITS.addedTokenChars.value + 1), 1)]);
    const many = json(Array.from({ length: RUNTIME_LIMITS.addedTokens.value + 1 }, (_, i) => token(`t${i}`, i + 1)));
    for (let i = 0; i < 2; i++) {
      expectRuntimeError(() => tokenizerFromJson(long), 'RT409', 'added-token-chars');
      expectRuntimeError(() => tokenizerFromJson(many), 'RT409', 'added-tokens');
    }
    const dir = tmp();
    writeFileSync(join(dir, 'tokenizer.json'), '{}');
    truncateSync(join(dir, 'tokenizer.json'), RUNTIME_LIMITS.tokenizerBytes.value + 1); // sparse
    for (let i = 0; i < 2; i++) await expect(loadTokenizer(dir)).rejects.toThrow(/RT409: .*tokenizer-bytes/);
  });
});

describe('names that are not what they seem (null-prototype lookups)', () => {
  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty'])('--set dtype=%s is not a dtype', (name) => {
    const text = 'model M(tokens: i32[T]) {\n  param dtype: dtype = "f32"\n  weight w[4, 4]\n  x = embedding(tokens, w)\n  return x\n}\n';
    const d = diagnostics(text, [`dtype=${name}`]);
    expect(d.map((x) => x.code)).toEqual(['AC311']);
  });

  it.each(['constructor', 'toString', 'valueOf'])('%s: is not an attribute of rmsnorm', (name) => {
    const text = `model M(tokens: i32[T]) {\n  weight w[4, 4]\n  weight g[4]\n  x = embedding(tokens, w)\n  y = rmsnorm(x, g, ${name}: 1)\n  return y\n}\n`;
    const d = diagnostics(text);
    expect(d.map((x) => x.code)).toEqual(['AC210']);
  });
});

describe('docs/LIMITS.md', () => {
  it('documents every limit by name', () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'LIMITS.md'), 'utf8');
    for (const l of [...Object.values(LIMITS), ...Object.values(RUNTIME_LIMITS)]) expect(doc).toContain(`\`${l.name}\``);
  });
});
