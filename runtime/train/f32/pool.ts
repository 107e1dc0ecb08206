// Float32Arrays for the f32 engine's steps, reused step after step: every op output, cotangent and
// product result of a step is taken from the engine's pool, and all of them are free again when the
// next step starts (the engine copies out what it returns: the gradients, the logits). A step's
// arrays have the same lengths each step, so after the first the engine allocates nothing large, and
// V8 stops collecting garbage for the ~300 MB of typed arrays a tiny-bamba-a step used to leave
// (~10 full collections a step). Outside a step (tests calling a record alone) `f32` allocates.

type F32 = Float32Array;

export class StepPool {
  private readonly free = new Map<number, F32[]>();
  private used: F32[] = [];

  /** n floats, zeroed unless `zero` is false (the caller writes every element). */
  take(n: number, zero: boolean): F32 {
    const a = this.free.get(n)?.pop();
    if (!a) { const b = new Float32Array(n); this.used.push(b); return b; }
    if (zero) a.fill(0);
    this.used.push(a);
    return a;
  }

  /** Every array taken since the last release is free again. */
  release(): void {
    for (const a of this.used) {
      const list = this.free.get(a.length);
      if (list) list.push(a);
      else this.free.set(a.length, [a]);
    }
    this.used = [];
  }
}

let current: StepPool | null = null;

/** n floats from the pool of the step running now (zeroed unless `zero` is false), else new ones. */
export function f32(n: number, zero = true): F32 {
  return current ? current.take(n, zero) : new Float32Array(n);
}

/** Runs `fn` with `pool` as the step's pool, its arrays released first. */
export function inPool<T>(pool: StepPool, fn: () => T): T {
  const prev = current;
  pool.release();
  current = pool;
  try {
    return fn();
  } finally {
    current = prev;
  }
}
