// codegen/literal.ts: the data a package's generated files hold, as TypeScript text. Each form is
// evaluated back and compared with what went in.

import { describe, expect, it } from 'vitest';
import { jsonLiteral, literal } from '../../codegen/literal.ts';

const evaluate = (text: string): unknown => new Function(`return (${text});`)();

describe('literals of plain data', () => {
  const data = {
    format: 'archc-wgsl/4', n: [1, -2.5, 1e-30, 3.4028234663852886e38], nested: [{ a: 'x"y\\z\n', b: null }, { c: [true, false] }],
    separators: 'line\u2028paragraph\u2029end', unicode: 'ünïcödé ✓', empty: {}, list: [],
  };

  it('jsonLiteral parses back to the same data, as JSON.parse of one string', () => {
    const text = jsonLiteral(data);
    expect(text.startsWith('JSON.parse("')).toBe(true);
    expect(evaluate(text)).toEqual(data);
    // U+2028 and U+2029 escaped, so the file reads as lines everywhere
    expect(text).not.toMatch(/[\u2028\u2029]/);
  });

  it('jsonLiteral falls back to an object literal where JSON cannot hold a number', () => {
    for (const odd of [NaN, Infinity, -Infinity]) {
      const v = { ...data, deep: [{ x: odd }] };
      const text = jsonLiteral(v);
      expect(text.startsWith('JSON.parse(')).toBe(false);
      expect(text).toBe(literal(v));
      expect(evaluate(text)).toEqual(v);
    }
  });
});
