// The kernel module's job record and `work`: how the threads share one matrix product (a job) in
// chunks of weight panels (codegen/wasm/kernels.ts renders it into the module; runtime/wasm/kernels.ts
// writes the record and waits on it).

import { get } from './wat.ts';
import { ADDR32, type Addr } from './addr.ts';

const add = (a: string, b: string | number) => `(i32.add ${a} ${typeof b === 'number' ? `(i32.const ${b})` : b})`;

/** Byte address of the job record, its fields (i32, byte offsets) and a closed claim word's chunk. */
export const JOB = 0;
export const JOB_FIELDS = { claim: 0, done: 4, dt: 8, x: 12, w: 16, y: 20, T: 24, K: 28, ldy: 32, p0: 36, p1: 40, chunk: 44 } as const;
/** The memory64 form's one i64 field: the weight's base address (`w` is then an offset from it). */
export const JOB_WBASE = 48;
export const CLOSED = 0xffff;

/**
 * work(s): the calling thread's share of the job at JOB, taken chunk by chunk (`s`: the thread's own
 * scratch for widened bf16 or dequantised q8/q4 panels, K·NR·4 bytes; the job's `dt` is a PRODUCT
 * code). The claim word holds
 * (job number << 16) | next chunk; a thread reads it, reads the job, and takes the chunk by a
 * compare-exchange of the claim word, so it never takes a chunk of a job other than the one it read
 * (the caller closes the claim word, chunk CLOSED, before it rewrites the job, and writes a job only
 * once every chunk of the last one is done). Each chunk's panels are added to `done` when computed;
 * only the chunk that completes the job wakes the caller, which sleeps until then (a notify per
 * chunk was wasted work: 2 threads, the q4 head 12.8 → 14.4 G weights/s in CPU time).
 * A thread that wakes late finds no chunk left and returns: the caller waits for `done`, never for
 * a thread to wake.
 */
export function work(dot: boolean, A: Addr = ADDR32, gemm8 = false): string {
  const f = (name: keyof typeof JOB_FIELDS) => `(i32.atomic.load ${A.low(`(i32.const ${JOB + JOB_FIELDS[name]})`)})`;
  const args = `${get('x')} ${get('w')} ${get('y')} ${get('T')} ${get('K')} ${get('ldy')} ${get('start')} ${get('end')}`;
  return `(func (export "work") (param $s i32)
  (local $c i32) (local $x i32) (local $w i32) (local $y i32) (local $T i32) (local $K i32) (local $ldy i32) (local $start i32) (local $end i32) (local $p1 i32) (local $total i32)${A.memory64 ? ' (local $wb i64)' : ''}
  (block $out (loop $next
    (local.set $c ${f('claim')})
    (br_if $out (i32.eq (i32.and ${get('c')} (i32.const 0xffff)) (i32.const ${CLOSED})))
    (local.set $x ${f('x')}) (local.set $w ${f('w')}) (local.set $y ${f('y')}) (local.set $T ${f('T')}) (local.set $K ${f('K')}) (local.set $ldy ${f('ldy')})${A.memory64 ? ` (local.set $wb (i64.atomic.load ${A.low(`(i32.const ${JOB + JOB_WBASE})`)}))` : ''}
    (local.set $p1 ${f('p1')})
    (local.set $total (i32.sub ${get('p1')} ${f('p0')}))
    (local.set $start (i32.add ${f('p0')} (i32.mul (i32.and ${get('c')} (i32.const 0xffff)) ${f('chunk')})))
    (br_if $out (i32.ge_s ${get('start')} ${get('p1')}))
    (br_if $next (i32.ne (i32.atomic.rmw.cmpxchg ${A.low(`(i32.const ${JOB + JOB_FIELDS.claim})`)} ${get('c')} ${add(get('c'), 1)}) ${get('c')}))
    (local.set $end (i32.add ${get('start')} ${f('chunk')}))
    (if (i32.gt_s ${get('end')} ${get('p1')}) (then (local.set $end ${get('p1')})))
    ${dispatch(f('dt'), args, dot, A, gemm8)}
    ;; the caller waits for every panel: only the chunk that completes the job wakes it
    ;; (the job's size read before: once its last panels are added the record may be rewritten)
    (if (i32.ge_s (i32.add (i32.atomic.rmw.add ${A.low(`(i32.const ${JOB + JOB_FIELDS.done})`)} (i32.sub ${get('end')} ${get('start')})) (i32.sub ${get('end')} ${get('start')})) ${get('total')})
      (then (drop (memory.atomic.notify ${A.low(`(i32.const ${JOB + JOB_FIELDS.done})`)} (i32.const 1)))))
    (br $next))))`;
}

/** The call of the product the job's `dt` names (PRODUCT; the dot_*, dot8_* and gemm8_* ones where the module has them). */
function dispatch(dt: string, args: string, dot: boolean, A: Addr, gemm8: boolean): string {
  const w = A.pass;
  const calls = [`(call $gemm_f32 ${args}${w})`, `(call $gemm_bf16 ${args} ${get('s')}${w})`, `(call $gemm_q8 ${args} ${get('s')}${w})`, `(call $gemm_q4 ${args} ${get('s')}${w})`,
    ...(dot ? [`(call $dot_q8 ${args}${w})`, `(call $dot_q4 ${args}${w})`, `(call $dot8_q8 ${args}${w})`, `(call $dot8_q4 ${args}${w})`] : []),
    ...(gemm8 ? [`(call $gemm8_q4 ${args} ${get('s')}${w})`, `(call $gemm8_q8 ${args} ${get('s')}${w})`] : [])];
  // br_table on dt: case blocks nested innermost-first, each case's call after its block
  let body = `(br_table ${calls.map((_, i) => `$dt${i}`).join(' ')} ${dt})`;
  calls.forEach((c, i) => { body = `(block $dt${i}\n${body})\n${c}\n(br $dt_done)`; });
  return `(block $dt_done\n${body})`;
}
