/**
 * Canonical JSON and content hashes. A snapshot's hash covers the canonical
 * form (object keys sorted at every depth, no whitespace), so re-indenting
 * a file or reordering its keys keeps the hash, while any change of a value
 * breaks it.
 *
 * @module
 */
import { createHash } from "node:crypto";

/**
 * JSON text with object keys sorted at every depth and no whitespace.
 * `undefined` members are dropped, as `JSON.stringify` does.
 *
 * @example
 * ```ts
 * canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] }); // '{"a":[2,{"c":4,"d":3}],"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

/**
 * A copy of `value` whose objects have their keys in sorted order (arrays
 * keep their order: it is part of the value).
 *
 * @example
 * ```ts
 * Object.keys(sortKeys({ b: 1, a: 2 }) as object); // ["a", "b"]
 * ```
 */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const member = (value as Record<string, unknown>)[key];
    if (member !== undefined) out[key] = sortKeys(member);
  }
  return out;
}

/**
 * Lowercase hex sha256 of a UTF-8 string or bytes.
 *
 * @example
 * ```ts
 * sha256Hex("abc").slice(0, 8); // "ba7816bf"
 * ```
 */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * The content hash of a snapshot: `sha256:` and the hex sha256 of the
 * canonical JSON of every member except `hash` itself.
 *
 * @example
 * ```ts
 * const hash = contentHash({ format: "reliab.perf.snapshot", version: 1, hash: "ignored" });
 * ```
 */
export function contentHash(snapshot: { readonly [key: string]: unknown }): string {
  const { hash: _ignored, ...rest } = snapshot;
  return `sha256:${sha256Hex(canonicalJson(rest))}`;
}
