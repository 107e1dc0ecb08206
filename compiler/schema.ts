// The JSON schema of graph.json (the serialised graph IR), checked with ajv.

import Ajv from 'ajv';
import { InternalError } from '../dsl/diagnostics.ts';
import type { Graph } from './ir.ts';

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
export const PROGRAM_SCHEMA = {
  $id: 'https://archc.dev/schemas/program-1.json',
  type: 'object',
  additionalProperties: false,
  required: ['format', 'model', 'params', 'bindings', 'inputs', 'outputs', 'buffers', 'weights', 'states', 'steps'],
  properties: {
    format: { const: 'archc-program/1' },
    model: { type: 'string' },
    params: { type: 'object' },
    bindings: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['param', 'keys', 'value'],
        properties: { param: { type: 'string' }, keys: { type: 'array', minItems: 1, items: { type: 'string' } }, value: {} },
      },
    },
    inputs: { type: 'array', items: { type: 'object', required: ['name', 'buffer'], properties: { name: { type: 'string' }, buffer: { type: 'integer', minimum: 0 } } } },
    outputs: { type: 'array', minItems: 1, items: { type: 'object', required: ['name', 'buffer'], properties: { name: { type: 'string' }, buffer: { type: 'integer', minimum: 0 } } } },
    buffers: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['id', 'shape', 'dtype'],
        properties: { id: { type: 'integer', minimum: 0 }, shape: { type: 'array', items: dim }, dtype: { enum: ['f32', 'f16', 'bf16', 'i32'] } },
      },
    },
    weights: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['name', 'shape', 'dtype', 'buffer'],
        properties: {
          name: { type: 'string' }, shape: { type: 'array', items: { type: 'integer', minimum: 1 } },
          dtype: { enum: ['f32', 'f16', 'bf16'] }, buffer: { type: 'integer', minimum: 0 },
        },
      },
    },
    states: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['name', 'kind', 'per', 'shape'],
        properties: stateFields,
      },
    },
    steps: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['op', 'inputs', 'outputs', 'attrs', 'scope', 'release'],
        properties: {
          op: { type: 'string' },
          inputs: { type: 'array', items: { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'null' }] } },
          outputs: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
          attrs: { type: 'object', additionalProperties: attr },
          state: { type: 'integer', minimum: 0 },
          scope: { type: 'string' },
          release: { type: 'array', items: { type: 'integer', minimum: 0 } },
        },
      },
    },
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
