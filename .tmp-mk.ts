import { assemble } from './codegen/wasm/assemble.ts';
const get = (n: string) => `(local.get $${n})`;
const add = (a: string, b: string | number) => `(i32.add ${a} ${typeof b === 'number' ? `(i32.const ${b})` : b})`;
const MR = 6, NR = 8;
// A: current style: 2 rows x 1 panel, k unrolled 2 with stores of the first step's sums into y
function mkA(): string {
  const accs = []; for (let u = 0; u < 2; u++) for (let r = 0; r < 2; r++) for (let c = 0; c < 2; c++) accs.push(`$acc${u}_${r}_${c}`);
  const step = (u: number) => {
    const l = [`(local.set $w0 (v128.load offset=${u * 32} ${get('wp')}))`, `(local.set $w1 (v128.load offset=${u * 32 + 16} ${get('wp')}))`];
    for (let r = 0; r < 2; r++) { l.push(`(local.set $xv (v128.load32_splat offset=${(u * MR + r) * 4} ${get('xp')}))`); for (let c = 0; c < 2; c++) l.push(`(local.set $acc${u}_${r}_${c} (f32x4.relaxed_madd ${get('xv')} ${get('w' + c)} ${get(`acc${u}_${r}_${c}`)}))`); }
    if (u === 0) for (let r = 0; r < 2; r++) for (let c = 0; c < 2; c++) l.push(`(v128.store offset=${c * 16 + r * 4096} ${get('yp')} ${get(`acc0_${r}_${c}`)})`);
    return l.join('\n');
  };
  return `(func $mkA (export "mkA") (param $xp i32) (param $wp i32) (param $yp i32) (param $K i32)
  (local $k i32) (local $xv v128) (local $w0 v128) (local $w1 v128) ${accs.map((a) => `(local ${a} v128)`).join(' ')}
  (block $e (loop $l (br_if $e (i32.gt_s ${add(get('k'), 2)} ${get('K')}))
  ${step(0)}
  ${step(1)}
  (local.set $xp ${add(get('xp'), 2 * MR * 4)}) (local.set $wp ${add(get('wp'), 64)}) (local.set $k ${add(get('k'), 2)}) (br $l)))
  ${[0, 1].flatMap((r) => [0, 1].map((c) => `(v128.store offset=${c * 16 + r * 4096} ${get('yp')} (f32x4.add ${get(`acc0_${r}_${c}`)} ${get(`acc1_${r}_${c}`)}))`)).join('\n')})`;
}
// B: 2 rows x 2 panels (4 vectors), no unroll, no stores in the loop
function mkB(): string {
  const accs = []; for (let r = 0; r < 2; r++) for (let c = 0; c < 4; c++) accs.push(`$acc_${r}_${c}`);
  const l = [`(local.set $w0 (v128.load ${get('wp')}))`, `(local.set $w1 (v128.load offset=16 ${get('wp')}))`, `(local.set $w2 (v128.load ${get('wq')}))`, `(local.set $w3 (v128.load offset=16 ${get('wq')}))`];
  for (let r = 0; r < 2; r++) { l.push(`(local.set $xv (v128.load32_splat offset=${r * 4} ${get('xp')}))`); for (let c = 0; c < 4; c++) l.push(`(local.set $acc_${r}_${c} (f32x4.relaxed_madd ${get('xv')} ${get('w' + c)} ${get(`acc_${r}_${c}`)}))`); }
  return `(func $mkB (export "mkB") (param $xp i32) (param $wp i32) (param $wq i32) (param $yp i32) (param $K i32)
  (local $k i32) (local $xv v128) (local $w0 v128) (local $w1 v128) (local $w2 v128) (local $w3 v128) ${accs.map((a) => `(local ${a} v128)`).join(' ')}
  (block $e (loop $l (br_if $e (i32.ge_s ${get('k')} ${get('K')}))
  ${l.join('\n')}
  (local.set $xp ${add(get('xp'), MR * 4)}) (local.set $wp ${add(get('wp'), 32)}) (local.set $wq ${add(get('wq'), 32)}) (local.set $k ${add(get('k'), 1)}) (br $l)))
  ${[0, 1].flatMap((r) => [0, 1, 2, 3].map((c) => `(v128.store offset=${c * 16 + r * 4096} ${get('yp')} ${get(`acc_${r}_${c}`)})`)).join('\n')})`;
}
const text = `(module (import "env" "memory" (memory 1 65536 shared))\n${mkA()}\n${mkB()})`;
const mod = new WebAssembly.Module(await assemble(text, 'x.wat', true) as Uint8Array<ArrayBuffer>);
const memory = new WebAssembly.Memory({ initial: 100, maximum: 65536, shared: true });
const ex = new WebAssembly.Instance(mod, { env: { memory } }).exports as any;
const K = 768, x = 0, w = 1 << 20, w2 = w + K * 32, y = 4 << 20;
for (let round = 0; round < 5; round++) {
  let t0 = performance.now();
  for (let i = 0; i < 20000; i++) { ex.mkA(x, w, y, K); ex.mkA(x, w2, y + 32, K); }
  const a = performance.now() - t0;
  t0 = performance.now();
  for (let i = 0; i < 20000; i++) ex.mkB(x, w, w2, y, K);
  const b = performance.now() - t0;
  const flops = 20000 * 2 * 2 * 16 * K;
  console.log(`A ${a.toFixed(1)} ms (${(flops / a / 1e6).toFixed(1)} GFLOP/s)  B ${b.toFixed(1)} ms (${(flops / b / 1e6).toFixed(1)} GFLOP/s)`);
}
