// Helpers of the adapters' PredictionRows (adapter.ts): example ids, Map-keyed predictions, float32 rows.
import type { PredictionRows } from './adapter.ts';

/** Every task's examples carry `id`, the id its per-example scores use; shards slice and key by it. */
export function exampleIdOf(example: unknown): string {
  const id = (example as { id?: unknown }).id;
  if (typeof id !== 'string') throw new Error(`an example without a string id cannot be sharded: ${JSON.stringify(example).slice(0, 80)}`);
  return id;
}

/**
 * Rows of tasks whose predictions are a Map keyed per example (VQA and GQA by question id,
 * VCR by annot_id): a row is the Map's value. The join rebuilds the Map in the split's order.
 */
export function keyedPredictionRows(keyOf: (example: unknown) => unknown): PredictionRows {
  return {
    rows(model, slice) {
      const predictions = model.predict(slice) as ReadonlyMap<unknown, unknown>;
      return new Map(slice.examples.map((example) => [exampleIdOf(example), predictions.get(keyOf(example))]));
    },
    join: (split, rows) => new Map(split.examples.map((example) => [keyOf(example), rows.get(exampleIdOf(example))])),
  };
}

/** Float32 values as base64 of their bytes (little-endian, as on every platform Node runs on): exact, and a quarter of JSON's size. */
export function encodeFloat32(values: Float32Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64');
}

export function decodeFloat32(text: string): Float32Array {
  const bytes = Buffer.from(text, 'base64');
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}
