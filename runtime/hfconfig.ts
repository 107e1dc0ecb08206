// Hugging Face config.json: JSON plus what Python's json module writes and reads (bare Infinity,
// -Infinity and NaN) and `{"__float__": "Infinity"}` objects; errors point at file:line:col.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeError, fail } from './errors.ts';
import { RUNTIME_LIMITS } from './limits.ts';
import { readRegular } from './paths.ts';

export type HfConfig = Record<string, unknown>;

/** Parses a config.json text. The top level must be an object. `file` is only used in messages. */
export function parseHfConfig(text: string, file: string): HfConfig {
  const value = new ConfigParser(text, file).document();
  if (!isPlainObject(value)) fail('RT202', [file, kindOf(value)], { file, line: 1, col: 1 });
  return value;
}

/** Reads and parses a config.json; a directory means its `config.json`. */
export function readHfConfig(p: string): HfConfig {
  let file = p;
  let bytes: Uint8Array;
  try {
    if (fs.statSync(p).isDirectory()) file = path.join(p, 'config.json');
    // a regular file only, its bytes counted as read (a FIFO or /dev/zero is refused, not awaited)
    const { configBytes } = RUNTIME_LIMITS;
    const r = readRegular(file, configBytes.value);
    if (r.kind === 'missing') fail('RT200', [file, 'no such file'], { file });
    if (r.kind === 'bad') fail('RT200', [file, r.why], { file });
    if (r.kind === 'over') fail('RT205', [file, r.bytes, configBytes.name, configBytes.value], { file });
    bytes = r.bytes;
  } catch (e) {
    if ((e as { code?: string }).code?.startsWith('RT')) throw e;
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : describeError(e);
    fail('RT200', [file, why], { file }, e);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    fail('RT200', [file, 'not valid UTF-8'], { file });
  }
  return parseHfConfig(text, file);
}

/** Follows `path` (`['rope_parameters', 'rope_theta']`, or the dotted string) through nested
 *  objects; a numeric part also indexes an array. `found` is false as soon as a part is absent. */
export function lookupKey(config: unknown, keyPath: readonly string[] | string): { found: boolean; value: unknown } {
  const parts = typeof keyPath === 'string' ? keyPath.split('.') : keyPath;
  let cur = config;
  for (const k of parts) {
    if (Array.isArray(cur) && /^(0|[1-9]\d*)$/.test(k) && Number(k) < cur.length) {
      cur = cur[Number(k)];
    } else if (isPlainObject(cur) && Object.hasOwn(cur, k)) {
      cur = cur[k];
    } else {
      return { found: false, value: undefined };
    }
  }
  return { found: true, value: cur };
}

// ---------------------------------------------------------------------------------------------

/** `__float__` strings as Python writes them. */
const FLOAT_WORDS: Readonly<Record<string, number>> = {
  Infinity: Infinity, '-Infinity': -Infinity, NaN: NaN,
  inf: Infinity, '+inf': Infinity, '-inf': -Infinity, nan: NaN,
};
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WORD = /[A-Za-z0-9_.+-]+/y;
const MAX_DEPTH = RUNTIME_LIMITS.configDepth.value;
const ESCAPES: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** A recursive-descent JSON parser that tracks offsets so errors can name line and column. */
class ConfigParser {
  private pos = 0;

  constructor(private readonly text: string, private readonly file: string) {
    if (text.charCodeAt(0) === 0xfeff) this.pos = 1;
  }

  document(): unknown {
    this.ws();
    const v = this.value(0);
    this.ws();
    if (this.pos < this.text.length) this.error(`unexpected ${this.token()} after the end of the value`);
    return v;
  }

  private value(depth: number): unknown {
    if (depth > MAX_DEPTH) this.error(`nesting deeper than the limit ${RUNTIME_LIMITS.configDepth.name} = ${MAX_DEPTH}`);
    const c = this.text[this.pos];
    switch (c) {
      case '{': return this.object(depth);
      case '[': return this.array(depth);
      case '"': return this.string();
      case 't': return this.literal('true', true);
      case 'f': return this.literal('false', false);
      case 'n': return this.literal('null', null);
      case 'N': return this.literal('NaN', NaN);
      case 'I': return this.literal('Infinity', Infinity);
      case undefined: return this.error('unexpected end of input, expected a value');
    }
    if (c === '-' && this.text[this.pos + 1] === 'I') return this.literal('-Infinity', -Infinity);
    if (c === '-' || (c >= '0' && c <= '9')) return this.number();
    return this.error(`unexpected ${this.token()}, expected a value`);
  }

  private object(depth: number): unknown {
    const start = this.pos;
    this.pos++; // {
    const obj: Record<string, unknown> = {};
    this.ws();
    if (this.eat('}')) return obj;
    for (;;) {
      this.ws();
      if (this.text[this.pos] !== '"') this.error(`unexpected ${this.token()}, expected a string key`);
      const key = this.string();
      this.ws();
      if (!this.eat(':')) this.error(`unexpected ${this.token()}, expected ':' after key "${key}"`);
      this.ws();
      // defineProperty: a "__proto__" key is data, as with JSON.parse
      Object.defineProperty(obj, key, { value: this.value(depth + 1), writable: true, enumerable: true, configurable: true });
      this.ws();
      if (this.eat('}')) break;
      if (!this.eat(',')) this.error(`unexpected ${this.token()}, expected ',' or '}'`);
    }
    return this.floatObject(obj, start);
  }

  /** `{"__float__": "Infinity"}` (and nothing else in the object) is a number. */
  private floatObject(obj: Record<string, unknown>, start: number): unknown {
    const keys = Object.keys(obj);
    if (keys.length !== 1 || keys[0] !== '__float__') return obj;
    const v = obj['__float__'];
    if (typeof v === 'number') return v;
    if (typeof v === 'string') {
      if (Object.hasOwn(FLOAT_WORDS, v)) return FLOAT_WORDS[v];
      NUMBER.lastIndex = 0;
      if (NUMBER.exec(v)?.[0] === v) return Number(v);
    }
    const { line, col } = this.lineCol(start);
    return fail('RT203', [this.file, line, col, JSON.stringify(v) ?? String(v)], { file: this.file, line, col, key: '__float__' });
  }

  private array(depth: number): unknown[] {
    this.pos++; // [
    const out: unknown[] = [];
    this.ws();
    if (this.eat(']')) return out;
    for (;;) {
      this.ws();
      out.push(this.value(depth + 1));
      this.ws();
      if (this.eat(']')) return out;
      if (!this.eat(',')) this.error(`unexpected ${this.token()}, expected ',' or ']'`);
    }
  }

  private string(): string {
    const start = this.pos;
    this.pos++; // opening quote
    let out = '';
    let run = this.pos;
    for (;;) {
      const code = this.text.charCodeAt(this.pos);
      if (Number.isNaN(code)) this.error('unterminated string', start);
      if (code === 0x22) break; // "
      if (code === 0x0a) this.error('unterminated string (a string cannot span lines)', start);
      if (code < 0x20) this.error(`control character U+${code.toString(16).padStart(4, '0')} in string (escape it)`);
      if (code !== 0x5c) {
        this.pos++;
        continue;
      }
      out += this.text.slice(run, this.pos);
      const esc = this.text[this.pos + 1];
      if (esc !== undefined && Object.hasOwn(ESCAPES, esc)) {
        out += ESCAPES[esc];
        this.pos += 2;
      } else if (esc === 'u' && /^[0-9a-fA-F]{4}$/.test(this.text.slice(this.pos + 2, this.pos + 6))) {
        out += String.fromCharCode(parseInt(this.text.slice(this.pos + 2, this.pos + 6), 16));
        this.pos += 6;
      } else {
        this.error(`invalid escape \\${esc ?? ''} in string`);
      }
      run = this.pos;
    }
    out += this.text.slice(run, this.pos);
    this.pos++; // closing quote
    return out;
  }

  private number(): number {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m) return this.error(`invalid number ${this.token()}`);
    this.pos += m[0].length;
    return Number(m[0]);
  }

  private literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.error(`unexpected ${this.token()}, expected a value`);
    this.pos += word.length;
    return value;
  }

  private eat(c: string): boolean {
    if (this.text[this.pos] !== c) return false;
    this.pos++;
    return true;
  }

  private ws(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.pos++;
    }
  }

  /** The word or character at the current position, for messages. */
  private token(): string {
    if (this.pos >= this.text.length) return 'end of input';
    WORD.lastIndex = this.pos;
    const m = WORD.exec(this.text);
    const tok = m ? m[0].slice(0, 30) : this.text[this.pos]!;
    return JSON.stringify(tok);
  }

  private lineCol(at: number): { line: number; col: number } {
    let line = 1;
    let lineStart = 0;
    for (let i = this.text.indexOf('\n'); i !== -1 && i < at; i = this.text.indexOf('\n', i + 1)) {
      line++;
      lineStart = i + 1;
    }
    return { line, col: at - lineStart + 1 };
  }

  private error(what: string, at = this.pos): never {
    const { line, col } = this.lineCol(at);
    fail('RT201', [this.file, line, col, what], { file: this.file, line, col });
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

/** What config.json says the checkpoint is (model_type, architectures) where that names another
 *  model than the program's `model` (e.g. Bamba: `bamba`, `BambaForCausalLM`, and init-weights'
 *  `archc-bamba`, `ArchcBamba` all name it), else null. Said only when a load fails: a config of a
 *  kindred family (Granite-4.0-H for bamba.arch) may well fit. */
export function otherModel(config: HfConfig, model: string): string | null {
  // a family's stem: `Mamba2LM`, `mamba2`, `Mamba2ForCausalLM`, `archc-mamba2lm` are all `mamba2`
  const stem = (v: unknown) => (typeof v === 'string'
    ? v.toLowerCase().replace(/[^a-z0-9]/g, '').replace(/^archc/, '').replace(/(forcausallm|lmheadmodel|lm|model)$/, '') : null);
  const m = stem(model);
  const type = stem(config.model_type);
  const arch = Array.isArray(config.architectures) ? stem(config.architectures[0]) : null;
  if ((type === null && arch === null) || type === m || arch === m) return null;
  return [type !== null ? `model_type ${JSON.stringify(config.model_type)}` : '', arch !== null ? `architectures ${JSON.stringify(config.architectures)}` : '']
    .filter(Boolean).join(', ');
}
