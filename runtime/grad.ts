// Gradients as one safetensors file in memory (f32, the checkpoint's names and shapes), for the
// CLI to write whole or not at all (cli/fsutil.ts writeOutputFile). The layout is the reader's
// (safetensors.ts): an 8-byte little-endian header length, the JSON header padded with spaces to
// a multiple of 8, then each tensor's bytes in order.

export interface GradTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

export function gradientsFile(tensors: readonly GradTensor[], metadata: Readonly<Record<string, string>> = { format: 'pt' }): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const end = offset + 4 * t.data.length;
    Object.defineProperty(header, t.name, { value: { dtype: 'F32', shape: t.shape, data_offsets: [offset, end] }, enumerable: true });
    offset = end;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (new TextEncoder().encode(json).length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const t of tensors) {
    new Uint8Array(out.buffer, at, 4 * t.data.length).set(new Uint8Array(Float32Array.from(t.data).buffer));
    at += 4 * t.data.length;
  }
  return out;
}
