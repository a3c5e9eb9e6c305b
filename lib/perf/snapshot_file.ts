/**
 * Snapshot files: serialization and validated reading. A reader must tell a
 * missing file (the user's path is wrong) from a damaged one (truncated,
 * edited, foreign or too new), and say which: each case has its own message
 * and hint.
 *
 * @module
 */
import { contentHash, sortKeys } from "./canonical.ts";
import { ConfigError, TraceFormatError } from "../errors.ts";
import { type Json, type Snapshot, SNAPSHOT_FORMAT, SNAPSHOT_VERSION } from "./schema.ts";

/** Snapshot files larger than this are refused (real ones are well under 1 MiB). */
export const SNAPSHOT_FILE_BYTES_MAX = 64 * 1024 * 1024;

/**
 * Pretty JSON of a snapshot: the top-level members in schema order,
 * properties sorted by path, each property as status, value or reason,
 * source, redacted; ends with a newline. Sorted output keeps diffs of
 * committed snapshots small.
 *
 * @example
 * ```ts
 * await Deno.writeTextFile("host.json", serializeSnapshot(await takeSnapshot()));
 * ```
 */
export function serializeSnapshot(snapshot: Snapshot): string {
  const properties: Record<string, unknown> = {};
  for (const path of Object.keys(snapshot.properties).sort()) {
    const p = snapshot.properties[path]!;
    properties[path] = p.status === "ok"
      ? { status: p.status, value: sortKeys(p.value), source: p.source, redacted: p.redacted }
      : { status: p.status, reason: p.reason, source: p.source };
  }
  const ordered = {
    format: snapshot.format,
    version: snapshot.version,
    created: snapshot.created,
    tool: { name: snapshot.tool.name, version: snapshot.tool.version },
    redaction: { enabled: snapshot.redaction.enabled, key_id: snapshot.redaction.key_id },
    properties,
    hash: snapshot.hash,
  };
  return `${JSON.stringify(ordered, null, 2)}\n`;
}

/**
 * Reads and validates a snapshot file: format, schema version, shape and
 * content hash.
 *
 * Throws `ConfigError` when the file cannot be read, `TraceFormatError` when
 * it is not a valid snapshot.
 *
 * @example
 * ```ts
 * const baseline = await readSnapshot("baseline.json");
 * ```
 */
export async function readSnapshot(path: string): Promise<Snapshot> {
  let bytes: Uint8Array;
  try {
    const info = await Deno.stat(path);
    if (info.isDirectory) {
      throw new ConfigError(`Cannot read snapshot "${path}": it is a directory`, {
        code: "snapshot_unreadable",
        hint: "pass the path of a snapshot file written by 'reliab perf snapshot -o FILE'",
      });
    }
    if (info.size > SNAPSHOT_FILE_BYTES_MAX) {
      throw new TraceFormatError(
        `Cannot read snapshot "${path}": file is too large (${info.size} bytes)`,
        { code: "snapshot_too_large", hint: "check that the path names a snapshot file" },
      );
    }
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof TraceFormatError) throw error;
    throw unreadable(path, error);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw formatError(path, "file is not UTF-8 text", "snapshot_not_json");
  }
  return parseSnapshot(text, path);
}

function unreadable(path: string, error: unknown): ConfigError {
  if (error instanceof Deno.errors.NotFound) {
    return new ConfigError(`Cannot read snapshot "${path}": no such file`, {
      code: "snapshot_not_found",
      hint: "check the path, or record one with 'reliab perf snapshot -o FILE'",
      cause: error,
    });
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new ConfigError(`Cannot read snapshot "${path}": permission denied`, {
      code: "snapshot_unreadable",
      hint: "make the file readable for this user",
      cause: error,
    });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new ConfigError(`Cannot read snapshot "${path}": ${detail}`, {
    code: "snapshot_unreadable",
    hint: "check the path and its permissions",
    cause: error,
  });
}

function formatError(path: string, detail: string, code: string, hint?: string): TraceFormatError {
  return new TraceFormatError(`Cannot read snapshot "${path}": ${detail}`, {
    code,
    hint: hint ?? "record the snapshot again with 'reliab perf snapshot -o FILE'",
  });
}

/**
 * Validates snapshot text; `name` is the file name used in messages.
 * Throws `TraceFormatError` for anything but a valid snapshot.
 *
 * @example
 * ```ts
 * const snapshot = parseSnapshot(await Deno.readTextFile("a.json"), "a.json");
 * ```
 */
export function parseSnapshot(text: string, name: string): Snapshot {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? `: ${error.message}` : "";
    throw formatError(name, `file is truncated or not JSON${detail}`, "snapshot_not_json");
  }
  if (!isRecord(data)) {
    throw formatError(
      name,
      "not a reliab perf snapshot: the JSON is not an object",
      "snapshot_foreign",
      "pass a file written by 'reliab perf snapshot -o FILE'",
    );
  }
  if (data.format !== SNAPSHOT_FORMAT) {
    const found = data.format === undefined
      ? "the format field is missing"
      : `format is ${JSON.stringify(data.format)}`;
    throw formatError(
      name,
      `not a reliab perf snapshot: ${found}`,
      "snapshot_foreign",
      "pass a file written by 'reliab perf snapshot -o FILE'",
    );
  }
  const version = data.version;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1) {
    throw formatError(name, `bad schema version ${JSON.stringify(version)}`, "snapshot_invalid");
  }
  if (version > SNAPSHOT_VERSION) {
    throw formatError(
      name,
      `snapshot schema ${version} is newer than this reliab supports (${SNAPSHOT_VERSION}): upgrade reliab`,
      "snapshot_too_new",
      "install a newer reliab, or compare with the reliab that wrote the snapshot",
    );
  }
  const problem = shapeProblem(data);
  if (problem !== undefined) throw formatError(name, problem, "snapshot_invalid");
  if (contentHash(data) !== data.hash) {
    throw formatError(
      name,
      "content hash does not match: the file was edited or damaged",
      "snapshot_hash_mismatch",
      "restore the file from version control, or record it again with 'reliab perf snapshot'",
    );
  }
  return data as unknown as Snapshot;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The first shape problem of a parsed snapshot, or undefined. */
function shapeProblem(data: Record<string, unknown>): string | undefined {
  if (typeof data.created !== "string") return "the created field is missing or not a string";
  const tool = data.tool;
  if (!isRecord(tool) || tool.name !== "reliab" || typeof tool.version !== "string") {
    return 'the tool field is not {"name": "reliab", "version": …}';
  }
  const redaction = data.redaction;
  if (
    !isRecord(redaction) || typeof redaction.enabled !== "boolean" ||
    !(redaction.key_id === null || typeof redaction.key_id === "string")
  ) {
    return 'the redaction field is not {"enabled": boolean, "key_id": string or null}';
  }
  if (typeof data.hash !== "string" || !data.hash.startsWith("sha256:")) {
    return 'the hash field is missing or not "sha256:…"';
  }
  if (!isRecord(data.properties)) return "the properties field is missing or not an object";
  for (const [path, property] of Object.entries(data.properties)) {
    const problem = propertyProblem(property);
    if (problem !== undefined) return `property "${path}" ${problem}`;
  }
  return undefined;
}

function propertyProblem(property: unknown): string | undefined {
  if (!isRecord(property)) return "is not an object";
  if (typeof property.source !== "string") return "has no source";
  if (property.status === "ok") {
    if (!("value" in property)) return "has no value";
    if (!isJson(property.value)) return "has a value that is not JSON";
    if (property.redacted !== undefined && property.redacted !== true) {
      return "has a redacted field that is not true";
    }
    return undefined;
  }
  if (property.status === "unknown") {
    return typeof property.reason === "string" ? undefined : "is unknown without a reason";
  }
  return `has status ${JSON.stringify(property.status)} (expected "ok" or "unknown")`;
}

function isJson(value: unknown): value is Json {
  if (value === null || typeof value === "boolean" || typeof value === "string") return true;
  if (typeof value === "number") return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(isJson);
  if (isRecord(value)) return Object.values(value).every(isJson);
  return false;
}

/**
 * Finishes a snapshot: computes and sets its content hash.
 *
 * @example
 * ```ts
 * const snapshot = withHash({ ...draft, hash: "" });
 * ```
 */
export function withHash(snapshot: Omit<Snapshot, "hash"> & { readonly hash?: string }): Snapshot {
  const { hash: _old, ...rest } = snapshot;
  return { ...rest, hash: contentHash(rest) } as Snapshot;
}
