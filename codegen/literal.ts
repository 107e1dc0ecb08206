// Plain data as TypeScript source text, for the files a package generates.

/** A TypeScript literal for plain data (JSON plus Infinity and NaN). */
export function literal(v: unknown, indent = ''): string {
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
  if (v === null || typeof v !== 'object') return str(v);
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x !== 'object' || x === null)) return `[${v.map((x) => literal(x)).join(', ')}]`;
    const inner = indent + '  ';
    return `[\n${v.map((x) => inner + literal(x, inner)).join(',\n')},\n${indent}]`;
  }
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  if (entries.length === 0) return '{}';
  const inner = indent + '  ';
  const key = (k: string) => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : str(k));
  const flat = entries.every(([, x]) => typeof x !== 'object' || x === null || (Array.isArray(x) && x.every((y) => typeof y !== 'object')));
  if (flat && entries.length <= 8) return `{ ${entries.map(([k, x]) => `${key(k)}: ${literal(x)}`).join(', ')} }`;
  return `{\n${entries.map(([k, x]) => `${inner}${key(k)}: ${literal(x, inner)}`).join(',\n')},\n${indent}}`;
}

/** JSON text, with U+2028 and U+2029 escaped too: legal in a string literal since ES2019, but they
 *  end the line for older parsers and for every tool that reads the file as lines. */
function str(v: unknown): string {
  return (JSON.stringify(v) ?? 'undefined').replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}
