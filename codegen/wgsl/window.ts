// WGSL sliding-window attention (`attention(..., window: W)`, prefill and one-token alike): the
// windowed attention first (earlier positions from the sequence's ring, the batch's own from k and
// v), then the batch's last rows written to the ring — in that order, since a row written to the
// ring replaces a position that earlier rows of the batch still see. Templates: templates-own.ts.

import type { Entry, Kernel } from '../../runtime/program.ts';
import type { Pass } from '../../runtime/webgpu/shaders.ts';
import { pass } from './passes.ts';
import { type Dtypes, Shader, lit } from './shader.ts';

/** The two passes of windowed attention kernel `c.k` (family attention or attention_decode). */
export function windowedAttention(c: { readonly k: Kernel; readonly entry: Entry; readonly dtypes: Dtypes; readonly header: number; readonly wg: number }, window: number): Pass[] {
  const { k } = c;
  const { H, KV, Dh } = k.sizes as { H: number; KV: number; Dh: number };
  const attend = new Shader(k, c.entry, c.dtypes);
  const attendState = attend.state();
  for (const n of ['q', 'k', 'v']) attend.operand(n);
  attend.output(k.outputs.y!);
  const a = attend.render('ATTENTION_WINDOW', 'windowed attention', c.header,
    { wg: c.wg, H, Dh, group: H / KV, row: KV * Dh, scale: lit(k.attrs.scale as number), state: attendState, window });
  const ring = new Shader(k, c.entry, c.dtypes);
  const ringState = ring.state();
  ring.operand('k');
  ring.operand('v');
  const r = ring.render('KV_RING', 'kv ring', c.header, { wg: c.wg, row: KV * Dh, state: ringState, window });
  return [pass('windowed attention', attend, a, { rows: 'T', times: H, per: c.wg }), pass('kv ring', ring, r, { rows: 'T', times: KV * Dh, per: c.wg })];
}
