/**
 * Errors that reach users. A `ReliabError` is a problem the user can act on:
 * the CLI prints its message and hint on one line each and exits 1. Anything
 * else that escapes is a bug (exit 70).
 *
 * @module
 */

/**
 * Base of every user-facing error: a stable `code` for machines and a `hint`
 * that says what to do.
 *
 * @example
 * ```ts
 * throw new ReliabError("Cannot read \"a.json\": not found", {
 *   code: "file_not_found",
 *   hint: "check the path",
 * });
 * ```
 */
export class ReliabError extends Error {
  readonly code: string;
  readonly hint: string;
  constructor(message: string, options: { code: string; hint: string; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.hint = options.hint;
  }
}

/** The native library is missing, stale or failed to load. */
export class NativeLibraryError extends ReliabError {}
/** A capability (root, CAP_BPF, CAP_NET_ADMIN, …) is missing. */
export class CapabilityError extends ReliabError {}
/** The running kernel lacks a feature reliab needs. */
export class KernelSupportError extends ReliabError {}
/** A configuration value or input file is wrong. */
export class ConfigError extends ReliabError {}
/** A trace or snapshot file is corrupt, truncated, foreign or too new. */
export class TraceFormatError extends ReliabError {}
/** A command-line usage problem: the CLI exits 2. */
export class UsageError extends ReliabError {}
