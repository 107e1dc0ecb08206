// A shader's compilation errors as a reader wants them (RT503: the lines around each error, then the
// whole source), each text compiled once per device: layers of one shape share their texts.

/** The shader texts each device has compiled without error. */
const VALID = new WeakMap<GPUDevice, Set<string>>();

/** The compilation errors of a shader, with the source lines around each; null when it compiles. */
export async function shaderProblem(device: GPUDevice, code: string): Promise<string | null> {
  const valid = VALID.get(device) ?? VALID.set(device, new Set()).get(device)!;
  if (valid.has(code)) return null;
  device.pushErrorScope('validation');
  const info = await device.createShaderModule({ code }).getCompilationInfo();
  const scope = await device.popErrorScope();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (!errors.length && !scope) {
    valid.add(code);
    return null;
  }
  return describeProblem(code, errors, scope);
}

function describeProblem(code: string, errors: readonly GPUCompilationMessage[], scope: GPUError | null): string {
  const lines = code.split('\n');
  const out: string[] = [];
  for (const m of errors) {
    out.push(`line ${m.lineNum}:${m.linePos}: ${m.message}`);
    for (let i = Math.max(1, m.lineNum - 3); i <= Math.min(lines.length, m.lineNum + 2); i++) out.push(`${String(i).padStart(5)} | ${lines[i - 1]}`);
  }
  if (!errors.length && scope) out.push(scope.message);
  return `${out.join('\n')}\n--- the whole shader ---\n${lines.map((l, i) => `${String(i + 1).padStart(5)} | ${l}`).join('\n')}`;
}
