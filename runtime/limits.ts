// Every limit of the runtime (checkpoint, config and input reading) in one table; the front end's
// are in compiler/limits.ts. docs/LIMITS.md documents each; tests trip each twice in one run.


export interface RuntimeLimit {
  /** Stable name, shown in the error and in docs/LIMITS.md. */
  readonly name: string;
  readonly value: number;
  readonly counts: string;
}

export const RUNTIME_LIMITS = {
  /** The safetensors reference implementation's limit on the JSON header. */
  headerBytes: { name: 'header-bytes', value: 100_000_000, counts: 'bytes of one safetensors JSON header' },
  /** A header is three levels deep ({name: {shape: [...]}}); deeper is not a safetensors header. */
  headerDepth: { name: 'header-depth', value: 64, counts: 'nesting of objects and arrays in a safetensors header or index' },
  configBytes: { name: 'config-bytes', value: 64 * 1024 * 1024, counts: 'bytes of one config.json' },
  configDepth: { name: 'config-depth', value: 512, counts: 'nesting of objects and arrays in a config.json' },
  /** One tensor is one typed array: its bytes cannot pass what the JavaScript engine allows. */
  // Node 20's largest buffer (buffer.constants.MAX_LENGTH, 2^32 bytes); a constant rather than an
  // import of node:buffer, which a browser does not have
  tensorBytes: { name: 'tensor-bytes', value: 2 ** 32, counts: 'bytes of one tensor held in memory' },
  /** The largest Hugging Face tokenizer.json files are tens of MB (big vocabularies and merges). */
  tokenizerBytes: { name: 'tokenizer-bytes', value: 256 * 1024 * 1024, counts: 'bytes of one tokenizer.json, tokenizer_config.json or special_tokens_map.json' },
  /** Added tokens are special markers of a few to a few hundred characters; the library's work
   *  grows with their length (one of 100 MB took minutes). */
  addedTokenChars: { name: 'added-token-chars', value: 4096, counts: 'characters of one added token' },
  addedTokens: { name: 'added-tokens', value: 262_144, counts: 'entries of a tokenizer\'s added_tokens' },
  /** eval's text is one JavaScript string (V8 holds at most 2^29 - 24 characters). */
  textBytes: { name: 'text-bytes', value: 256 * 1024 * 1024, counts: 'bytes of the text `archc eval` reads (--text)' },
  /** One run's arena (and a forward pass's own state slots) is one typed array each: the same bound. */
  runBytes: { name: 'run-bytes', value: 2 ** 32, counts: 'bytes of the activations of one run, or of the state slots of one forward pass' },
  /** The default of LoadOptions.maxSequences: slots are memory, and a leak should stop early. */
  sequences: { name: 'sequences', value: 256, counts: 'live sequences of one model (LoadOptions.maxSequences)' },
  /** Each thread is a worker with its own heap; more than this many only costs memory. */
  threads: { name: 'threads', value: 64, counts: 'threads of one model (LoadOptions.threads, ARCHC_THREADS)' },
  /** Positions are stored as i32. */
  position: { name: 'position', value: 2 ** 31 - 1, counts: 'a position id' },
  /** Problems listed when a checkpoint does not match the model (the rest are counted). */
  shownProblems: { name: 'shown-problems', value: 20, counts: 'problems listed when a checkpoint does not match the model' },
} as const satisfies Record<string, RuntimeLimit>;

/** How deep objects and arrays nest in JSON `text`, scanning without recursion; stops early once
 *  past `limit` (returning a value over it). Strings are skipped, escapes included. */
export function jsonDepth(text: string, limit = Infinity): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // skip the string
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return max;
}
