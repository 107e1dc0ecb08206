// How the kernel module addresses its memory (codegen/wasm/kernels.ts, dot.ts, job.ts render every
// load and store through one of these): the default 32-bit form, or memory64 (a memory declared
// `i64`, for models past 4 GiB; runtime/wasm/memory64.ts). In the memory64 form the address
// arithmetic stays in i32 and is widened at the access: x, y, the scratch and the job record lie
// below 4 GiB (runtime/wasm/memories.ts keeps them there), and a weight is read at an i32 offset
// from its base `$wb` (an i64 parameter of every function that reads weights; a packed weight is
// far below 4 GiB), so the loops are the 32-bit form's but for one extend (and add) per access.
// The micro-kernels' loop pointers as i64 locals instead measured the same (docs/PERF.md): what
// memory64 costs is the engine's access, not this arithmetic.

/** The address spelling of one form; the 32-bit one leaves the text as it always was. */
export interface Addr {
  readonly memory64: boolean;
  /** A load or store operand at an i32 address below 4 GiB (x, y, scratch, the job record). */
  low(a: string): string;
  /** The same at i32 offset `a` from the weight base $wb. */
  w(a: string): string;
  /** Appended to the parameters of a function that reads weights, and to a call of it passing the
   *  caller's $wb, or 0 (weights widened into the thread's scratch, which is low). */
  readonly param: string;
  readonly pass: string;
  readonly zero: string;
}

export const ADDR32: Addr = { memory64: false, low: (a) => a, w: (a) => a, param: '', pass: '', zero: '' };
export const ADDR64: Addr = {
  memory64: true,
  low: (a) => `(i64.extend_i32_u ${a})`,
  w: (a) => `(i64.add (local.get $wb) (i64.extend_i32_u ${a}))`,
  param: ' (param $wb i64)',
  pass: ' (local.get $wb)',
  zero: ' (i64.const 0)',
};

/** The form a target record asks for. */
export const addrOf = (t: { readonly memory64?: boolean }): Addr => (t.memory64 ? ADDR64 : ADDR32);

/** The memory64 form's declared maximum, in 64 KiB pages: 16 GiB, the most V8 gives one memory64
 *  memory (the memory the runtime makes may have a lower maximum: runtime/wasm/memory64.ts). */
export const MEMORY64_PAGES = 262144;
