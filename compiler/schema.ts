// The JSON schema of graph.json (the serialised graph IR), checked with ajv.

import Ajv from 'ajv';
import { InternalError } from '../dsl/diagnostics.ts';
import type { Graph } from './ir.ts';
import { BACKWARD_FAMILY_NAMES, FAMILY_NAMES } from '../runtime/families.ts';

const dim = { anyOf: [{ type: 'integer', minimum: 0 }, { const: 'T' }] };
const attr = { anyOf: [{ type: 'number' }, { type: 'boolean' }, { type: 'string' }, { type: 'array' }, { type: 'null' }] };
const loc = {
  type: 'object', additionalProperties: false, required: ['file', 'line', 'col'],
  properties: { file: { type: 'string' }, line: { type: 'integer' }, col: { type: 'integer' } },
};
/** What the graph and the program say of each carried state. */
const stateFields = {
  name: { type: 'string' },
  kind: { enum: ['kv', 'conv', 'ssm'] },
  per: { enum: ['token', 'sequence'] },
  window: { type: 'integer', minimum: 1 },
  shape: { type: 'array', items: { type: 'integer', minimum: 0 } },
} as const;
const named = {
  type: 'object', additionalProperties: false, required: ['name', 'value'],
  properties: { name: { type: 'string' }, value: { type: 'integer', minimum: 0 } },
};

export const GRAPH_SCHEMA = {
  $id: 'https://archc.dev/schemas/graph-1.json',
  type: 'object',
  additionalProperties: false,
  required: ['format', 'model', 'params', 'inputs', 'outputs', 'values', 'nodes', 'weights', 'state'],
  properties: {
    format: { const: 'archc-graph/1' },
    model: { type: 'string' },
    params: { type: 'object' },
    inputs: { type: 'array', items: named },
    outputs: { type: 'array', items: named },
    values: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['id', 'type', 'source'],
        properties: {
          id: { type: 'integer', minimum: 0 },
          type: {
            type: 'object', additionalProperties: false, required: ['shape', 'dtype'],
            properties: { shape: { type: 'array', items: dim }, dtype: { enum: ['f32', 'f16', 'bf16', 'i32'] } },
          },
          source: {
            oneOf: [
              { type: 'object', additionalProperties: false, required: ['kind', 'name'], properties: { kind: { enum: ['input', 'weight'] }, name: { type: 'string' } } },
              {
                type: 'object', additionalProperties: false, required: ['kind', 'node', 'index'],
                properties: { kind: { const: 'node' }, node: { type: 'integer', minimum: 0 }, index: { type: 'integer', minimum: 0 } },
              },
            ],
          },
        },
      },
    },
    nodes: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['id', 'op', 'inputs', 'outputs', 'attrs', 'scope'],
        properties: {
          id: { type: 'integer', minimum: 0 },
          op: { type: 'string' },
          inputs: { type: 'array', items: { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'null' }] } },
          outputs: { type: 'array', items: { type: 'integer', minimum: 0 } },
          attrs: { type: 'object', additionalProperties: attr },
          scope: { type: 'string' },
          loc,
        },
      },
    },
    weights: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['name', 'shape', 'dtype', 'blocks'],
        properties: {
          name: { type: 'string' },
          shape: { type: 'array', items: { type: 'integer', minimum: 1 } },
          dtype: { enum: ['f32', 'f16', 'bf16'] },
          blocks: { type: 'array', items: { type: 'string' } },
          loc,
        },
      },
    },
    state: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['name', 'node', 'kind', 'per', 'shape', 'dtype'],
        properties: { ...stateFields, node: { type: 'integer', minimum: 0 }, dtype: { const: 'f32' } },
      },
    },
  },
} as const;

/** The kernel program (runtime/program.ts) that a generated package embeds and executes. */
const view = {
  type: 'object', additionalProperties: false, required: ['buf', 'col', 'width'],
  properties: { buf: { type: 'integer', minimum: 0 }, col: { type: 'integer', minimum: 0 }, width: { type: 'integer', minimum: 1 } },
};
const operand = {
  anyOf: [
    view,
    { type: 'object', additionalProperties: false, required: ['weight'], properties: { weight: { type: 'string' } } },
    { type: 'object', additionalProperties: false, required: ['input'], properties: { input: { enum: ['tokens', 'positions'] } } },
  ],
};
const num = { anyOf: [{ type: 'number' }, { enum: ['Infinity', '-Infinity', 'NaN'] }] };
const expr = {
  $id: 'expr',
  type: 'object',
  required: ['op'],
  oneOf: [
    { additionalProperties: false, required: ['offset'], properties: { op: { const: 'x' }, offset: { type: 'integer', minimum: 0 } } },
    { additionalProperties: false, required: ['name'], properties: { op: { enum: ['in', 'w'] }, name: { type: 'string' } } },
    { additionalProperties: false, required: ['value'], properties: { op: { const: 'const' }, value: num } },
    { additionalProperties: false, required: ['a'], properties: { op: { enum: ['silu', 'sigmoid', 'softplus', 'exp', 'neg', 'gelu', 'gelu_tanh', 'relu2'] }, a: { $ref: 'expr' } } },
    { additionalProperties: false, required: ['a', 'b'], properties: { op: { enum: ['add', 'mul'] }, a: { $ref: 'expr' }, b: { $ref: 'expr' } } },
    { additionalProperties: false, required: ['a', 'min', 'max'], properties: { op: { const: 'clamp' }, a: { $ref: 'expr' }, min: num, max: num } },
  ],
};
const exprRef = { $ref: 'expr' };
const prologue = {
  type: 'object', required: ['kind'],
  oneOf: [
    { additionalProperties: false, properties: { kind: { const: 'gather_last' } } },
    { additionalProperties: false, required: ['weight', 'eps'], properties: { kind: { const: 'rmsnorm' }, weight: { type: 'string' }, eps: { type: 'number' } } },
    {
      additionalProperties: false, required: ['weight', 'eps'],
      properties: { kind: { const: 'layernorm' }, weight: { type: 'string' }, bias: { type: 'string' }, eps: { type: 'number' } },
    },
    {
      additionalProperties: false, required: ['weight', 'eps', 'groups'],
      properties: { kind: { const: 'rmsnorm_gated' }, weight: { type: 'string' }, eps: { type: 'number' }, groups: { type: 'integer', minimum: 1 } },
    },
  ],
};
const epilogue = {
  type: 'object', required: ['kind'],
  oneOf: [
    { additionalProperties: false, required: ['body', 'width'], properties: { kind: { const: 'map' }, body: exprRef, width: { type: 'integer', minimum: 1 } } },
    {
      additionalProperties: false, required: ['col', 'heads', 'headDim', 'rotaryDim', 'theta'],
      properties: {
        kind: { const: 'rope' }, col: { type: 'integer', minimum: 0 }, heads: { type: 'integer', minimum: 1 },
        headDim: { type: 'integer', minimum: 1 }, rotaryDim: { type: 'integer', minimum: 0 }, theta: { type: 'number' },
      },
    },
    {
      additionalProperties: false, required: ['col', 'channels', 'taps', 'weight', 'state'],
      properties: {
        kind: { const: 'conv_step' }, col: { type: 'integer', minimum: 0 }, channels: { type: 'integer', minimum: 1 }, taps: { type: 'integer', minimum: 1 },
        weight: { type: 'string' }, bias: { type: 'string' }, state: { type: 'integer', minimum: 0 }, post: exprRef,
      },
    },
  ],
};
const kernel = {
  type: 'object', additionalProperties: false,
  required: ['name', 'family', 'sizes', 'inputs', 'outputs', 'attrs', 'fused', 'source'],
  properties: {
    name: { type: 'string' },
    family: { enum: FAMILY_NAMES },
    sizes: { type: 'object', additionalProperties: { type: 'integer', minimum: 1 } },
    inputs: { type: 'object', additionalProperties: operand },
    outputs: { type: 'object', minProperties: 1, additionalProperties: view },
    attrs: { type: 'object', additionalProperties: attr },
    body: exprRef,
    pre: { type: 'object', additionalProperties: exprRef },
    prologue: { type: 'array', items: prologue },
    epilogue: { type: 'array', items: epilogue },
    state: { type: 'integer', minimum: 0 },
    fused: { type: 'array', minItems: 1, items: { type: 'string' } },
    source: { type: 'array', items: { type: 'string' } },
  },
};
const entry = {
  type: 'object', additionalProperties: false, required: ['buffers', 'arena', 'kernels', 'outputs'],
  properties: {
    buffers: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['id', 'width', 'rows', 'offset'],
        properties: { id: { type: 'integer', minimum: 0 }, width: { type: 'integer', minimum: 1 }, rows: { enum: ['T', 'S', 'C'] }, offset: { type: 'integer', minimum: 0 } },
      },
    },
    arena: {
      type: 'object', additionalProperties: false, required: ['T', 'S'],
      properties: { T: { type: 'integer', minimum: 0 }, S: { type: 'integer', minimum: 0 } },
    },
    kernels: { type: 'array', items: kernel },
    outputs: { type: 'object', minProperties: 1, additionalProperties: view },
  },
};
// the train entry: its kernels may be of the backward families and read the labels; its arena has
// a region of constant rows
const trainKernel = {
  ...kernel,
  properties: {
    ...kernel.properties,
    family: { enum: [...FAMILY_NAMES, ...BACKWARD_FAMILY_NAMES] },
    inputs: { type: 'object', additionalProperties: { anyOf: [...operand.anyOf.slice(0, 2), { ...operand.anyOf[2], properties: { input: { enum: ['tokens', 'positions', 'labels'] } } }] } },
  },
};
const trainEntry = {
  ...entry,
  properties: {
    ...entry.properties,
    arena: { ...entry.properties.arena, required: ['T', 'S', 'C'], properties: { ...entry.properties.arena.properties, C: { type: 'integer', minimum: 0 } } },
    kernels: { type: 'array', items: trainKernel },
  },
};
export const PROGRAM_SCHEMA = {
  $id: 'https://archc.dev/schemas/kernels-1.json',
  type: 'object',
  additionalProperties: false,
  required: ['format', 'model', 'params', 'bindings', 'choices', 'weights', 'derived', 'states', 'outputs', 'entries'],
  definitions: { expr },
  properties: {
    format: { const: 'archc-kernels/1' },
    model: { type: 'string' },
    params: { type: 'object' },
    bindings: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['param', 'keys', 'value'],
        properties: { param: { type: 'string' }, keys: { type: 'array', minItems: 1, items: { type: 'string' } }, value: {} },
      },
    },
    choices: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['param', 'keys', 'value', 'reads'],
        properties: {
          param: { type: 'string' }, keys: { type: 'array', minItems: 1, items: { type: 'string' } }, value: {},
          reads: {
            type: 'array', minItems: 2,
            items: {
              type: 'object', additionalProperties: false, required: ['value', 'tensors'],
              properties: { value: {}, tensors: { type: 'object', additionalProperties: { type: 'string' } } },
            },
          },
        },
      },
    },
    weights: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['name', 'shape', 'dtype'],
        properties: { name: { type: 'string' }, shape: { type: 'array', items: { type: 'integer', minimum: 1 } }, dtype: { enum: ['f32', 'f16', 'bf16'] } },
      },
    },
    derived: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['name', 'shape', 'dtype', 'from'],
        properties: {
          name: { type: 'string' }, shape: { type: 'array', items: { type: 'integer', minimum: 1 } }, dtype: { enum: ['f32', 'f16', 'bf16'] },
          from: {
            type: 'object', required: ['kind'],
            oneOf: [
              { additionalProperties: false, required: ['parts'], properties: { kind: { const: 'concat' }, parts: { type: 'array', minItems: 1, items: { type: 'string' } } } },
              { additionalProperties: false, required: ['body'], properties: { kind: { const: 'expr' }, body: exprRef } },
            ],
          },
        },
      },
    },
    states: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['name', 'kind', 'per', 'shape'],
        properties: { ...stateFields, dtype: { const: 'bf16' } }, // a slot's format (runtime/program.ts withSsmState); f32 when absent
      },
    },
    outputs: { type: 'object', minProperties: 1, additionalProperties: { type: 'integer', minimum: 1 } },
    entries: {
      type: 'object', additionalProperties: false, required: ['forward', 'prefill', 'decode'],
      properties: { forward: entry, prefill: entry, decode: entry },
    },
    train: trainEntry,
  },
} as const;

const ajv = new Ajv.default({ allErrors: true, strict: false });
const validate = ajv.compile(GRAPH_SCHEMA);
const validateProgram = ajv.compile(PROGRAM_SCHEMA);

/** Schema problems of a kernel program (as JSON data, infinities written as strings), empty when valid. */
export function checkProgramJson(data: unknown): string[] {
  if (validateProgram(data)) return [];
  return (validateProgram.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message}`);
}

/** JSON text of a graph: infinities become the strings "inf"/"-inf" (JSON has no infinity). */
export function graphToJson(g: Graph): string {
  const json = JSON.stringify(g, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? (v > 0 ? 'inf' : v < 0 ? '-inf' : 'nan') : v), 1);
  const errors = checkGraphJson(JSON.parse(json));
  if (errors.length) throw new InternalError(`graph.json fails its schema: ${errors.join('; ')}`);
  return json + '\n';
}

/** Reads graph.json text back into a graph (restoring infinities). */
export function graphFromJson(text: string): Graph {
  return JSON.parse(text, (_k, v) => (v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === 'nan' ? NaN : v)) as Graph;
}

/** Schema problems of a parsed graph.json, as `path: message` lines (empty when valid). */
export function checkGraphJson(data: unknown): string[] {
  if (validate(data)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message}`);
}
