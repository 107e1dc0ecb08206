// llama.cpp's logits against archc's on the same weights, before any timing (bench/llama/compare.ts
// is only meaningful once this passes): one prompt through
//   * the reference: archc's CPU engine (`archc forward --backend cpu`) on the checkpoint as stored;
//   * llama.cpp on the same weights (--ref f32: an F32 GGUF, the default; bf16: a BF16 GGUF, for a
//     checkpoint too large for f32, e.g. Bamba-9B), the prompt in one call (prefill) and one token
//     a call (decode): max |difference| relative to the reference's largest |logit|, which must
//     stay within --tol (default 1e-3 for f32; give a looser one for bf16, whose products round
//     activations to bf16 in llama.cpp). Exits 1 when it does not.
//   * a sanity check of the quantised formats (different formats, so no tolerance on the logits):
//     archc q8/q4 (CPU engine, quantised at load) and llama.cpp Q8_0/Q4_0 (`llama-quantize --pure`
//     from the BF16 GGUF: every product and the embedding quantised, as archc does), each against
//     the reference: top-1 agreement and mean KL(reference || it), and archc's against llama.cpp's.
//     Exits 1 when llama.cpp's KL from the reference exceeds 10× archc's at the same width plus
//     0.01 nats (a broken conversion or a misread format, not a quantisation difference).
// Prints a table and writes bench/results/llama-check-<checkpoint>.json.
//
// Run (after bench/llama/build.sh):
//   npx tsx bench/llama/check.ts <checkpoint dir> [--tokens 100] [--text <file>] [--ref f32|bf16] [--tol 1e-3] [--no-quant]
// --text: the prompt is the start of that text, tokenised with the checkpoint's tokenizer.json;
// otherwise --tokens ids drawn from a fixed-seed generator over the vocabulary.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRng } from '../../runtime/rng.ts';
import { loadTokenizer } from '../../runtime/tokenizer.ts';
import { agreement, arg, archcLogits, ckptName, die, gguf, llamaLogits, numArg, relDiff, ROOT, table } from './common.ts';

const ckpt = process.argv[2];
if (!ckpt || ckpt.startsWith('--')) die('usage: npx tsx bench/llama/check.ts <checkpoint dir> [--tokens 100] [--text <file>] [--ref f32|bf16] [--tol 1e-3] [--no-quant]');
const TOKENS = numArg('--tokens', 100);
const REF = arg('--ref') ?? 'f32';
if (REF !== 'f32' && REF !== 'bf16') die(`--ref: f32 or bf16, got ${REF}`);
const TOL = numArg('--tol', 1e-3);
const QUANT = !process.argv.includes('--no-quant');
const TEXT = arg('--text');

const config = JSON.parse(readFileSync(join(ckpt, 'config.json'), 'utf8').replace(/\bInfinity\b/g, '1e999')) as { vocab_size: number };
const V = config.vocab_size;
let ids: number[];
if (TEXT) {
  const tok = (await loadTokenizer(ckpt)) ?? die(`${ckpt}: --text needs a tokenizer.json`);
  ids = tok.encode(readFileSync(TEXT, 'utf8').slice(0, 64 * TOKENS), { addSpecialTokens: false }).slice(0, TOKENS);
  if (ids.length < TOKENS) die(`${TEXT}: only ${ids.length} tokens`);
} else {
  const rng = createRng(7);
  ids = Array.from({ length: TOKENS }, () => Math.floor(rng.next() * V));
}

const tmp = mkdtempSync(join(tmpdir(), 'archc-llama-check-'));
try {
  const t0 = performance.now();
  const ref = archcLogits(ckpt, ids, join(tmp, 'ref.npy'));
  const model = gguf(ckpt, REF === 'f32' ? 'F32' : 'BF16');
  const prefill = relDiff(ref, llamaLogits(model, ids, join(tmp, 'llama.npy')));
  const decode = relDiff(ref, llamaLogits(model, ids, join(tmp, 'llama-step.npy'), true));
  const e = (x: number) => x.toExponential(2);
  const rows = [['llama.cpp ' + REF.toUpperCase() + ' vs archc CPU reference', 'max |diff|', 'logit scale', 'max rel', 'RMS rel', `within ${e(TOL)}`]];
  const ok = (d: typeof prefill) => d.maxRel <= TOL;
  rows.push(['prefill (all tokens in one call)', e(prefill.maxAbs), prefill.scale.toFixed(2), e(prefill.maxRel), e(prefill.rmsRel), ok(prefill) ? 'yes' : 'NO']);
  rows.push(['decode (one token a call)', e(decode.maxAbs), decode.scale.toFixed(2), e(decode.maxRel), e(decode.rmsRel), ok(decode) ? 'yes' : 'NO']);
  console.log(`\n${ckptName(ckpt)}: ${ids.length} tokens (${TEXT ? `from ${TEXT}` : 'random ids'}), vocab ${V}\n${table(rows)}`);

  const quant: Record<string, object> = {};
  let quantOk = true;
  if (QUANT) {
    const qrows = [['format', 'top-1 vs ref', 'KL(ref‖it) nats', 'archc vs llama.cpp top-1', 'KL(archc‖llama.cpp)']];
    for (const [a, l] of [['q8', 'Q8_0'], ['q4', 'Q4_0']] as const) {
      const ax = archcLogits(ckpt, ids, join(tmp, `${a}.npy`), { quantize: a });
      const lx = llamaLogits(gguf(ckpt, l), ids, join(tmp, `${l}.npy`));
      const ar = agreement(ref, ax), lr = agreement(ref, lx), al = agreement(ax, lx);
      quant[a] = { archc: ar, llama: lr, archcVsLlama: al };
      const sane = lr.kl <= 10 * ar.kl + 0.01;
      quantOk &&= sane;
      qrows.push([`archc ${a}`, `${(100 * ar.top1).toFixed(1)} %`, ar.kl.toExponential(2), '', '']);
      qrows.push([`llama.cpp ${l}${sane ? '' : ' (FAILS the sanity bound)'}`, `${(100 * lr.top1).toFixed(1)} %`, lr.kl.toExponential(2), `${(100 * al.top1).toFixed(1)} %`, al.kl.toExponential(2)]);
    }
    console.log(`\nQuantised (a sanity check: different formats; ref = archc CPU on the stored weights)\n${table(qrows)}`);
  }
  const pass = ok(prefill) && ok(decode) && quantOk;
  console.log(`\n${pass ? 'PASS' : 'FAIL'} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  const out = join('bench', 'results', `llama-check-${ckptName(ckpt)}.json`);
  writeFileSync(join(ROOT, out), JSON.stringify({ bench: 'llama check', date: new Date().toISOString(), checkpoint: resolve(ckpt), tokens: ids.length,
    prompt: TEXT ? `text ${TEXT}` : 'random ids (seed 7)', ref: REF, tol: TOL, prefill, decode, quant, pass }, null, 2) + '\n');
  console.log(`wrote ${out}`);
  if (!pass) process.exitCode = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
