// Layout kernels: cutting the last dim of a row-major activation into consecutive parts.

/** x: [rows, sum(sizes)] -> one [rows, sizes[i]] array per part. */
export function split(x: Float32Array, sizes: readonly number[]): Float32Array[] {
  let width = 0;
  for (const n of sizes) width += n;
  if (width === 0 ? x.length !== 0 : x.length % width !== 0) {
    throw new RangeError(`split: ${x.length} elements are not rows of width ${width} (sizes [${sizes.join(', ')}])`);
  }
  const rows = width === 0 ? 0 : x.length / width;
  const parts: Float32Array[] = [];
  let col = 0;
  for (const n of sizes) {
    const part = new Float32Array(rows * n);
    for (let r = 0; r < rows; r++) part.set(x.subarray(r * width + col, r * width + col + n), r * n);
    parts.push(part);
    col += n;
  }
  return parts;
}
