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

/**
 * Plain data as an expression that parses it from JSON text at run time (`JSON.parse("…")`), where
 * JSON holds it whole (no NaN or infinity; else `literal`). For the large tables a package carries
 * (its WGSL: tens of MB at Bamba-9B's shapes): TypeScript checks a string in no time where it
 * relates every property of an object literal to its declared type (most of a 9B build's
 * TypeScript step), and engines parse JSON faster than the same object as code.
 */
export function jsonLiteral(v: unknown): string {
  let whole = true;
  const text = JSON.stringify(v, (_k, x) => {
    if (typeof x === 'number' && !Number.isFinite(x)) whole = false;
    return x;
  });
  return whole ? `JSON.parse(${str(text)})` : literal(v);
}

/** JSON text, with U+2028 and U+2029 escaped too: legal in a string literal since ES2019, but they
 *  end the line for older parsers and for every tool that reads the file as lines. */
function str(v: unknown): string {
  return (JSON.stringify(v) ?? 'undefined').replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}
