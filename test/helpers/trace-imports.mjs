// A Node --import hook for tests: appends every bare (package) specifier that gets resolved to the
// file named by ARCHC_TRACE_IMPORTS, one a line, so a test can see which packages a command loads.

import { register } from 'node:module';

register(new URL('data:text/javascript,' + encodeURIComponent(`
import { appendFileSync } from 'node:fs';
const out = ${JSON.stringify(process.env.ARCHC_TRACE_IMPORTS ?? '')};
export async function resolve(specifier, context, next) {
  if (out && !/^(node:|file:|data:|\\.|\\/)/.test(specifier)) appendFileSync(out, specifier + '\\n');
  return next(specifier, context);
}
`)));
