// Text <-> token ids for a Hugging Face checkpoint: tokenizer.json (+ tokenizer_config.json) run by
// @huggingface/tokenizers, plus a streaming detokenizer that only ever emits settled text.
// Browser-safe: only loadTokenizer touches the file system, through a dynamic import.

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { describeError, fail } from './errors.ts';
import { RUNTIME_LIMITS } from './limits.ts';

// ---- API ---------------------------------------------------------------------------------------

export interface EncodeOptions {
  /** Add BOS/EOS as the post-processor and add_bos_token/add_eos_token say (default true). */
  readonly addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special added tokens (BOS, EOS, …) from the text (default false, like transformers). */
  readonly skipSpecialTokens?: boolean;
  /** transformers' clean_up_tokenization (" ." -> "." …); default: the config's value, else false. */
  readonly cleanUpTokenizationSpaces?: boolean;
}

/** Incremental detokenizer: the concatenation of all `push` results and `flush()` equals decode(ids). */
export interface StreamDecoder {
  /** The new text settled by `id`; "" while a character or a cleanup rule is still incomplete. */
  push(id: number): string;
  /** Whatever is still held back: call it when generation ends (EOS, max tokens, stop string), or
   * held text is lost. Pushing more afterwards works, but a character cut by the flush stays cut. */
  flush(): string;
}

export interface Tokenizer {
  encode(text: string, options?: EncodeOptions): number[];
  /** Ids with no token (e.g. a model vocabulary padded past the tokenizer's) decode to "". */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  decoder(options?: DecodeOptions): StreamDecoder;
  readonly bosId?: number;
  readonly eosIds: number[];
  /** One past the largest id the tokenizer knows (added tokens included). */
  readonly vocabSize: number;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

/**
 * Loads `dir/tokenizer.json` (+ optional tokenizer_config.json, and special_tokens_map.json for
 * bos/eos when the config lacks them). Null when there is no tokenizer.json.
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer | null> {
  const { readRegular } = await import('./paths.ts');
  const { join } = await import('node:path');
  // regular files only, their bytes counted as read: a FIFO or /dev/zero is RT400, not a hang
  const read = async (name: string): Promise<{ path: string; text: string | null }> => {
    const path = join(dir, name);
    const limit = RUNTIME_LIMITS.tokenizerBytes;
    const r = readRegular(path, limit.value);
    if (r.kind === 'missing') return { path, text: null };
    if (r.kind === 'bad') fail('RT400', [path, r.why], { file: path });
    if (r.kind === 'over') fail('RT409', [path, `at least ${r.bytes} bytes`, limit.name, limit.value], { file: path });
    return { path, text: new TextDecoder().decode(r.bytes) };
  };
  const tok = await read('tokenizer.json');
  if (tok.text === null) return null;
  const cfg = await read('tokenizer_config.json');
  const map = await read('special_tokens_map.json');
  const config = cfg.text === null ? {} : parseObject(cfg.text, cfg.path);
  const specialMap = map.text === null ? {} : parseObject(map.text, map.path);
  for (const key of ['bos_token', 'eos_token', 'unk_token'])
    if (config[key] === undefined && specialMap[key] !== undefined) config[key] = specialMap[key];
  return buildTokenizer(parseObject(tok.text, tok.path), config, tok.path, cfg.text === null ? map.path : cfg.path);
}

/** The same from JSON strings (browsers: fetch the files, pass their text). */
export function tokenizerFromJson(tokenizerJson: string, configJson?: string, specialTokensMapJson?: string): Tokenizer {
  const config = configJson === undefined ? {} : parseObject(configJson, 'tokenizer_config.json');
  const specialMap = specialTokensMapJson === undefined ? {} : parseObject(specialTokensMapJson, 'special_tokens_map.json');
  for (const key of ['bos_token', 'eos_token', 'unk_token'])
    if (config[key] === undefined && specialMap[key] !== undefined) config[key] = specialMap[key];
  return buildTokenizer(parseObject(tokenizerJson, 'tokenizer.json'), config, 'tokenizer.json', 'tokenizer_config.json');
}

// ---- construction ------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

function parseObject(text: string, file: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    fail('RT401', [file, describeError(e)], { file }, e);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    fail('RT402', [file, `must be a JSON object, found ${describe(v)}`], { file });
  return v as Json;
}

/** tokenizer_config.json writes special tokens as "<s>" or {"content": "<s>", …}. */
function tokenString(config: Json, key: string, file: string): string | undefined {
  const v = config[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  fail('RT405', [file, key, describe(v)], { file, key });
}

/** RT409 for added tokens past the limits: the library's work grows with their number and length. */
function checkAddedTokens(added: readonly unknown[] | undefined, file: string): void {
  if (!added) return;
  const { addedTokens, addedTokenChars } = RUNTIME_LIMITS;
  if (added.length > addedTokens.value) fail('RT409', [file, `added_tokens holds ${added.length} entries`, addedTokens.name, addedTokens.value], { file, key: 'added_tokens' });
  added.forEach((t, i) => {
    const content = t !== null && typeof t === 'object' ? (t as Json).content : undefined;
    if (typeof content === 'string' && content.length > addedTokenChars.value) {
      fail('RT409', [file, `added_tokens[${i}].content has ${content.length} characters`, addedTokenChars.name, addedTokenChars.value], { file, key: `added_tokens[${i}].content` });
    }
  });
}

const SENTINEL = '\u0000archc-sequence\u0000';

function buildTokenizer(json: Json, rawConfig: Json, file: string, configFile: string): Tokenizer {
  if (json.model === null || typeof json.model !== 'object' || Array.isArray(json.model))
    fail('RT402', [file, `"model" must be an object, found ${describe(json.model)}`], { file, key: 'model' });
  if (json.added_tokens !== undefined && !Array.isArray(json.added_tokens))
    fail('RT402', [file, `"added_tokens" must be an array, found ${describe(json.added_tokens)}`], { file, key: 'added_tokens' });
  checkAddedTokens(json.added_tokens as unknown[] | undefined, file);
  // The library insists on every component key; HF files have them, hand-written ones may not.
  const tokJson: Json = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...json };
  tokJson.added_tokens = json.added_tokens ?? [];

  const bosToken = tokenString(rawConfig, 'bos_token', configFile);
  const eosToken = tokenString(rawConfig, 'eos_token', configFile);
  const unkToken = tokenString(rawConfig, 'unk_token', configFile);
  // The library reads a few config fields as plain strings; hand it normalised ones only.
  const libConfig: Json = { clean_up_tokenization_spaces: false };
  if (bosToken !== undefined) libConfig.bos_token = bosToken;
  if (eosToken !== undefined) libConfig.eos_token = eosToken;
  if (unkToken !== undefined) libConfig.unk_token = unkToken;

  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(tokJson, libConfig);
  } catch (e) {
    fail('RT403', [file, describeError(e)], { file }, e);
  }

  const idOf = (key: string, token: string | undefined): number | undefined => {
    if (token === undefined) return undefined;
    const id = hf.token_to_id(token);
    if (id === undefined) fail('RT404', [configFile, key, JSON.stringify(token)], { file: configFile, key });
    return id;
  };

  // What the post-processor puts around a single sequence, found by running it on a sentinel.
  let prefix: number[] = [];
  let suffix: number[] = [];
  if (hf.post_processor) {
    let out: string[];
    try {
      out = hf.post_processor([SENTINEL], null, true).tokens;
    } catch (e) {
      fail('RT403', [file, `post_processor: ${describeError(e)}`], { file }, e);
    }
    const at = out.indexOf(SENTINEL);
    const ids = (ts: string[]): number[] =>
      ts.map((t) => {
        const id = hf.token_to_id(t);
        if (id === undefined) fail('RT404', [file, 'post_processor token', JSON.stringify(t)], { file, key: 'post_processor' });
        return id;
      });
    if (at >= 0) {
      prefix = ids(out.slice(0, at));
      suffix = ids(out.slice(at + 1));
    }
  }

  const bosId = idOf('bos_token', bosToken) ?? (prefix.length > 0 ? prefix[0] : undefined);
  const eosId = idOf('eos_token', eosToken);
  // Explicit add_bos_token / add_eos_token override the post-processor, as transformers does when
  // it rebuilds the template from them.
  const addBos = rawConfig.add_bos_token;
  const addEos = rawConfig.add_eos_token;
  if (addBos === true) {
    if (bosId === undefined) fail('RT406', [configFile, 'add_bos_token', 'bos_token'], { file: configFile, key: 'add_bos_token' });
    if (prefix[0] !== bosId) prefix = [bosId, ...prefix];
  } else if (addBos === false && bosId !== undefined && prefix[0] === bosId) prefix = prefix.slice(1);
  if (addEos === true) {
    if (eosId === undefined) fail('RT406', [configFile, 'add_eos_token', 'eos_token'], { file: configFile, key: 'add_eos_token' });
    if (suffix[suffix.length - 1] !== eosId) suffix = [...suffix, eosId];
  } else if (addEos === false && eosId !== undefined && suffix[suffix.length - 1] === eosId) suffix = suffix.slice(0, -1);

  const specialIds = new Set<number>();
  for (const [id, t] of hf.get_added_tokens_decoder()) if (t.special) specialIds.add(id);
  let vocabSize = 0;
  for (const id of hf.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);
  const defaultCleanUp = rawConfig.clean_up_tokenization_spaces === true;

  /** The decoder's text for ids, no cleanup; unknown ids are skipped like the Rust library does. */
  const rawDecode = (ids: readonly number[], skipSpecial: boolean): string => {
    const kept: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0) fail('RT407', [id, i]);
      if (hf.id_to_token(id) === undefined) continue;
      if (skipSpecial && specialIds.has(id)) continue;
      kept.push(id);
    }
    if (kept.length === 0) return '';
    return hf.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  };

  const encode = (text: string, options: EncodeOptions = {}): number[] => {
    const enc = hf.encode(text, { add_special_tokens: false });
    const ids = enc.ids as (number | undefined)[];
    for (let i = 0; i < ids.length; i++)
      if (ids[i] === undefined) fail('RT408', [JSON.stringify(enc.tokens[i])]);
    const body = ids as number[];
    return options.addSpecialTokens === false ? body : [...prefix, ...body, ...suffix];
  };

  const decode = (ids: readonly number[], options: DecodeOptions = {}): string => {
    const text = rawDecode(ids, options.skipSpecialTokens ?? false);
    return (options.cleanUpTokenizationSpaces ?? defaultCleanUp) ? cleanUpTokenization(text) : text;
  };

  const decoder = (options: DecodeOptions = {}): StreamDecoder =>
    streamDecoder(
      (ids) => rawDecode(ids, false),
      options.skipSpecialTokens ? (id) => specialIds.has(id) : () => false,
      options.cleanUpTokenizationSpaces ?? defaultCleanUp,
    );

  return {
    encode,
    decode,
    decoder,
    ...(bosId === undefined ? {} : { bosId }),
    eosIds: eosId === undefined ? [] : [eosId],
    vocabSize,
    tokenToId: (token) => hf.token_to_id(token),
    idToToken: (id) => hf.id_to_token(id),
  };
}

// ---- cleanup and streaming ---------------------------------------------------------------------

/** transformers' clean_up_tokenization, rule for rule and in its order. */
export function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

/**
 * Characters that sit at a non-final position of some cleanup pattern. A cut right after any other
 * character splits no match of any rule, now or after more text arrives (the rules only delete
 * spaces, so that character survives every rule), hence clean(a + b) = clean(a) + clean(b).
 */
const CLEANUP_OPEN = new Set([' ', "'", 'n', 'v', 'r']);

/**
 * The text-generation-inference scheme: decode a short window twice, with and without the newest
 * ids, and emit the difference once it no longer ends in U+FFFD (an unfinished UTF-8 sequence,
 * from byte-level pieces or <0xNN> byte-fallback tokens). The window starts one emission back, so
 * decoders that strip a leading space (SentencePiece's Strip/Metaspace) strip it on both sides.
 */
function streamDecoder(rawDecode: (ids: readonly number[]) => string, skip: (id: number) => boolean, cleanUp: boolean): StreamDecoder {
  const ids: number[] = [];
  let prefixAt = 0; // window start: the ids of the emission before the last one
  let readAt = 0; // ids before this are emitted
  let held = ''; // raw text not yet passed through the cleanup rules

  const rawStep = (final: boolean): string => {
    if (readAt === ids.length) return '';
    const before = rawDecode(ids.slice(prefixAt, readAt));
    const after = rawDecode(ids.slice(prefixAt));
    if (after.length <= before.length || (!final && after.endsWith('\uFFFD'))) return '';
    prefixAt = readAt;
    readAt = ids.length;
    return after.slice(before.length);
  };

  const cleanStep = (raw: string, final: boolean): string => {
    if (!cleanUp) return raw;
    held += raw;
    let cut = held.length;
    if (!final) while (cut > 0 && CLEANUP_OPEN.has(held[cut - 1])) cut--;
    const out = cleanUpTokenization(held.slice(0, cut));
    held = held.slice(cut);
    return out;
  };

  return {
    push(id: number): string {
      if (!Number.isInteger(id) || id < 0) fail('RT407', [id, ids.length]);
      if (skip(id)) return '';
      ids.push(id);
      return cleanStep(rawStep(false), false);
    },
    flush(): string {
      return cleanStep(rawStep(true), true);
    },
  };
}
