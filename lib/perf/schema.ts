/**
 * The snapshot file format. A snapshot is a flat map from dotted property
 * paths (`cpu.model`, `sysctl.kernel.randomize_va_space`, `env.OMP_NUM_THREADS`)
 * to a `Property` that carries its value *and where it came from*. Flat paths
 * make comparison rules simple (one rule per path pattern) and let a newer
 * reliab add properties without breaking older readers.
 *
 * A value that could not be read is `{status: "unknown", reason}`, never a
 * guessed default: "unknown — needs root" and "off" must stay apart.
 *
 * @module
 */

/** Format name written in every snapshot. */
export const SNAPSHOT_FORMAT = "reliab.perf.snapshot";
/** Schema version; readers refuse snapshots from a newer one. */
export const SNAPSHOT_VERSION = 1;

/** JSON value. */
export type Json = null | boolean | number | string | readonly Json[] | {
  readonly [k: string]: Json;
};

/** A property that was read. */
export interface KnownProperty {
  readonly status: "ok";
  readonly value: Json;
  /** Where it came from: a file path, `cpuid:0x7.0`, `syscall:sched_getaffinity`, `exec:cc --version`. */
  readonly source: string;
  /** Set when the value is a keyed hash of the real one (`hmac-sha256:…`). */
  readonly redacted?: true;
}

/** A property that could not be read, with the reason (needs root, no driver, …). */
export interface UnknownProperty {
  readonly status: "unknown";
  readonly source: string;
  readonly reason: string;
}

/** One property of a snapshot. */
export type Property = KnownProperty | UnknownProperty;

/** A calibration measurement: median of repeated runs and its noise. */
export interface Measurement {
  readonly median: number;
  readonly unit: string;
  /** Coefficient of variation of the runs (stddev / mean). */
  readonly cv: number;
  readonly runs: number;
}

/** A whole snapshot file. */
export interface Snapshot {
  readonly format: typeof SNAPSHOT_FORMAT;
  readonly version: number;
  readonly created: string;
  readonly tool: { readonly name: "reliab"; readonly version: string };
  readonly redaction: { readonly enabled: boolean; readonly key_id: string | null };
  readonly properties: Readonly<Record<string, Property>>;
  /** sha256 of the canonical JSON of everything above (`sha256:<hex>`). */
  readonly hash: string;
}

/** Shorthand for a known property. */
export function known(value: Json, source: string): KnownProperty {
  return { status: "ok", value, source };
}

/** Shorthand for an unknown property. */
export function unknown(source: string, reason: string): UnknownProperty {
  return { status: "unknown", source, reason };
}
