/**
 * Reads and validates pecker traces (written by native/src/pecker/interpose.zig,
 * format in native/src/pecker/trace_format.zig). A trace is untrusted input:
 * every length is checked before use, and a corrupt, foreign or too-new file
 * gives a TraceFormatError. A torn last event means the recording died
 * (SIGKILL): the events before it are kept and `torn` is set.
 *
 * @module
 */
import { TraceFormatError } from "../errors.ts";

/** File magic of a pecker trace. */
export const TRACE_MAGIC = "RLBTRACE";
/** Trace format version this reader understands. */
export const TRACE_VERSION = 1;
const HEADER_SIZE = 16;
const EVENT_HEADER_SIZE = 32;
const PAYLOAD_MAX = 16 << 20;
const THREADS_MAX = 256;

/** Event kinds, mirroring `Kind` in trace_format.zig. */
export const EVENT_KINDS: Readonly<Record<number, string>> = {
  1: "process",
  2: "argv",
  3: "environ",
  4: "cwd",
  5: "crash",
  6: "exit",
  16: "read",
  17: "recv",
  18: "recvfrom",
  19: "getrandom",
  20: "time",
  21: "gettimeofday",
  22: "clock_gettime",
  23: "getpid",
  24: "getenv",
  25: "open",
  26: "fopen",
  27: "fgets",
  28: "fread",
  29: "fgetc",
  30: "getline",
  31: "accept",
  32: "connect",
  33: "pthread_create",
  34: "mutex_lock",
};

/** Kinds whose `arg` is a file descriptor. */
const FD_KINDS = new Set(["read", "recv", "recvfrom", "accept", "connect"]);

/** One decoded event. */
export interface TraceEvent {
  readonly index: number;
  readonly kind: string;
  readonly kindNumber: number;
  readonly thread: number;
  readonly arg: bigint;
  readonly result: bigint;
  readonly errno: number;
  readonly payload: Uint8Array;
}

/** The recorded crash: signal, fault address, absolute return addresses. */
export interface TraceCrash {
  readonly signal: number;
  readonly address: bigint;
  readonly frames: readonly bigint[];
  readonly event: number;
  readonly thread: number;
}

/** A decoded trace. */
export interface Trace {
  readonly version: number;
  readonly events: readonly TraceEvent[];
  readonly pid: number;
  readonly exe: string;
  /** Load address of the main executable (for offline symbolization). */
  readonly exeBase: bigint;
  readonly argv: readonly string[];
  readonly environ: readonly string[];
  readonly cwd: string;
  readonly crash: TraceCrash | null;
  /** Written by the supervisor when the program ended. */
  readonly exit: { readonly code: number; readonly signal: number } | null;
  /** True when the last event was cut short (the recording died). */
  readonly torn: boolean;
}

const decoder = new TextDecoder();

function nulStrings(bytes: Uint8Array): string[] {
  const text = decoder.decode(bytes);
  const parts = text.split("\0");
  if (parts.at(-1) === "") parts.pop();
  return parts;
}

function formatError(path: string, detail: string): TraceFormatError {
  return new TraceFormatError(`Cannot read trace "${path}": ${detail}`, {
    code: "trace_format",
    hint: "pass a trace written by 'reliab pecker record'",
  });
}

/**
 * Decodes trace bytes; `path` only names the file in errors.
 *
 * @example
 * ```ts
 * const trace = parseTrace(Deno.readFileSync("crash.trace"), "crash.trace");
 * console.log(trace.exe, trace.crash?.signal);
 * ```
 */
export function parseTrace(bytes: Uint8Array, path = "trace"): Trace {
  if (bytes.length < HEADER_SIZE) {
    if (decoder.decode(bytes) === TRACE_MAGIC.slice(0, bytes.length) && bytes.length > 0) {
      throw formatError(path, `truncated header (${bytes.length} bytes)`);
    }
    throw formatError(path, bytes.length === 0 ? "file is empty" : "not a pecker trace");
  }
  if (decoder.decode(bytes.subarray(0, 8)) !== TRACE_MAGIC) {
    throw formatError(path, "not a pecker trace (bad magic)");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== TRACE_VERSION) {
    throw formatError(
      path,
      `unsupported version "${version}" (this reliab reads ${TRACE_VERSION})`,
    );
  }
  const headerSize = view.getUint32(12, true);
  if (headerSize < HEADER_SIZE || headerSize > bytes.length) {
    throw formatError(path, `corrupt header size "${headerSize}"`);
  }
  const events: TraceEvent[] = [];
  let offset = headerSize;
  let torn = false;
  while (offset < bytes.length) {
    if (bytes.length - offset < EVENT_HEADER_SIZE) {
      torn = true;
      break;
    }
    const kindNumber = view.getUint16(offset, true);
    const thread = view.getUint32(offset + 4, true);
    const payloadLength = view.getUint32(offset + 28, true);
    const kind = EVENT_KINDS[kindNumber];
    if (kind === undefined) {
      throw formatError(
        path,
        `corrupt event ${events.length} at byte ${offset}: unknown kind "${kindNumber}"`,
      );
    }
    if (thread >= THREADS_MAX || payloadLength > PAYLOAD_MAX) {
      throw formatError(path, `corrupt event ${events.length} at byte ${offset}`);
    }
    const start = offset + EVENT_HEADER_SIZE;
    if (bytes.length - start < payloadLength) {
      torn = true;
      break;
    }
    events.push({
      index: events.length,
      kind,
      kindNumber,
      thread,
      arg: view.getBigUint64(offset + 8, true),
      result: view.getBigInt64(offset + 16, true),
      errno: view.getInt32(offset + 24, true),
      payload: bytes.subarray(start, start + payloadLength),
    });
    offset = start + payloadLength;
  }
  return summarize(path, version, events, torn);
}

function summarize(path: string, version: number, events: TraceEvent[], torn: boolean): Trace {
  const process = events.find((e) => e.kind === "process");
  if (process === undefined) throw formatError(path, "no process record (recording died at start)");
  const crashEvent = events.find((e) => e.kind === "crash");
  let crash: TraceCrash | null = null;
  if (crashEvent !== undefined) {
    const frames: bigint[] = [];
    const payload = new DataView(
      crashEvent.payload.buffer,
      crashEvent.payload.byteOffset,
      crashEvent.payload.byteLength,
    );
    for (let at = 0; at + 8 <= payload.byteLength; at += 8) {
      frames.push(payload.getBigUint64(at, true));
    }
    crash = {
      signal: Number(crashEvent.arg),
      address: BigInt.asUintN(64, crashEvent.result),
      frames,
      event: crashEvent.index,
      thread: crashEvent.thread,
    };
  }
  const exitEvent = events.find((e) => e.kind === "exit");
  const text = (kind: string) => {
    const event = events.find((e) => e.kind === kind);
    return event === undefined ? [] : nulStrings(event.payload);
  };
  return {
    version,
    events,
    pid: Number(process.arg),
    exe: decoder.decode(process.payload),
    exeBase: BigInt.asUintN(64, process.result),
    argv: text("argv"),
    environ: text("environ"),
    cwd: text("cwd")[0] ?? "",
    crash,
    exit: exitEvent === undefined
      ? null
      : { code: Number(exitEvent.arg), signal: Number(exitEvent.result) },
    torn,
  };
}

/**
 * Reads and decodes a trace file.
 *
 * @example
 * ```ts
 * const trace = await readTrace("crash.trace");
 * ```
 */
export async function readTrace(path: string): Promise<Trace> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    const detail = error instanceof Deno.errors.NotFound ? "no such file" : String(error);
    throw new TraceFormatError(`Cannot read trace "${path}": ${detail}`, {
      code: "trace_missing",
      hint: "check the path of the trace",
    });
  }
  return parseTrace(bytes, path);
}

/**
 * Encodes the supervisor's exit event (appended after the program ended).
 *
 * @example
 * ```ts
 * await Deno.writeFile("t.trace", encodeExitEvent(134, 6), { append: true });
 * ```
 */
export function encodeExitEvent(code: number, signal: number): Uint8Array {
  const bytes = new Uint8Array(EVENT_HEADER_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, 6, true);
  view.setBigUint64(8, BigInt(code), true);
  view.setBigInt64(16, BigInt(signal), true);
  return bytes;
}

/**
 * Describes a call for divergence messages: `read(fd 0)`, `time`.
 *
 * @example
 * ```ts
 * describeCall("read", 0n); // "read(fd 0)"
 * ```
 */
export function describeCall(kind: string, arg: bigint): string {
  if (FD_KINDS.has(kind)) return `${kind}(fd ${BigInt.asIntN(64, arg)})`;
  if (kind === "mutex_lock") return `mutex_lock(epoch ${arg})`;
  return kind;
}
