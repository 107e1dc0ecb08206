// config.json reading: Python's non-standard floats, __float__ objects, nested key lookup, and
// malformed input reported at file:line:col.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lookupKey, parseHfConfig, readHfConfig } from '../../runtime/hfconfig.ts';
import { expectRuntimeError } from '../helpers/errors.ts';
import { useTmpDirs } from '../helpers/tmp.ts';

const tmpDir = useTmpDirs('archc-cfg-');

const BAMBA_LIKE = `{
  "architectures": ["BambaForCausalLM"],
  "attn_layer_indices": [9, 18, 27],
  "hidden_size": 4096,
  "mamba_d_state": 128,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "rope_scaling": null,
  "tie_word_embeddings": false,
  "time_step_limit": [0.0, Infinity],
  "torch_dtype": "bfloat16",
  "name": "a \\"quoted\\" name with NaN and Infinity inside \\u00e9 \\ud83d\\ude00"
}`;

describe('parseHfConfig', () => {
  it('reads bare Infinity, -Infinity and NaN outside strings, and leaves them alone inside', () => {
    const c = parseHfConfig(BAMBA_LIKE, 'config.json');
    expect(c['time_step_limit']).toEqual([0, Infinity]);
    expect(c['name']).toBe('a "quoted" name with NaN and Infinity inside é 😀');
    expect(c['rms_norm_eps']).toBe(1e-5);
    expect(c['rope_scaling']).toBeNull();
    const d = parseHfConfig('{"a": -Infinity, "b": [NaN, 1, -0.5e+3], "c": {"d": Infinity}}', 'x.json');
    expect(d['a']).toBe(-Infinity);
    expect(d['b']).toEqual([NaN, 1, -500]);
    expect(lookupKey(d, ['c', 'd']).value).toBe(Infinity);
  });

  it('turns {"__float__": ...} objects into numbers', () => {
    const c = parseHfConfig(
      `{"limit": [0.0, {"__float__": "Infinity"}], "lo": {"__float__": "-Infinity"}, "n": {"__float__": "NaN"},
        "e": {"__float__": "1e-06"}, "k": {"__float__": 3}, "py": {"__float__": "inf"},
        "not_one": {"__float__": "Infinity", "other": 1}}`,
      'config.json',
    );
    expect(c['limit']).toEqual([0, Infinity]);
    expect(c['lo']).toBe(-Infinity);
    expect(c['n']).toBeNaN();
    expect(c['e']).toBe(1e-6);
    expect(c['k']).toBe(3);
    expect(c['py']).toBe(Infinity);
    expect(c['not_one']).toEqual({ __float__: 'Infinity', other: 1 });
  });

  it('refuses a __float__ it cannot read, at its line and column', () => {
    const e = expectRuntimeError(() => parseHfConfig('{\n  "x": {"__float__": "lots"}\n}', 'cfg/config.json'), 'RT203', 'cfg/config.json:2:8', '"lots"');
    expect(e).toMatchObject({ file: 'cfg/config.json', line: 2, col: 8, key: '__float__' });
  });

  it('agrees with JSON.parse on standard JSON', () => {
    const values = [
      { a: 1, b: [true, false, null], c: { d: 'e\n\t"\\/' }, f: -0.000123, g: 12345678901234567890, h: [], i: {} },
      { unicode: 'żółć 日本 \u0001 \u2028', nested: [[[[1]]]], big: 1.7976931348623157e308, tiny: 5e-324 },
    ];
    for (const v of values) {
      for (const text of [JSON.stringify(v), JSON.stringify(v, null, 2)]) expect(parseHfConfig(text, 'x.json')).toEqual(JSON.parse(text));
    }
    expect(parseHfConfig('\ufeff {"a":1} \n', 'x.json')).toEqual({ a: 1 });
  });

  it('keeps a "__proto__" key as data', () => {
    const c = parseHfConfig('{"__proto__": {"polluted": true}, "a": 1}', 'x.json');
    expect(Object.getPrototypeOf(c)).toBe(Object.prototype);
    expect(Object.keys(c)).toEqual(['__proto__', 'a']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  // (text, line, col, words in the message)
  const MALFORMED: readonly [string, string, number, number, string][] = [
    ['missing comma', '{\n  "a": 1\n  "b": 2\n}', 3, 3, `expected ',' or '}'`],
    ['trailing comma', '{"a": 1,\n}', 2, 1, 'expected a string key'],
    ['trailing comma in array', '{"a": [1, 2,]}', 1, 13, 'expected a value'],
    ['unterminated string', '{"a": "abc\n', 1, 7, 'unterminated string'],
    ['misspelt Infinity', '{"a": Infinit}', 1, 7, '"Infinit"'],
    ['-Inf', '{"a": -Inf}', 1, 7, 'expected a value'],
    ['single quotes', "{'a': 1}", 1, 2, 'expected a string key'],
    ['line break in a string', '{"a": "x\ny"}', 1, 7, 'cannot span lines'],
    ['unterminated string at the end', '{"a": "abc', 1, 7, 'unterminated string'],
    ['raw tab in a string', '{"a": "x\ty"}', 1, 9, 'control character U+0009'],
    ['bad escape', '{"a": "\\x41"}', 1, 8, 'invalid escape \\x'],
    ['leading zero', '{"a": 01}', 1, 8, `expected ',' or '}'`],
    ['bare word', '{"a": True}', 1, 7, '"True"'],
    ['missing colon', '{"a" 1}', 1, 6, `expected ':' after key "a"`],
    ['content after the object', '{"a": 1} {"b": 2}', 1, 10, 'after the end of the value'],
    ['empty file', '', 1, 1, 'unexpected end of input'],
    ['unclosed object', '{"a": 1', 1, 8, 'end of input'],
    ['comment', '{\n  // hi\n  "a": 1}', 2, 3, 'expected a string key'],
  ];

  it.each(MALFORMED)('reports %s at line:col', (_, text, line, col, words) => {
    const e = expectRuntimeError(() => parseHfConfig(text, '/models/bamba/config.json'), 'RT201', `/models/bamba/config.json:${line}:${col}:`, words);
    expect(e).toMatchObject({ file: '/models/bamba/config.json', line, col });
  });

  it('refuses nesting too deep to be a config', () => {
    expectRuntimeError(() => parseHfConfig('{"a":' + '['.repeat(600) + ']'.repeat(600) + '}', 'x.json'), 'RT201', 'nesting deeper');
  });

  it.each([
    ['an array', '[1, 2]'],
    ['a number', '42'],
    ['null', 'null'],
    ['a string', '"config"'],
  ])('refuses %s at the top level', (kind, text) => {
    expectRuntimeError(() => parseHfConfig(text, 'config.json'), 'RT202', 'config.json', kind);
  });
});

describe('lookupKey', () => {
  const config = parseHfConfig(
    '{"rope_parameters": {"rope_theta": 10000.0, "rope_type": "default", "factor": null}, "layers": [{"kind": "mamba"}, {"kind": "attention"}], "flat": 3}',
    'config.json',
  );

  it('follows nested keys', () => {
    expect(lookupKey(config, ['rope_parameters', 'rope_theta'])).toEqual({ found: true, value: 10000 });
    expect(lookupKey(config, 'rope_parameters.rope_type')).toEqual({ found: true, value: 'default' });
    expect(lookupKey(config, ['flat'])).toEqual({ found: true, value: 3 });
    expect(lookupKey(config, ['layers', '1', 'kind'])).toEqual({ found: true, value: 'attention' });
  });

  it('tells a key set to null from a missing key', () => {
    expect(lookupKey(config, ['rope_parameters', 'factor'])).toEqual({ found: true, value: null });
    expect(lookupKey(config, ['rope_parameters', 'low_freq_factor'])).toEqual({ found: false, value: undefined });
    expect(lookupKey(config, ['missing', 'deeper'])).toEqual({ found: false, value: undefined });
    expect(lookupKey(config, ['flat', 'x'])).toEqual({ found: false, value: undefined });
    expect(lookupKey(config, ['layers', '2'])).toEqual({ found: false, value: undefined });
    expect(lookupKey(config, ['layers', 'length'])).toEqual({ found: false, value: undefined });
    expect(lookupKey(config, ['toString'])).toEqual({ found: false, value: undefined });
  });
});

describe('readHfConfig', () => {
  it('reads a file, or config.json in a directory', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, BAMBA_LIKE);
    expect(readHfConfig(file)['hidden_size']).toBe(4096);
    expect(readHfConfig(dir)['time_step_limit']).toEqual([0, Infinity]);
  });

  it('names a missing file', () => {
    const dir = tmpDir();
    expectRuntimeError(() => readHfConfig(path.join(dir, 'nope.json')), 'RT200', path.join(dir, 'nope.json'), 'no such file');
    expectRuntimeError(() => readHfConfig(dir), 'RT200', path.join(dir, 'config.json'), 'no such file');
  });

  it('reports malformed content with the path it read', () => {
    const file = path.join(tmpDir(), 'config.json');
    fs.writeFileSync(file, '{\n  "a": 1,\n  "b": }\n');
    expectRuntimeError(() => readHfConfig(file), 'RT201', `${file}:3:8:`);
    fs.writeFileSync(file, new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]));
    expectRuntimeError(() => readHfConfig(file), 'RT200', file, 'UTF-8');
  });
});
