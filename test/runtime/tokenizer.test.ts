// The tokenizer wrapper on two small trained fixtures: byte-level BPE laid out like Bamba's (Llama 3)
// and SentencePiece-style byte-fallback BPE laid out like Llama 2 (see make-fixtures.ts).

import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { RuntimeError } from '../../runtime/errors.ts';
import { cleanUpTokenization, loadTokenizer, tokenizerFromJson, type Tokenizer } from '../../runtime/tokenizer.ts';
import { createRng } from '../../runtime/rng.ts';
import { expectRuntimeError } from '../helpers/errors.ts';

const FIX = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/tokenizer');
const BL_DIR = FIX;
const BF_DIR = join(FIX, 'byte-fallback');
const blJson = readFileSync(join(BL_DIR, 'tokenizer.json'), 'utf8');
const blConfig = readFileSync(join(BL_DIR, 'tokenizer_config.json'), 'utf8');
const bfJson = readFileSync(join(BF_DIR, 'tokenizer.json'), 'utf8');
const bfConfig = readFileSync(join(BF_DIR, 'tokenizer_config.json'), 'utf8');

const bl = tokenizerFromJson(blJson, blConfig);
const bf = tokenizerFromJson(bfJson, bfConfig);

const TEXTS = [
  'The quick brown fox jumps over the lazy dog.',
  'the theatre, then the three of them',
  'café naïve crème brûlée in Zürich',
  '日本語 and 中文 and Ελληνικά and русский',
  'Emoji: 😀🙃 🚀🎉 🌍 🙂🙃',
  '  leading spaces, tabs\tand\nnewlines\n\n  ',
  "Don't stop; it's 2024 — we've 12345 reasons!",
  '',
];

function streamAll(t: Tokenizer, ids: readonly number[], opts?: Parameters<Tokenizer['decoder']>[0]): { text: string; pieces: string[] } {
  const d = t.decoder(opts);
  const pieces = ids.map((id) => d.push(id));
  pieces.push(d.flush());
  return { text: pieces.join(''), pieces };
}

// ---- an independent byte-level BPE, written from the GPT-2 algorithm ---------------------------

/** GPT-2's byte -> printable character table. */
function byteToChar(): string[] {
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = printable ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  }
  return out;
}

/** Llama 3's split pattern, rewritten by hand for JS (the (?i:…) group spelled out). */
const SPLIT = /'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

function naiveByteLevelEncode(text: string, json: { model: { vocab: Record<string, number>; merges: [string, string][] } }): number[] {
  const table = byteToChar();
  const rank = new Map(json.model.merges.map(([a, b], i) => [`${a} ${b}`, i]));
  const ids: number[] = [];
  for (const piece of text.match(SPLIT) ?? []) {
    const word = [...new TextEncoder().encode(piece)].map((b) => table[b]).join('');
    if (word in json.model.vocab) {
      ids.push(json.model.vocab[word]); // ignore_merges: a whole word in the vocabulary is one token
      continue;
    }
    let syms = [...word];
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = rank.get(`${syms[i]} ${syms[i + 1]}`);
        if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
      }
      if (best < 0) break;
      const [a, b] = [syms[best], syms[best + 1]];
      const next: string[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(syms[i]);
      }
      syms = next;
    }
    for (const s of syms) ids.push(json.model.vocab[s]);
  }
  return ids;
}

// ---- loading -----------------------------------------------------------------------------------

describe('loadTokenizer', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'archc-tok-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('reads tokenizer.json and tokenizer_config.json', async () => {
    const t = (await loadTokenizer(BL_DIR))!;
    expect(t).not.toBeNull();
    expect(t.bosId).toBe(t.tokenToId('<|begin_of_text|>'));
    expect(t.eosIds).toEqual([t.tokenToId('<|end_of_text|>')]);
    expect(t.encode('The quick brown fox')).toEqual(bl.encode('The quick brown fox'));
    const json = JSON.parse(blJson);
    expect(t.vocabSize).toBe(Object.keys(json.model.vocab).length + json.added_tokens.length);
    expect(t.idToToken(t.bosId!)).toBe('<|begin_of_text|>');
  });

  it('returns null without tokenizer.json', async () => {
    expect(await loadTokenizer(tmp)).toBeNull();
    expect(await loadTokenizer(join(tmp, 'does-not-exist'))).toBeNull();
  });

  it('works without tokenizer_config.json, taking bos/eos from special_tokens_map.json', async () => {
    const dir = mkdtempSync(join(tmp, 'stm-'));
    writeFileSync(join(dir, 'tokenizer.json'), blJson);
    const t0 = (await loadTokenizer(dir))!;
    // No config: BOS is what the post-processor prepends; no EOS is known.
    expect(t0.bosId).toBe(bl.bosId);
    expect(t0.eosIds).toEqual([]);
    writeFileSync(join(dir, 'special_tokens_map.json'), JSON.stringify({ bos_token: { content: '<|begin_of_text|>' }, eos_token: { content: '<|eot_id|>' } }));
    const t1 = (await loadTokenizer(dir))!;
    expect(t1.eosIds).toEqual([t1.tokenToId('<|eot_id|>')]);
  });

  it('names the file of a malformed tokenizer.json', async () => {
    const dir = mkdtempSync(join(tmp, 'bad-'));
    const path = join(dir, 'tokenizer.json');
    writeFileSync(path, '{"model": {"type": "BPE", ');
    const err = await loadTokenizer(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe('RT401');
    expect((err as RuntimeError).file).toBe(path);
    expect((err as Error).message).toContain(path);
  });

  it('names the file of a malformed tokenizer_config.json', async () => {
    const dir = mkdtempSync(join(tmp, 'badcfg-'));
    writeFileSync(join(dir, 'tokenizer.json'), blJson);
    writeFileSync(join(dir, 'tokenizer_config.json'), '[1, 2]');
    const err = await loadTokenizer(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe('RT402');
    expect((err as RuntimeError).message).toContain(join(dir, 'tokenizer_config.json'));
  });
});

describe('malformed input', () => {
  const base = JSON.parse(blJson);
  const rows: [string, () => unknown, string, string][] = [
    ['invalid JSON', () => tokenizerFromJson('{oops'), 'RT401', 'tokenizer.json: invalid JSON'],
    ['not an object', () => tokenizerFromJson('[]'), 'RT402', 'tokenizer.json: must be a JSON object, found an array'],
    ['no model', () => tokenizerFromJson('{"added_tokens": []}'), 'RT402', '"model" must be an object, found undefined'],
    ['added_tokens not a list', () => tokenizerFromJson(JSON.stringify({ ...base, added_tokens: {} })), 'RT402', '"added_tokens" must be an array'],
    ['unknown model type', () => tokenizerFromJson(JSON.stringify({ ...base, model: { type: 'Nope' } })), 'RT403', 'tokenizer.json: rejected by the tokenizer library'],
    ['unknown decoder', () => tokenizerFromJson(JSON.stringify({ ...base, decoder: { type: 'Nope' } })), 'RT403', 'Unknown Decoder type'],
    ['config not JSON', () => tokenizerFromJson(blJson, '{'), 'RT401', 'tokenizer_config.json: invalid JSON'],
    ['bos not in vocab', () => tokenizerFromJson(blJson, '{"bos_token": "<nope>"}'), 'RT404', 'tokenizer_config.json: bos_token "<nope>" is not in the vocabulary'],
    ['eos of a bad type', () => tokenizerFromJson(blJson, '{"eos_token": 7}'), 'RT405', 'eos_token must be a token string'],
    ['add_eos_token without eos', () => tokenizerFromJson(blJson, '{"add_eos_token": true}'), 'RT406', 'add_eos_token is true but no eos_token is set'],
    ['negative id', () => bl.decode([5, -1]), 'RT407', 'token id -1 at position 1'],
    ['fractional id', () => bl.decoder().push(1.5), 'RT407', 'token id 1.5 at position 0'],
  ];
  it.each(rows)('%s -> %s', (_name, f, code, text) => {
    expectRuntimeError(f, code, text);
  });
});

// ---- byte-level BPE (Bamba / Llama 3 layout) -------------------------------------------------

describe('byte-level BPE', () => {
  const json = JSON.parse(blJson);

  it('encodes like an independent BPE and prepends BOS', () => {
    for (const text of TEXTS) {
      const body = naiveByteLevelEncode(text, json);
      expect(bl.encode(text, { addSpecialTokens: false }), text).toEqual(body);
      expect(bl.encode(text), text).toEqual([bl.bosId, ...body]);
    }
  });

  it('uses the trained merges', () => {
    const the = bl.tokenToId('Ġthe')!;
    expect(the).toBeGreaterThanOrEqual(256);
    expect(bl.encode(' the', { addSpecialTokens: false })).toEqual([the]);
    expect(bl.encode('café', { addSpecialTokens: false })).toEqual([bl.tokenToId('c'), bl.tokenToId('afÃ©')]);
  });

  it('round-trips text through encode and decode', () => {
    for (const text of TEXTS) {
      const ids = bl.encode(text, { addSpecialTokens: false });
      expect(bl.decode(ids, { cleanUpTokenizationSpaces: false })).toBe(text);
      expect(bl.decode(bl.encode(text), { skipSpecialTokens: true, cleanUpTokenizationSpaces: false })).toBe(text);
    }
  });

  it('keeps special tokens whole and decodes or skips them', () => {
    const eot = bl.tokenToId('<|eot_id|>')!;
    const eos = bl.eosIds[0];
    const ids = bl.encode('Hi<|eot_id|>there<|end_of_text|>', { addSpecialTokens: false });
    expect(ids).toContain(eot);
    expect(ids[ids.length - 1]).toBe(eos);
    expect(ids.filter((i) => i === eot || i === eos)).toHaveLength(2);
    expect(bl.decode([bl.bosId!, ...ids])).toBe('<|begin_of_text|>Hi<|eot_id|>there<|end_of_text|>');
    expect(bl.decode([bl.bosId!, ...ids], { skipSpecialTokens: true })).toBe('Hithere');
  });

  it('applies transformers clean_up_tokenization when the config asks for it', () => {
    const ids = bl.encode("Hello , world . I do n't know !", { addSpecialTokens: false });
    expect(bl.decode(ids)).toBe("Hello, world. I don't know!");
    expect(bl.decode(ids, { cleanUpTokenizationSpaces: false })).toBe("Hello , world . I do n't know !");
    expect(cleanUpTokenization("a ' b 's 're 've 'm ? ,")).toBe("a'b's're've'm?,");
  });

  it('skips ids the tokenizer does not know and decodes nothing to ""', () => {
    const ids = bl.encode('fox', { addSpecialTokens: false });
    expect(bl.decode([...ids, bl.vocabSize + 5])).toBe('fox');
    expect(bl.decode([])).toBe('');
  });

  it('honours explicit add_bos_token / add_eos_token over the post-processor', () => {
    const cfg = JSON.parse(blConfig);
    const noBos = tokenizerFromJson(blJson, JSON.stringify({ ...cfg, add_bos_token: false }));
    expect(noBos.encode('fox')).toEqual(bl.encode('fox', { addSpecialTokens: false }));
    const withEos = tokenizerFromJson(blJson, JSON.stringify({ ...cfg, add_eos_token: true }));
    expect(withEos.encode('fox')).toEqual([bl.bosId, ...bl.encode('fox', { addSpecialTokens: false }), bl.eosIds[0]]);
  });
});

// ---- streaming ---------------------------------------------------------------------------------

describe('streaming decoder', () => {
  it.each([
    ['byte-level', bl],
    ['byte-fallback', bf],
  ] as const)('%s: concatenated pieces equal decode(all), with no partial characters', (_name, t) => {
    for (const text of TEXTS) {
      const ids = t.encode(text);
      for (const skipSpecialTokens of [false, true]) {
        const { text: streamed, pieces } = streamAll(t, ids, { skipSpecialTokens });
        expect(streamed, text).toBe(t.decode(ids, { skipSpecialTokens }));
        for (const p of pieces) expect(p).not.toContain('\uFFFD');
      }
    }
  });

  it('holds a character split across tokens until it is complete', () => {
    // 🙃 is F0 9F 99 83; the fixture has merges for some of its bytes but no token for all four.
    const ids = bl.encode('🙃', { addSpecialTokens: false });
    expect(ids.length).toBeGreaterThan(1);
    const d = bl.decoder();
    for (const id of ids.slice(0, -1)) expect(d.push(id)).toBe('');
    expect(d.push(ids[ids.length - 1])).toBe('🙃');
    expect(d.flush()).toBe('');
  });

  it('holds byte-fallback bytes until they form a character', () => {
    const ids = bf.encode('é😀', { addSpecialTokens: false });
    const bytes = (s: string) => [...new TextEncoder().encode(s)].map((b) => bf.tokenToId(`<0x${b.toString(16).toUpperCase()}>`));
    expect(ids).toEqual([bf.tokenToId('▁'), ...bytes('é'), ...bytes('😀')]);
    const pieces = streamAll(bf, ids).pieces;
    expect(pieces).toEqual(['', '', 'é', '', '', '', '😀', '']);
    expect(bf.decode(ids)).toBe('é😀'); // the decoder's Strip drops the leading space of ▁
  });

  it('matches decode(all) on random id sequences, invalid UTF-8 included', () => {
    const rng = createRng(7);
    for (const t of [bl, bf]) {
      for (let trial = 0; trial < 200; trial++) {
        const n = 1 + (rng.nextU32() % 24);
        const ids = Array.from({ length: n }, () => rng.nextU32() % t.vocabSize);
        expect(streamAll(t, ids).text, JSON.stringify(ids)).toBe(t.decode(ids));
      }
    }
  });

  it('matches decode(all) when cleanup rules straddle pieces', () => {
    const singles = ['Ġ', "'", 'n', 't', ',', '.', '?', '!', 's', 'm', 'e', 'v', 'r', 'a'].map((s) => bl.tokenToId(s));
    expect(singles.every((id) => id !== undefined)).toBe(true);
    const merged = ['ve', 're', 'Ġn', 'Ġs', 'Ġm'].map((s) => bl.tokenToId(s)).filter((id) => id !== undefined);
    expect(merged.length).toBeGreaterThan(2);
    const alphabet = [...singles, ...merged];
    const rng = createRng(11);
    for (let trial = 0; trial < 2000; trial++) {
      const ids = Array.from({ length: 1 + (rng.nextU32() % 16) }, () => alphabet[rng.nextU32() % alphabet.length]!);
      expect(streamAll(bl, ids).text, bl.decode(ids, { cleanUpTokenizationSpaces: false })).toBe(bl.decode(ids));
    }
  });

  it('emits text as soon as it is settled', () => {
    // (With cleanup on, text ending in ' ', "'", n, v or r waits for the next piece.)
    const ids = bl.encode('The quick brown fox', { addSpecialTokens: false });
    const pieces = streamAll(bl, ids, { cleanUpTokenizationSpaces: false }).pieces;
    expect(pieces.slice(0, -1).every((p) => p.length > 0)).toBe(true);
  });
});

// ---- byte-fallback BPE (Llama 2 layout) --------------------------------------------------------

describe('byte-fallback BPE', () => {
  it('reads bos/eos written as objects and add_bos_token', async () => {
    const t = (await loadTokenizer(BF_DIR))!;
    expect(t.bosId).toBe(1);
    expect(t.eosIds).toEqual([2]);
    expect(t.encode('fox')[0]).toBe(1);
  });

  it('round-trips text, falling back to bytes outside the alphabet', () => {
    for (const text of TEXTS) {
      const ids = bf.encode(text, { addSpecialTokens: false });
      expect(bf.decode(ids), text).toBe(text);
    }
    const ids = bf.encode('日', { addSpecialTokens: false });
    expect(ids.slice(1).map((i) => bf.idToToken(i))).toEqual(['<0xE6>', '<0x97>', '<0xA5>']);
  });

  it('prepends BOS and decodes it unless skipped', () => {
    const ids = bf.encode('The fox');
    expect(ids[0]).toBe(bf.bosId);
    expect(bf.decode(ids)).toBe('<s> The fox');
    expect(bf.decode(ids, { skipSpecialTokens: true })).toBe('The fox');
  });
});
