/**
 * Reads and validates pecker traces (written by native/src/pecker/interpose.zig,
 * format in native/src/pecker/trace_format.zig). A trace is untrusted input:
 * every length is checked before use, and a corrupt, foreign or too-new file
 * gives a TraceFormatError.
 *
 * The recorder appends through a shared mapping of the file, so a trace is a
 * run of committed events (their first word is never zero) followed by
 * zeros: the unused part of the last chunk, or an event reserved but never
 * committed because the program was killed. Reading stops at the first zero
 * word; when anything but zeros follows it, the recording died while writing
 * (`torn`), and the events before it are kept.
 *
 * @module
 */
import { TraceFormatError } from "../errors.ts";

/** File magic of a pecker trace. */
export const TRACE_MAGIC = "RLBTRACE";
/** Trace format version this reader understands. */
export const TRACE_VERSION = 2;
const HEADER_SIZE = 16;
const WORD_SIZE = 8;
const PAYLOAD_MAX = 16 << 20;
const THREADS_MAX = 256;
const FLAG_ARG = 1;
const FLAG_RESULT = 2;
const FLAG_ERRNO = 4;
const FLAG_TRUNCATED = 8;
const FLAGS_KNOWN = 0x0f;

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
  35: "mutex_trylock",
  36: "cond_wait",
  37: "cond_signal",
  38: "cond_broadcast",
  39: "rwlock_rdlock",
  40: "rwlock_wrlock",
  41: "rwlock_tryrdlock",
  42: "rwlock_trywrlock",
  43: "poll",
  44: "select",
  45: "epoll_wait",
  46: "socket",
  47: "bind",
  48: "listen",
  49: "send",
  50: "recvmsg",
};

/** Kinds whose `arg` is a lock epoch. */
const EPOCH_KINDS = new Set([
  "mutex_lock",
  "mutex_trylock",
  "cond_wait",
  "cond_signal",
  "cond_broadcast",
  "rwlock_rdlock",
  "rwlock_wrlock",
  "rwlock_tryrdlock",
  "rwlock_trywrlock",
]);

/** Kinds whose `arg` is a file descriptor. */
const FD_KINDS = new Set([
  "read",
  "recv",
  "recvfrom",
  "recvmsg",
  "accept",
  "connect",
  "bind",
  "listen",
  "send",
  "epoll_wait",
]);

/** One decoded event. */
export interface TraceEvent {
  readonly index: number;
  readonly kind: string;
  readonly kindNumber: number;
  readonly thread: number;
  readonly arg: bigint;
  readonly result: bigint;
  readonly errno: number;
  /** The payload was cut to the largest an event may carry. */
  readonly truncated: boolean;
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
  /** True when the recording died while writing an event (it is dropped). */
  readonly torn: boolean;
  /** Bytes of the file up to the end of the last committed event. */
  readonly length: number;
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
    const decoded = decodeEventAt(view, offset);
    if (decoded === "uncommitted") {
      torn = !allZero(bytes, offset);
      break;
    }
    if (decoded === "cut") {
      torn = true;
      break;
    }
    if (typeof decoded === "string") {
      throw formatError(path, `corrupt event ${events.length} at byte ${offset}: ${decoded}`);
    }
    events.push({ ...decoded.event, index: events.length });
    offset = decoded.next;
  }
  return summarize(path, version, events, torn, offset);
}

function pad8(length: number): number {
  return (length + 7) & ~7;
}

function allZero(bytes: Uint8Array, from: number): boolean {
  for (let at = from; at < bytes.length; at++) if (bytes[at] !== 0) return false;
  return true;
}

/** Size of the event whose word is at `offset`, or why there is none. */
function eventSizeAt(view: DataView, offset: number): number | "uncommitted" | string {
  if (view.byteLength - offset < WORD_SIZE) return "uncommitted";
  const kindNumber = view.getUint8(offset);
  const flags = view.getUint8(offset + 1);
  const thread = view.getUint16(offset + 2, true);
  const payloadLength = view.getUint32(offset + 4, true);
  if (kindNumber === 0 && flags === 0 && thread === 0 && payloadLength === 0) return "uncommitted";
  if (EVENT_KINDS[kindNumber] === undefined) return `unknown kind "${kindNumber}"`;
  if ((flags & ~FLAGS_KNOWN) !== 0) return `unknown flags "${flags}"`;
  if (thread >= THREADS_MAX) return `thread "${thread}" out of range`;
  if (payloadLength > PAYLOAD_MAX) return `payload of ${payloadLength} bytes is too large`;
  const fields = (flags & FLAG_ARG ? 1 : 0) + (flags & FLAG_RESULT ? 1 : 0) +
    (flags & FLAG_ERRNO ? 1 : 0);
  return WORD_SIZE * (1 + fields) + pad8(payloadLength);
}

type Decoded = { event: Omit<TraceEvent, "index">; next: number } | "uncommitted" | "cut" | string;

function decodeEventAt(view: DataView, offset: number): Decoded {
  const size = eventSizeAt(view, offset);
  if (typeof size === "string") return size;
  if (view.byteLength - offset < size) return "cut";
  const kindNumber = view.getUint8(offset);
  const flags = view.getUint8(offset + 1);
  const payloadLength = view.getUint32(offset + 4, true);
  let at = offset + WORD_SIZE;
  const field = (flag: number) => {
    if ((flags & flag) === 0) return 0n;
    const value = view.getBigInt64(at, true);
    at += 8;
    return value;
  };
  const arg = BigInt.asUintN(64, field(FLAG_ARG));
  const result = field(FLAG_RESULT);
  const errno = Number(BigInt.asIntN(32, field(FLAG_ERRNO)));
  const start = view.byteOffset + at;
  return {
    event: {
      kind: EVENT_KINDS[kindNumber]!,
      kindNumber,
      thread: view.getUint16(offset + 2, true),
      arg,
      result,
      errno,
      truncated: (flags & FLAG_TRUNCATED) !== 0,
      payload: new Uint8Array(view.buffer, start, payloadLength),
    },
    next: offset + size,
  };
}

function summarize(
  path: string,
  version: number,
  events: TraceEvent[],
  torn: boolean,
  length: number,
): Trace {
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
    length,
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
  const flags = (code !== 0 ? FLAG_ARG : 0) | (signal !== 0 ? FLAG_RESULT : 0);
  const bytes = new Uint8Array(WORD_SIZE * (1 + (code !== 0 ? 1 : 0) + (signal !== 0 ? 1 : 0)));
  const view = new DataView(bytes.buffer);
  view.setUint8(0, 6);
  view.setUint8(1, flags);
  let at = WORD_SIZE;
  if (code !== 0) {
    view.setBigUint64(at, BigInt(code), true);
    at += 8;
  }
  if (signal !== 0) view.setBigInt64(at, BigInt(signal), true);
  return bytes;
}

/**
 * Ends a recording: cuts the trace file to its committed events (the
 * recorder grows the file in chunks; the rest is zeros, or a torn event)
 * and appends the exit event. Reads the file a block at a time, so a large
 * trace is never held in memory. Returns the new length, or null when the
 * file is not a trace of this format (the recorder never started).
 *
 * @example
 * ```ts
 * await finishTrace("crash.trace", 139, 11);
 * ```
 */
export async function finishTrace(
  path: string,
  code: number,
  signal: number,
): Promise<number | null> {
  using file = await Deno.open(path, { read: true, write: true });
  const length = await committedLength(file);
  if (length === null) return null;
  await file.truncate(length);
  await file.seek(length, Deno.SeekMode.Start);
  const exit = encodeExitEvent(code, signal);
  let written = 0;
  while (written < exit.length) written += await file.write(exit.subarray(written));
  return length + exit.length;
}

const BLOCK_SIZE = 1 << 20;

/** Offset after the last committed event, walking event words block by block. */
async function committedLength(file: Deno.FsFile): Promise<number | null> {
  const head = new Uint8Array(HEADER_SIZE);
  await file.seek(0, Deno.SeekMode.Start);
  if (await readFull(file, head) < HEADER_SIZE) return null;
  const headView = new DataView(head.buffer);
  if (decoder.decode(head.subarray(0, 8)) !== TRACE_MAGIC) return null;
  if (headView.getUint32(8, true) !== TRACE_VERSION) return null;
  let offset = headView.getUint32(12, true);
  // Blocks start at `offset`; an event larger than the rest of a block is
  // read again at its own start with a block that holds it.
  for (;;) {
    const block = new Uint8Array(BLOCK_SIZE + 32);
    await file.seek(offset, Deno.SeekMode.Start);
    const got = await readFull(file, block);
    const view = new DataView(block.buffer, 0, got);
    let at = 0;
    for (;;) {
      const size = eventSizeAt(view, at);
      if (typeof size === "string") return offset + at;
      if (got - at < size) break;
      at += size;
    }
    if (at === 0) {
      // One event bigger than the block: skip it by its size if it is whole.
      const size = eventSizeAt(view, 0);
      if (typeof size === "string") return offset;
      const end = offset + size;
      if (end > (await file.stat()).size) return offset;
      offset = end;
      continue;
    }
    if (got < block.length) return offset + at;
    offset += at;
  }
}

async function readFull(file: Deno.FsFile, into: Uint8Array): Promise<number> {
  let done = 0;
  while (done < into.length) {
    const got = await file.read(into.subarray(done));
    if (got === null) break;
    done += got;
  }
  return done;
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
  if (EPOCH_KINDS.has(kind)) return `${kind}(epoch ${arg})`;
  return kind;
}
