/**
 * Test helper: a synthetic snapshot from a path → value map, so unit tests of
 * diff and rendering need no host. A value wrapped by `unknown()` or a full
 * `Property` is kept as it is; anything else becomes a known property.
 *
 * @module
 */
import {
  type Json,
  type Property,
  type Snapshot,
  SNAPSHOT_FORMAT,
  SNAPSHOT_VERSION,
} from "./schema.ts";

/** Options of `makeSnapshot`. */
export interface MakeSnapshotOptions {
  readonly keyId?: string | null;
  readonly created?: string;
}

function isProperty(value: Json | Property): value is Property {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    "status" in value && "source" in value &&
    (value.status === "ok" || value.status === "unknown");
}

/**
 * Builds a snapshot with a dummy hash.
 *
 * @example
 * ```ts
 * const s = makeSnapshot({ "cpu.vendor": "AuthenticAMD", "boost.enabled": unknown("x", "needs root") });
 * ```
 */
export function makeSnapshot(
  props: Readonly<Record<string, Json | Property>>,
  options: MakeSnapshotOptions = {},
): Snapshot {
  const properties: Record<string, Property> = {};
  for (const [path, value] of Object.entries(props)) {
    properties[path] = isProperty(value) ? value : { status: "ok", value, source: `test:${path}` };
  }
  const keyId = options.keyId === undefined ? "k1" : options.keyId;
  return {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    created: options.created ?? "2025-01-01T00:00:00.000Z",
    tool: { name: "reliab", version: "0.0.0-test" },
    redaction: { enabled: keyId !== null, key_id: keyId },
    properties,
    hash: "sha256:dummy",
  };
}
