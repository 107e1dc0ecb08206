// Every limit of the front end in one table. A limit keeps a hostile or mistyped program (a loop
// bound of 1e9, a block that calls itself twice per level) from hanging the compiler or exhausting
// its memory: each is checked as the work grows, and crossing one is error AC500 with the limit's
// name, the value that crossed it, and the limit. Runtime limits live in runtime/limits.ts.
// docs/LIMITS.md documents each; test/compiler/limits.test.ts trips each twice in one run.

export interface Limit {
  /** Stable name, shown in AC500 and in docs/LIMITS.md. */
  readonly name: string;
  readonly value: number;
  /** What is counted. */
  readonly counts: string;
}

function limit(name: string, value: number, counts: string): Limit {
  return { name, value, counts };
}

export const LIMITS = {
  /** Bytes of one .arch file. */
  sourceBytes: limit('source-bytes', 1024 * 1024, 'bytes of one .arch file'),
  /** Tokens of one .arch file: parsing costs tens of microseconds a token. */
  sourceTokens: limit('source-tokens', 100_000, 'tokens of one .arch file (Bamba-9B\'s has about 1,500)'),
  /** Depth of expression evaluation, counting param defaults evaluated on the way. */
  exprDepth: limit('expr-depth', 200, 'nested expressions being evaluated at once (a param default that reads another param nests one deeper)'),
  /** Block applications inside one another. */
  blockDepth: limit('block-depth', 64, 'block applications inside one another'),
  /** Loop iterations over the whole model. */
  loopIterations: limit('loop-iterations', 1_000_000, 'loop iterations over the whole model'),
  /** Ops (graph nodes): what bounds the back end's time (a 255-layer GPT-2, 3,830 ops, lowers in about 0.3 s
   *  and goes through every renderer in 4-7 s). */
  ops: limit('ops', 4_096, 'ops the model emits (Bamba-9B has 817)'),
  /** Expressions evaluated in all: bounds the work of recursion that emits no ops. */
  evalSteps: limit('eval-steps', 2_000_000, 'expressions evaluated over the whole compile'),
  /** Items of one compile-time list. */
  listLength: limit('list-length', 1_000_000, 'items of one compile-time list'),
  /** Lists inside lists. */
  listDepth: limit('list-depth', 32, 'lists nested inside one compile-time list'),
  /** Characters of one compile-time string. */
  stringLength: limit('string-length', 1_000_000, 'characters of one compile-time string'),
  /** Elements of one weight. */
  weightElements: limit('weight-elements', 2 ** 40, 'elements of one weight (the product of its dimensions)'),
  /** Diagnostics collected before instantiation stops. */
  diagnostics: limit('diagnostics', 200, 'diagnostics collected while instantiating before the compiler stops'),
  /** Diagnostics the command line prints (the rest are counted). */
  shownDiagnostics: limit('shown-diagnostics', 50, 'diagnostics printed by the command line; the rest are counted'),
  /** Characters of a source line shown in a code frame. */
  frameWidth: limit('frame-width', 160, 'characters of a source line shown in a code frame (cut around the column)'),
} as const satisfies Record<string, Limit>;

/** `1234567` -> `1,234,567` */
export function formatCount(n: number): string {
  return Number.isSafeInteger(n) ? n.toLocaleString('en-US') : String(n);
}
